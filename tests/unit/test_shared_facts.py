"""One fact in one place: an inventory override reaches every role and the CLI alike.

Each test renders the roles' real templates and variables with Ansible's own templating, for an
inventory that overrides a shared fact, and reads the CLI's view of the same inventory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rendering import RoleView
from test_accounts import seeded_directory

from govmail import accounts, connection, contract
from govmail.inventory import Site

GIB = 1024**3

HOSTS = """\
---
all:
  hosts:
    dc-mail1:
      ansible_host: 10.0.0.10
  children:
    ldap: {hosts: {dc-mail1: {}}}
    mx: {hosts: {dc-mail1: {}}}
    mailstore: {hosts: {dc-mail1: {}}}
"""

BASE_VARS = """\
---
govmail_domain: example.gov.vn
govmail_secrets_dir: "{{ inventory_dir }}/secrets"
openldap_admin_password: not-used
openldap_service_accounts: {postfix: not-used, dovecot: not-used}
postfix_ldap_bind_password: not-used
dovecot_ldap_bind_password: not-used
"""


@pytest.fixture
def site_with(project: Path, write_file):
    """``site_with(overrides_yaml, level="all")``: a site inventory with overrides at a level."""

    def make(overrides: str, level: str = "group_vars/all/overrides.yml") -> Site:
        inventory = project / "inventories" / "province"
        write_file(inventory / "hosts.yml", HOSTS)
        write_file(inventory / "group_vars" / "all" / "vars.yml", BASE_VARS)
        write_file(inventory / level, overrides)
        write_file(inventory / "secrets" / "ldap-admin", "Adm1n!secret\n")
        write_file(inventory / "secrets" / "pki" / "ca.crt", "fake\n")
        return Site(inventory, project)

    return make


def _dovecot_setting(text: str, name: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in text.splitlines() if line.strip().startswith(f"{name} =")]


def _postfix_setting(text: str, name: str) -> str:
    found = re.search(rf"^{name} = (.*)$", text, flags=re.M)
    assert found, f"{name} not in main.cf"
    return found.group(1)


# --- defaults -------------------------------------------------------------------------------------


def test_the_shipped_defaults_are_the_regulations_numbers(site_with):
    """M6 quotas, M7's 50 MB attachments (base64 makes ~70 MB), the QT profile, /var/vmail."""
    site = site_with("---\n{}\n")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert 'default("2G")' in dovecot and 'default("5G")' in dovecot
    main_cf = RoleView(site, "postfix").render("etc/postfix/main.cf.j2")
    assert 70 * 1024**2 <= int(_postfix_setting(main_cf, "message_size_limit")) <= 72 * 1024**2
    assert site.value("govmail_policy")["name"] == "quangtri-2026"
    assert _dovecot_setting(dovecot, "mail_home") == ["/var/vmail/%{user | domain}/%{user | username}"]


# --- quota ----------------------------------------------------------------------------------------


def test_a_personal_quota_of_3g_is_enforced_by_dovecot_and_reported_by_the_cli(site_with):
    site = site_with("---\ngovmail_quota_personal: 3G\n")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert 'quota_storage_size = %{ldap:govmailQuota | default("3G")}' in dovecot
    assert 'quota_storage_size = %{ldap:govmailQuota | default("5G")}' in dovecot
    settings = connection.directory_settings(site.inventory_dir, project_dir=site.project_dir, environ={}, site=site)
    assert settings.default_quota == {"personal": 3 * GIB, "agency": 5 * GIB}


def test_account_show_reports_the_inventorys_default_for_a_mailbox_without_its_own_quota(site_with):
    site = site_with("---\ngovmail_quota_personal: 3G\n")
    settings = connection.directory_settings(site.inventory_dir, project_dir=site.project_dir, environ={}, site=site)
    with seeded_directory(default_quota=settings.default_quota) as opened:
        profile = accounts.profile_for(site.inventory_dir)
        person = accounts.add_person(opened, "Nguyễn Văn Long", "sokhcn", profile=profile)
        assert person["quota_bytes"] == 3 * GIB
        assert accounts.show(opened, person["address"])["quota_bytes"] == 3 * GIB
        assert accounts.show(opened, "sokhcn@quangtri.gov.vn")["quota_bytes"] == 5 * GIB


# --- base DN --------------------------------------------------------------------------------------


def test_a_custom_base_dn_reaches_the_directory_postfix_dovecot_the_lifecycle_and_the_cli(site_with):
    site = site_with("---\ngovmail_ldap_base_dn: o=province,c=vn\n")
    ldif = RoleView(site, "openldap").render("bootstrap.ldif.j2")
    assert "olcSuffix: o=province,c=vn" in ldif
    postfix = RoleView(site, "postfix")
    tables = [postfix.render("etc/postfix/ldap/table.cf.j2", item=t) for t in postfix.value("__postfix_ldap_tables")]
    assert all(re.search(r"^search_base = (ou=agencies,)?o=province,c=vn$", table, flags=re.M) for table in tables)
    assert "bind_dn = cn=postfix,ou=services,o=province,c=vn" in "\n".join(tables)
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert _dovecot_setting(dovecot, "ldap_base") == ["ou=agencies,o=province,c=vn"]
    lifecycle = json.loads(RoleView(site, "lifecycle").render("lifecycle.json.j2"))
    assert lifecycle["base_dn"] == "o=province,c=vn"
    settings = connection.directory_settings(site.inventory_dir, project_dir=site.project_dir, environ={}, site=site)
    assert (settings.base_dn, settings.admin_dn) == ("o=province,c=vn", "cn=admin,o=province,c=vn")
    assert contract.site_values(site.inventory_dir, site.project_dir)["base_dn"] == "o=province,c=vn"


def test_the_base_dn_is_derived_from_the_domain_by_default(site_with):
    site = site_with("---\n{}\n")
    assert RoleView(site, "openldap").render("bootstrap.ldif.j2").count("olcSuffix: dc=example,dc=gov,dc=vn") == 1


# --- password rules -------------------------------------------------------------------------------


def test_a_stricter_special_character_set_reaches_ppm_and_the_cli(site_with):
    site = site_with(
        "---\ngovmail_policy_overrides:\n  password_special_characters: '!@#'\n"
        "  password_min_length_user: 12\n  password_min_length_admin: 14\n"
    )
    ppm = RoleView(site, "openldap").value("__openldap_ppm_config")
    assert "class-special !@# 1 1 0" in ppm.splitlines()
    policies = {p["name"]: p for p in RoleView(site, "openldap").value("__openldap_policies")}
    assert str(policies["users"]["min_length"]) == "12"
    profile = accounts.profile_for(site.inventory_dir)
    assert profile.password_special_characters == "!@#"
    assert profile.password_min_length_user == 12


def test_classes_the_profile_does_not_require_are_not_demanded_by_ppm(site_with):
    site = site_with("---\ngovmail_policy_overrides:\n  password_required_classes: [lower, digit]\n")
    ppm = RoleView(site, "openldap").value("__openldap_ppm_config").splitlines()
    assert "minQuality 2" in ppm
    assert any(line.startswith("class-upperCase ") and line.endswith(" 1 0 0") for line in ppm)
    assert any(line.startswith("class-digit ") and line.endswith(" 1 1 0") for line in ppm)


def test_the_default_profile_requires_every_class_with_every_ascii_punctuation_as_special(site_with):
    ppm = RoleView(site_with("---\n{}\n"), "openldap").value("__openldap_ppm_config").splitlines()
    special = next(line for line in ppm if line.startswith("class-special "))
    assert len(special.split(" ")[1]) == 32 and "minQuality 4" in ppm


def test_a_bad_override_stops_the_roles_and_the_cli_with_the_same_message(site_with):
    site = site_with("---\ngovmail_policy_overrides: {inactivity_lock_days: 0}\n")
    with pytest.raises(Exception, match="inactivity_lock_days"):
        RoleView(site, "openldap").value("__openldap_policies")
    with pytest.raises(accounts.PolicyError, match="inactivity_lock_days"):
        accounts.profile_for(site.inventory_dir)


# --- mail root, LMTP, size ------------------------------------------------------------------------


def test_another_mail_root_reaches_dovecot_and_the_lifecycle(site_with):
    site = site_with("---\ngovmail_vmail_dir: /srv/mail\n")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert _dovecot_setting(dovecot, "mail_home") == ["/srv/mail/%{user | domain}/%{user | username}"]
    assert json.loads(RoleView(site, "lifecycle").render("lifecycle.json.j2"))["vmail_dir"] == "/srv/mail"


def test_postfix_never_opens_more_lmtp_deliveries_than_dovecot_takes_for_one_mailbox(site_with):
    site = site_with("---\ngovmail_lmtp_concurrency: 40\n")
    main_cf = RoleView(site, "postfix").render("etc/postfix/main.cf.j2")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert _postfix_setting(main_cf, "lmtp_destination_concurrency_limit") == "40"
    assert _dovecot_setting(dovecot, "lmtp_user_concurrency_limit") == ["40"]


def test_postfix_and_dovecot_meet_on_the_same_sockets(site_with):
    site = site_with("---\n{}\n")
    main_cf = RoleView(site, "postfix").render("etc/postfix/main.cf.j2")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    listeners = set(re.findall(r"unix_listener /var/spool/postfix/(\S+) \{", dovecot))
    assert _postfix_setting(main_cf, "virtual_transport") == "lmtp:unix:private/dovecot-lmtp"
    assert {"private/dovecot-lmtp", "private/auth", "private/quota-status"} <= listeners
    assert _postfix_setting(main_cf, "smtpd_sasl_path") == "private/auth"
    assert "check_policy_service unix:private/quota-status" in main_cf


def test_a_smaller_attachment_limit_lowers_the_size_postfix_advertises(site_with):
    site = site_with("---\ngovmail_attachment_limit_mb: 10\n")
    postfix = RoleView(site, "postfix")
    advertised = {
        int(size) for size in re.findall(r"-o message_size_limit=(\d+)", postfix.render("etc/postfix/master.cf.j2"))
    }
    assert advertised == {int(site.value("govmail_message_size_limit"))}
    assert 10 * 1024**2 * 4 // 3 < advertised.pop() < 16 * 1024**2
    cleanup = int(_postfix_setting(postfix.render("etc/postfix/main.cf.j2"), "message_size_limit"))
    assert cleanup == int(site.value("govmail_message_size_limit")) + int(
        postfix.value("postfix_message_size_headroom")
    )


# --- the inventory as Ansible reads it ------------------------------------------------------------


@pytest.mark.parametrize(
    "level",
    ["group_vars/all/overrides.yml", "group_vars/mailstore.yml", "host_vars/dc-mail1.yml"],
    ids=["group_vars-all", "group_vars-group", "host_vars"],
)
def test_an_override_at_any_inventory_level_is_seen_by_roles_and_cli(site_with, level):
    site = site_with("---\ngovmail_quota_agency: 6G\n", level=level)
    dovecot = RoleView(site, "dovecot", "dc-mail1").render("etc/dovecot/dovecot.conf.j2")
    assert 'default("6G")' in dovecot
    settings = connection.directory_settings(site.inventory_dir, project_dir=site.project_dir, environ={}, site=site)
    assert settings.default_quota["agency"] == 6 * GIB

"""Where the account commands connect, and the LDAP plumbing (ldap3 MOCK_SYNC, no containers)."""

from __future__ import annotations

import socket
from pathlib import Path

import ldap3
import pytest

from govmail import connection, directory
from govmail.directory import (
    Directory,
    DirectoryError,
    DirectoryUnavailableError,
    EntryExistsError,
    InvalidCredentialsError,
    NoSuchEntryError,
)

BASE = "dc=quangtri,dc=gov,dc=vn"
ADMIN = f"cn=admin,{BASE}"


# --- settings ------------------------------------------------------------------------------------


def test_lab_inventory_connects_to_the_published_ldaps_port(project: Path, secrets):
    found = connection.directory_settings(project / "inventories" / "lab", project_dir=project, environ={})
    assert found.uri == "ldaps://127.0.0.1:10636"
    assert found.tls_names[0] == "mail.quangtri.gov.vn"
    assert found.ca_file == (project / ".lab" / "secrets" / "pki" / "ca.crt").resolve()
    assert found.admin_dn == ADMIN
    assert found.admin_password == secrets["ldap-admin"]
    assert found.base_dn == BASE and found.domain == "quangtri.gov.vn"


def test_admin_password_never_appears_in_the_settings_repr(project: Path, secrets):
    found = connection.directory_settings(project / "inventories" / "lab", project_dir=project, environ={})
    assert secrets["ldap-admin"] not in repr(found)


def test_environment_aims_the_commands_at_another_stack(project: Path, tmp_path: Path, write_file):
    other = tmp_path / "molecule-secrets"
    write_file(other / "ldap-admin", "Other#Admin-Pass1\n")
    write_file(other / "pki" / "ca.crt", "fake ca\n")
    env = {"GOVMAIL_LDAP_URI": "ldaps://127.0.0.1:20636", "GOVMAIL_SECRETS_DIR": str(other)}
    found = connection.directory_settings(project / "inventories" / "lab", project_dir=project, environ=env)
    assert found.uri == "ldaps://127.0.0.1:20636"
    assert found.admin_password == "Other#Admin-Pass1"
    assert found.ca_file == (other / "pki" / "ca.crt").resolve()


def test_admin_password_file_and_ca_file_override_the_secrets(project: Path, tmp_path: Path, write_file):
    password = write_file(tmp_path / "vault" / "admin.txt", "From#The-Vault9\n")
    ca = write_file(tmp_path / "own-ca.pem", "ca\n")
    env = {"GOVMAIL_LDAP_ADMIN_PASSWORD_FILE": str(password), "GOVMAIL_LDAP_CA_FILE": str(ca)}
    found = connection.directory_settings(project / "inventories" / "lab", project_dir=project, environ=env)
    assert found.admin_password == "From#The-Vault9"
    assert found.ca_file == ca.resolve()


def test_site_inventory_connects_to_the_first_host_of_the_ldap_group(project: Path, write_file):
    site = project / "inventories" / "dc"
    write_file(
        site / "group_vars" / "all" / "vars.yml",
        "govmail_domain: quangtri.gov.vn\ngovmail_mail_hostname: mail.quangtri.gov.vn\n",
    )
    write_file(site / "hosts.yml", "all:\n  children:\n    ldap:\n      hosts:\n        dir1.dc.example:\n")
    found = connection.directory_settings(site, project_dir=project, environ={})
    assert found.uri == "ldaps://dir1.dc.example:636"
    assert found.tls_names == ("mail.quangtri.gov.vn", "dir1.dc.example")


def test_site_inventory_without_ldap_group_asks_for_the_uri(project: Path, write_file):
    site = project / "inventories" / "dc"
    write_file(
        site / "group_vars" / "all" / "vars.yml",
        "govmail_domain: quangtri.gov.vn\ngovmail_mail_hostname: mail.quangtri.gov.vn\n",
    )
    write_file(site / "hosts.yml", "all:\n  hosts:\n    mail1:\n")
    with pytest.raises(DirectoryError, match="GOVMAIL_LDAP_URI"):
        connection.directory_settings(site, project_dir=project, environ={})


def test_missing_ca_names_the_file_and_the_fix(project: Path):
    (project / ".lab" / "secrets" / "pki" / "ca.crt").unlink()
    with pytest.raises(DirectoryError, match=r"ca\.crt does not exist.*govmail lab up"):
        connection.directory_settings(project / "inventories" / "lab", project_dir=project, environ={})


@pytest.mark.parametrize("uri", ["http://127.0.0.1:636", "ldaps://", "127.0.0.1:10636", "ldaps://host:notaport"])
def test_a_uri_that_is_not_ldap_is_refused(project: Path, uri: str):
    with pytest.raises(DirectoryError, match="not an LDAP URI"):
        connection.directory_settings(
            project / "inventories" / "lab", project_dir=project, environ={"GOVMAIL_LDAP_URI": uri}
        )


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261123203536Z", "2026-11-23T20:35:36Z"),
        ("20261123203536.397166Z", "2026-11-23T20:35:36Z"),
        ("202611232035Z", "2026-11-23T20:35:00Z"),
        ("20261124033536+0700", "2026-11-23T20:35:36Z"),
        ("20261123133536-0700", "2026-11-23T20:35:36Z"),
        ("", None),
        (None, None),
        ("yesterday", None),
        ("20261332000000Z", None),
    ],
)
def test_generalized_time_becomes_iso_8601_utc(value, expected):
    assert directory.iso_time(value) == expected


def test_generalized_time_is_utc_to_the_second():
    from datetime import UTC, datetime

    assert directory.generalized_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20260102030405Z"


# --- the connection (MOCK_SYNC) --------------------------------------------------------------------


@pytest.fixture
def mock_dir():
    server = ldap3.Server("mock-ldap", get_info=ldap3.NONE)
    connection = ldap3.Connection(
        server, user=ADMIN, password="Admin#Pass-123", client_strategy=ldap3.MOCK_SYNC, raise_exceptions=False
    )
    connection.strategy.add_entry(ADMIN, {"objectClass": ["organizationalRole"], "userPassword": "Admin#Pass-123"})
    connection.strategy.add_entry(f"ou=agencies,{BASE}", {"objectClass": ["organizationalUnit"], "ou": "agencies"})
    connection.strategy.add_entry(
        f"ou=sokhcn,ou=agencies,{BASE}", {"objectClass": ["organizationalUnit"], "ou": "sokhcn"}
    )
    assert connection.bind()
    return Directory(connection, domain="quangtri.gov.vn", base_dn=BASE, uri="ldaps://mock:636")


def test_agency_names_map_to_nested_units(mock_dir):
    assert mock_dir.agency_dn("sokhcn") == f"ou=sokhcn,ou=agencies,{BASE}"
    assert mock_dir.agency_dn("vp.sokhcn") == f"ou=vp,ou=sokhcn,ou=agencies,{BASE}"
    assert mock_dir.agency_of(f"uid=x,ou=vp,ou=sokhcn,ou=agencies,{BASE}") == "vp.sokhcn"
    assert mock_dir.agency_of(f"uid=x,OU=sokhcn,ou=Agencies,{BASE}") == "sokhcn"
    assert mock_dir.agency_of(f"cn=admin,{BASE}") is None


def test_search_reads_every_page(mock_dir, monkeypatch):
    monkeypatch.setattr(directory, "PAGE_SIZE", 3)
    for number in range(10):
        mock_dir.add(f"uid=p{number},ou=sokhcn,ou=agencies,{BASE}", ["inetOrgPerson"], {"cn": f"P {number}", "sn": "P"})
    found = mock_dir.search(f"ou=agencies,{BASE}", "(objectClass=inetOrgPerson)", ["cn"])
    assert sorted(entry.first("cn") for entry in found) == [f"P {n}" for n in range(10)]


def test_search_under_a_missing_base_finds_nothing(mock_dir):
    assert mock_dir.search(f"ou=nowhere,{BASE}", "(objectClass=*)", ["cn"]) == []
    assert mock_dir.get(f"uid=ghost,{BASE}", ["cn"]) is None
    assert not mock_dir.exists(f"uid=ghost,{BASE}")


def test_entry_attributes_are_case_insensitive_text(mock_dir):
    mock_dir.add(
        f"uid=a,{BASE}", ["inetOrgPerson"], {"cn": "Nguyễn Văn Á", "sn": "Nguyễn", "mail": "a@quangtri.gov.vn"}
    )
    entry = mock_dir.get(f"uid=a,{BASE}", ["cn", "MAIL"])
    assert entry.first("CN") == "Nguyễn Văn Á"
    assert entry.all("mail") == ["a@quangtri.gov.vn"]
    assert entry.first("givenName") is None and entry.all("givenName") == []


def test_adding_an_existing_entry_is_entry_exists(mock_dir):
    with pytest.raises(EntryExistsError, match=r"adding ou=sokhcn.*entryAlreadyExists"):
        mock_dir.add(f"ou=sokhcn,ou=agencies,{BASE}", ["organizationalUnit"], {"ou": "sokhcn"})


def test_changing_or_deleting_a_missing_entry_is_no_such_entry(mock_dir):
    with pytest.raises(NoSuchEntryError, match="ldaps://mock:636"):
        mock_dir.delete(f"uid=ghost,{BASE}")
    with pytest.raises(NoSuchEntryError):
        mock_dir.modify(f"uid=ghost,{BASE}", {"cn": [(ldap3.MODIFY_REPLACE, ["x"])]})


def test_unknown_ppolicy_attribute_says_the_overlay_is_missing(mock_dir):
    mock_dir.connection.result = {
        "result": 17,
        "description": "undefinedAttributeType",
        "message": "pwdReset: attribute type undefined",
    }
    error = mock_dir._error(mock_dir.connection, "adding uid=x")
    assert "ppolicy" in str(error) and "govmail lab up" in str(error)
    assert error.code == 17 and "pwdReset" in error.detail


def test_bind_as_with_a_wrong_password_is_invalid_credentials(mock_dir):
    dn = f"uid=owner,ou=sokhcn,ou=agencies,{BASE}"
    mock_dir.add(dn, ["inetOrgPerson"], {"cn": "Owner", "sn": "Owner", "userPassword": "Right#Pass-1"})
    assert mock_dir.bind_as(dn, "Right#Pass-1").bound
    with pytest.raises(InvalidCredentialsError):
        mock_dir.bind_as(dn, "Wrong#Pass-1")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_server_gives_one_line_naming_the_uri_and_the_fix(tmp_path: Path):
    ca = tmp_path / "ca.crt"
    ca.write_text("not used before the TCP connection\n")
    uri = f"ldaps://127.0.0.1:{_closed_port()}"
    settings = directory.Settings(
        uri=uri,
        domain="quangtri.gov.vn",
        base_dn=BASE,
        tls_names=("mail.quangtri.gov.vn",),
        ca_file=ca,
        admin_dn=ADMIN,
        admin_password="x",
    )
    with pytest.raises(DirectoryUnavailableError) as caught:
        Directory.open(settings)
    message = str(caught.value)
    assert uri in message and "make up" in message and "\n" not in message


def _site(project: Path, write_file, extra: str = "") -> Path:
    site = project / "inventories" / "dc"
    write_file(site / "hosts.yml", "all:\n  children:\n    ldap:\n      hosts:\n        dir1.dc.example:\n")
    write_file(
        site / "group_vars" / "all" / "vars.yml",
        f"govmail_domain: quangtri.gov.vn\ngovmail_secrets_dir: {project}/site-secrets\n{extra}",
    )
    write_file(project / "site-secrets" / "pki" / "ca.crt", "fake\n")
    return site


def test_a_sites_admin_password_comes_from_its_vault(project: Path, write_file, tmp_path: Path):
    """The playbook never writes <secrets>/ldap-admin for a site: the CLI reads the vault as Ansible does."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    site = _site(project, write_file, "openldap_admin_password: '{{ vault_openldap_admin_password }}'\n")
    vault = VaultLib([("default", VaultSecret(b"vault-pass"))]).encrypt(
        "vault_openldap_admin_password: S1te#Admin-pw\n"
    )
    write_file(site / "group_vars" / "all" / "vault.yml", vault.decode())
    write_file(tmp_path / "pass", "vault-pass\n")
    from govmail.inventory import Site

    loaded = Site(site, project, vault_password_files=[str(tmp_path / "pass")])
    found = connection.directory_settings(site, project_dir=project, environ={}, site=loaded)
    assert found.admin_password == "S1te#Admin-pw"


def test_no_admin_password_for_a_site_says_where_to_put_it(project: Path, write_file):
    site = _site(project, write_file)
    with pytest.raises(DirectoryError, match=r"set openldap_admin_password in the inventory's vault") as raised:
        connection.directory_settings(site, project_dir=project, environ={})
    assert "govmail lab up" not in str(raised.value)


def test_an_operator_supplied_ca_is_the_one_trusted(project: Path, write_file):
    ca = write_file(project / "operator-ca.pem", "fake\n")
    site = _site(project, write_file, f"pki_ca_certificate_file: {ca}\nopenldap_admin_password: Adm1n#pw-site\n")
    assert connection.directory_settings(site, project_dir=project, environ={}).ca_file == ca.resolve()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3 gigs", r"govmail_quota_personal in .* is '3 gigs': write a size like 2G"),
        ("1G", r"below the regulation's minimum"),
    ],
    ids=["not-a-size", "below-m6"],
)
def test_a_bad_default_quota_is_named(project: Path, write_file, value, message):
    site = _site(project, write_file, f"govmail_quota_personal: {value}\nopenldap_admin_password: Adm1n#pw-site\n")
    with pytest.raises(DirectoryError, match=message):
        connection.directory_settings(site, project_dir=project, environ={})

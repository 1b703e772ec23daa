"""The mail host as an operator sees it: services under systemd, files owned as they should be."""

from __future__ import annotations

import pytest

SERVICES = ["slapd", "postfix", "dovecot"]


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_under_systemd_and_starts_at_boot(mail_host, name):
    service = mail_host.service(name)
    assert service.is_running
    assert service.is_enabled


def test_ldap_tables_with_the_bind_password_are_not_world_readable(mail_host):
    for name in ["virtual_domains", "virtual_mailboxes", "virtual_aliases", "closed_recipients", "sender_login"]:
        table = mail_host.file(f"/etc/postfix/ldap/{name}.cf")
        assert table.user == "root"
        assert table.group == "postfix"
        assert table.mode == 0o640


def test_dovecot_bind_password_is_readable_by_root_only(mail_host):
    secret = mail_host.file("/etc/dovecot/private/ldap.conf")
    assert secret.user == "root"
    assert secret.mode == 0o600


def test_host_key_is_not_world_readable(mail_host):
    key = mail_host.file("/etc/ssl/govmail/host.key")
    assert key.group == "ssl-cert"
    assert key.mode == 0o640


def test_delivered_mail_is_owned_by_vmail(mail_host):
    listing = mail_host.check_output("find /var/vmail -mindepth 1 -not -user vmail -print -quit")
    assert listing == ""


def test_postfix_configuration_check_is_clean(mail_host):
    result = mail_host.run("postfix check")
    assert result.rc == 0
    assert result.stderr == ""

"""Many people behind one address (an agency's NAT): one device's failures must not lock out the rest.

In the lab every client reaches the appliance from the same Docker gateway address, which is
exactly an office behind one NAT. Lockout (ppolicy) stays per account (test_password_policy).
"""

from __future__ import annotations

import contextlib
import imaplib
import uuid

import clients
import ldap3
import pytest
from conftest import imap_login_ok, mailbox_dn


def _failed_logins_from_this_address(address, hostname, port, tls, domain, count: int = 6) -> None:
    """An old phone retrying a stale password for an account that no longer exists."""
    for _ in range(count):
        assert not imap_login_ok(address, hostname, port, tls, f"da-nghi-{uuid.uuid4().hex[:6]}@{domain}",
                                 "Mat-Khau-Cu-2019!")  # fmt: skip


def test_valid_smtp_auth_succeeds_after_another_devices_failed_logins_from_the_same_address(
    address, hostname, port, tls, domain, alice
):
    _failed_logins_from_this_address(address, hostname, port, tls, domain)
    client = clients.SMTP(address, hostname, port("submission"))
    try:
        client.ehlo("client.example")
        client.starttls(context=tls)
        client.ehlo("client.example")
        code, text = client.login(alice["address"], alice["password"])
        assert code == 235, text
    finally:
        with contextlib.suppress(Exception):
            client.quit()


def test_valid_imap_login_succeeds_after_another_devices_failed_logins_from_the_same_address(
    address, hostname, port, tls, domain, bob
):
    _failed_logins_from_this_address(address, hostname, port, tls, domain)
    assert imap_login_ok(address, hostname, port, tls, bob["address"], bob["password"])


# --- the directory down: temporary failures, never counted against the user -----------------


@pytest.fixture
def slapd_stopped(mail_host):
    """Stop slapd for one test; start it again (and wait for Postfix's lookups) afterwards."""
    assert mail_host.run("systemctl stop slapd").rc == 0
    yield
    assert mail_host.run("systemctl start slapd").rc == 0
    clients.wait_for(lambda: mail_host.run("postmap -q x proxy:ldap:/etc/postfix/ldap/virtual_domains.cf").rc in (0, 1),
                     timeout=60, what="Postfix's LDAP lookups to work again")  # fmt: skip


def test_rcpt_is_answered_4xx_while_the_directory_is_down(smtp, bob, slapd_stopped):
    smtp.ehlo("mx.example.org")
    smtp.mail("van.thu@ubnd.example.org")
    code, text = smtp.rcpt(bob["address"])
    assert 400 <= code < 500, (code, text)


def test_login_fails_temporarily_while_the_directory_is_down_and_is_not_counted(
    mail_host, ldaps_server, creds, domain, personal, address, hostname, port, tls
):
    account = personal[2]
    dn = mailbox_dn(domain, account)

    def failures() -> tuple[int, bool]:
        admin = ldap3.Connection(ldaps_server, user=creds["ldap_admin"]["dn"], password=creds["ldap_admin"]["password"])
        if not admin.bind():
            return None
        admin.search(dn, "(objectClass=*)", attributes=["pwdFailureTime", "pwdAccountLockedTime"])
        entry = admin.entries[0]
        admin.unbind()
        return len(entry.pwdFailureTime.values), bool(entry.pwdAccountLockedTime.values)

    before = failures()
    assert mail_host.run("systemctl stop slapd").rc == 0
    try:
        client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
        try:
            with pytest.raises(imaplib.IMAP4.error) as refused:
                client.login(account["address"], account["password"])
            # [UNAVAILABLE]: a client keeps the password and retries, it does not ask the user again
            assert "UNAVAILABLE" in str(refused.value), refused.value
        finally:
            with contextlib.suppress(Exception):
                client.logout()
    finally:
        assert mail_host.run("systemctl start slapd").rc == 0
    after = clients.wait_for(failures, timeout=60, what="the directory to answer again")
    assert after == before
    assert clients.wait_for(lambda: imap_login_ok(address, hostname, port, tls, account["address"],
                                                  account["password"]), timeout=60,
                            what="logins to work again once the directory is back")  # fmt: skip

"""Password rules enforced by the directory itself (ppolicy + ppm): on every path that sets a
password, for every protocol that logs in. Uses the third demo person and leaves it as found."""

from __future__ import annotations

import datetime as dt
import smtplib
import uuid

import clients
import ldap3
import pytest
from conftest import imap_login_ok, mailbox_dn, site_base_dn


@pytest.fixture
def carol(personal):
    assert len(personal) >= 3, "the stack must seed a third personal mailbox for these tests"
    return personal[2]


@pytest.fixture
def carol_dn(domain, carol):
    return mailbox_dn(domain, carol)


@pytest.fixture
def restore_carol(ldap_admin, carol_dn, carol):
    """Whatever a test does to the third person, put the seeded password and state back."""
    yield
    ldap_admin.extend.standard.modify_password(carol_dn, None, carol["password"])
    ldap_admin.modify(carol_dn, {"pwdReset": [(ldap3.MODIFY_DELETE, [])]})
    ldap_admin.modify(carol_dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})
    ldap_admin.modify(carol_dn, {"pwdFailureTime": [(ldap3.MODIFY_DELETE, [])]})


WEAK = {
    "too short": "Ab1!xyz",
    "no upper case": "khongcohoa1!",
    "no lower case": "KHONGCOTHUONG1!",
    "no digit": "KhongCoSo!!!",
    "no special character": "KhongCoKyTu123",
}


@pytest.mark.parametrize("password", WEAK.values(), ids=list(WEAK))
def test_owner_cannot_set_a_weak_password_over_ldap(ldaps_server, carol_dn, carol, password):
    conn = ldap3.Connection(ldaps_server, user=carol_dn, password=carol["password"], auto_bind=True)
    assert not conn.extend.standard.modify_password(carol_dn, carol["password"], password)
    assert conn.result["description"] == "constraintViolation"


def test_owner_cannot_write_a_weak_password_attribute_directly(ldaps_server, carol_dn, carol):
    conn = ldap3.Connection(ldaps_server, user=carol_dn, password=carol["password"], auto_bind=True)
    conn.modify(carol_dn, {"userPassword": [(ldap3.MODIFY_REPLACE, ["matkhau"])]})
    assert conn.result["description"] == "constraintViolation"


def test_owner_cannot_reuse_a_recent_password(ldaps_server, carol_dn, carol, restore_carol):
    new = f"Mat-Khau-Moi-{uuid.uuid4().hex[:8]}-A1!"  # never in the history of an earlier run
    conn = ldap3.Connection(ldaps_server, user=carol_dn, password=carol["password"], auto_bind=True)
    assert conn.extend.standard.modify_password(carol_dn, carol["password"], new), conn.result
    conn = ldap3.Connection(ldaps_server, user=carol_dn, password=new, auto_bind=True)
    assert not conn.extend.standard.modify_password(carol_dn, new, carol["password"])
    assert conn.result["description"] == "constraintViolation"


def test_password_set_by_an_administrator_must_be_changed_before_mail_can_be_read(
    ldap_admin, carol_dn, carol, address, hostname, port, tls, restore_carol
):
    ldap_admin.modify(carol_dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})
    assert not imap_login_ok(address, hostname, port, tls, carol["address"], carol["password"])
    submission = clients.SMTP(address, hostname, port("submission"))
    try:
        submission.ehlo("client.example")
        submission.starttls(context=tls)
        submission.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            submission.login(carol["address"], carol["password"])
    finally:
        submission.close()


def test_five_failed_logins_lock_the_account(ldap_admin, carol_dn, carol, address, hostname, port, tls, restore_carol):
    for _ in range(5):
        assert not imap_login_ok(address, hostname, port, tls, carol["address"], "Sai-Mat-Khau-9!")
    # the right password no longer opens the mailbox
    assert not imap_login_ok(address, hostname, port, tls, carol["address"], carol["password"])
    ldap_admin.search(carol_dn, "(objectClass=*)", attributes=["pwdAccountLockedTime"])
    assert ldap_admin.entries[0].pwdAccountLockedTime.values


def test_successful_login_is_recorded_as_last_login(ldap_admin, carol_dn, carol, address, hostname, port, tls):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert imap_login_ok(address, hostname, port, tls, carol["address"], carol["password"])
    ldap_admin.search(carol_dn, "(objectClass=*)", attributes=["pwdLastSuccess"])
    last = ldap_admin.entries[0].pwdLastSuccess.value
    if isinstance(last, str):  # without schema information ldap3 returns the raw GeneralizedTime
        last = dt.datetime.strptime(last, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    assert last is not None and last >= before


def test_wrong_passwords_for_a_service_account_never_lock_it(ldaps_server, ldap_admin, domain, alice, address,
                                                            hostname, port, tls):  # fmt: skip
    """A stranger guessing Dovecot's bind password must not stop every login (policy cn=services)."""
    service = f"cn=dovecot,ou=services,{site_base_dn()}"
    try:
        for _ in range(6):
            assert not ldap3.Connection(ldaps_server, user=service, password="Sai-Mat-Khau-9!").bind()
        ldap_admin.search(service, "(objectClass=*)", attributes=["pwdAccountLockedTime"])
        assert not ldap_admin.entries[0].pwdAccountLockedTime.values
        assert imap_login_ok(address, hostname, port, tls, alice["address"], alice["password"])
    finally:
        ldap_admin.modify(service, {"pwdFailureTime": [(ldap3.MODIFY_DELETE, [])]})
        ldap_admin.modify(service, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]})

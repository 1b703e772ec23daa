"""Delegation of an agency mailbox to its clerk (REQUIREMENTS M8), over real protocols.

The clerk logs in to the agency mailbox with the clerk's own password as
"<agency address>*<clerk address>" (Dovecot master-user login checked against the directory);
`govmail account handover` moves that right from one clerk to the next and rotates the agency
mailbox's password. Each test gets its own new agency with two staff members, removed afterwards.
"""

from __future__ import annotations

import imaplib
import time

import clients
import pytest
from conftest import imap_fetch, make_message, ok_json, one_line_error

NEW_PASSWORD = "Uy-Quyen#2026a"


@pytest.fixture
def office(new_agency):
    unit = new_agency("Văn phòng Kiểm thử Ủy quyền", "uq")
    staff = [unit.person(name, password=NEW_PASSWORD) for name in ("Hoàng Thị Thư Ký", "Đỗ Văn Tiếp Nhận")]
    return {**unit, "first": staff[0], "second": staff[1]}


def delegated(office: dict, clerk: dict) -> str:
    return f"{office['agency']['address']}*{clerk['address']}"


def test_clerk_uses_the_agency_mailbox_with_own_password_after_handover(office, govmail, login_ok):
    agency, clerk = office["agency"], office["first"]
    assert not login_ok(delegated(office, clerk), clerk["password"]), "no delegation before the handover"

    result = ok_json(govmail("account", "handover", agency["address"], "--to", clerk["address"], "--json"))

    assert result["delegate"] == clerk["address"]
    assert result["login"] == delegated(office, clerk)
    assert login_ok(delegated(office, clerk), clerk["password"])
    assert not login_ok(delegated(office, clerk), "Sai#MatKhau-1"), "the clerk's password is checked"
    assert login_ok(clerk["address"], clerk["password"]), "the clerk's own mailbox is unaffected"
    shown = ok_json(govmail("account", "show", agency["address"], "--json"))
    assert shown["delegates"] == [clerk["address"]]
    assert ok_json(govmail("account", "show", clerk["address"], "--json"))["delegate_for"] == [agency["address"]]


def test_handover_moves_access_to_the_new_clerk_and_ends_the_old_session(
    office, govmail, login_ok, address, hostname, port, tls
):
    agency, first, second = office["agency"], office["first"], office["second"]
    ok_json(govmail("account", "handover", agency["address"], "--to", first["address"], "--json"))
    session = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    session.login(delegated(office, first), first["password"])
    session.select("INBOX")

    result = ok_json(govmail("account", "handover", agency["address"], "--to", second["address"], "--json"))

    assert result["previous_delegates"] == [first["address"]]
    assert result["removed_delegates"] == [first["address"]]
    assert result["sessions_ended"] is True
    assert not login_ok(delegated(office, first), first["password"]), "the previous clerk keeps no access"
    assert login_ok(delegated(office, second), second["password"])
    with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
        for _ in range(20):  # the kick closes the connection; the next command notices
            session.noop()
            time.sleep(0.25)
    assert ok_json(govmail("account", "show", agency["address"], "--json"))["delegates"] == [second["address"]]


def test_handover_rotates_the_agency_password_which_must_be_changed_before_direct_use(office, govmail, login_ok):
    agency, clerk = office["agency"], office["first"]
    result = ok_json(govmail("account", "handover", agency["address"], "--to", clerk["address"], "--json"))
    rotated = result["agency_password"]

    assert rotated != agency["initial_password"]
    assert not login_ok(agency["address"], agency["initial_password"])
    assert not login_ok(agency["address"], rotated), "an administrator-set password is refused until changed"
    assert ok_json(govmail("account", "show", agency["address"], "--json"))["must_change_password"] is True
    assert login_ok(delegated(office, clerk), clerk["password"]), "the pending change does not stop the clerk"


def test_clerk_sends_as_the_agency_and_not_as_a_colleague(office, govmail, submissions, imaps):
    agency, clerk, colleague = office["agency"], office["first"], office["second"]
    ok_json(govmail("account", "handover", agency["address"], "--to", clerk["address"], "--json"))
    submissions.login(delegated(office, clerk), clerk["password"])

    message = make_message(agency["address"], colleague["address"], "Công văn số 12/VP", "Kính gửi anh Tiếp Nhận.")
    assert submissions.send_message(message) == {}
    submissions.mail(colleague["address"])
    code, reply = submissions.rcpt(agency["address"])
    submissions.rset()
    assert code == 553 and b"not owned" in reply, reply

    inbox = imaps(colleague)
    deadline = time.monotonic() + 30
    while (raw := imap_fetch(inbox, message["Message-ID"])) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert raw is not None and b"From: " + agency["address"].encode() in raw


def test_handover_refuses_what_is_not_an_agency_and_its_member(office, govmail, alice, agency):
    own = office["agency"]["address"]
    error = one_line_error(govmail("account", "handover", own, "--to", alice["address"]))
    assert alice["address"] in error and "member" in error
    error = one_line_error(
        govmail("account", "handover", office["first"]["address"], "--to", office["second"]["address"])
    )
    assert "personal mailbox" in error
    error = one_line_error(govmail("account", "handover", own, "--to", agency["address"]))
    assert "agency mailbox" in error
    assert ok_json(govmail("account", "show", own, "--json"))["delegates"] == [], "a refusal changes nothing"

"""Who may appear as the sender (issue 13): after login on 587 and 465, the header From and Sender
name only what the directory says the login owns, the null sender is refused, and the login is
recorded in the message.

Postfix checks the envelope sender against the directory at MAIL FROM (its own address, its
aliases, the agency mailbox of its clerk: smtpd_sender_login_maps, read live); the filter
(roles/filter, govmail_senders.lua) refuses a header From or Sender that is neither the login nor
that envelope sender. Changes in the directory count at once, without a converge.
"""

from __future__ import annotations

import random
import re
import time

import ldap3
import pytest
from conftest import imap_fetch, mailbox_dn, make_message, ok_json

VIETNAMESE = "(dia chi nguoi gui khong thuoc tai khoan dang nhap)"
NOT_OWNED = "5.7.1 Header {header} <{address}> not owned by user {login} " + VIETNAMESE
NULL_SENDER = (
    "5.7.1 <>: Sender address rejected: The null sender is not allowed after login, send from your own address / "
    "Khong duoc gui thu voi dia chi nguoi gui rong"
)
NEW_PASSWORD = "Gui-Thu#2026a"
LOGINS = ["submission", "submissions"]


def send(client, sender: str, recipient: str, message) -> tuple[int, str]:
    """One SMTP transaction; (code, text) of the first refusal, or of the DATA reply when accepted."""
    for step in (lambda: client.mail(sender), lambda: client.rcpt(recipient)):
        code, text = step()
        if code >= 400:
            client.rset()
            return code, text.decode()
    code, text = client.data(message.as_bytes())
    return code, text.decode()


@pytest.fixture
def logged_in(request, submission, submissions):
    """``logged_in(name, account)``: the client of that entry (587 or 465), logged in."""

    def login(name: str, account: dict):
        client = {"submission": submission, "submissions": submissions}[name]
        client.login(account["address"], account["password"])
        return client

    return login


def delivered(imaps, account: dict, message_id: str) -> bytes:
    inbox = imaps(account)
    deadline = time.monotonic() + 30
    while (raw := imap_fetch(inbox, message_id)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert raw is not None, f"{message_id} did not reach {account['address']}"
    return raw


@pytest.mark.parametrize("entry", LOGINS)
def test_a_header_from_naming_a_colleague_is_refused_naming_it(entry, logged_in, alice, bob):
    client = logged_in(entry, alice)
    message = make_message(bob["address"], bob["address"], "Chỉ đạo của Giám đốc", "Đề nghị chuyển khoản gấp.\n")

    assert send(client, alice["address"], bob["address"], message) == (
        554, NOT_OWNED.format(header="From", address=bob["address"], login=alice["address"]))  # fmt: skip


def test_a_header_sender_naming_a_colleague_is_refused(logged_in, alice, bob):
    client = logged_in("submission", alice)
    message = make_message(alice["address"], bob["address"], "Thông báo", "Kính gửi anh.\n")
    message["Sender"] = f"Trưởng phòng <{bob['address'].upper()}>"

    assert send(client, alice["address"], bob["address"], message) == (
        554, NOT_OWNED.format(header="Sender", address=bob["address"], login=alice["address"]))  # fmt: skip


def test_a_from_with_a_display_name_only_is_refused(logged_in, alice, bob):
    client = logged_in("submission", alice)
    message = make_message(alice["address"], bob["address"], "Thông báo", "Kính gửi anh.\n")
    message.replace_header("From", "Chu tich UBND tinh:;")  # an empty group: a name and no address

    code, text = send(client, alice["address"], bob["address"], message)
    assert (code, text) == (
        554,
        f"5.7.1 Header From without an address not owned by user {alice['address']} {VIETNAMESE}",
    )


@pytest.mark.parametrize("entry", LOGINS)
def test_the_null_sender_is_refused_after_login(entry, logged_in, alice, bob):
    client = logged_in(entry, alice)
    assert client.mail("")[0] == 250  # the refusal comes at RCPT (smtpd_delay_reject)
    code, text = client.rcpt(bob["address"])
    assert (code, text.decode()) == (553, NULL_SENDER)


def test_own_mail_is_delivered_with_the_login_in_its_received_header(logged_in, imaps, alice, bob):
    client = logged_in("submissions", alice)
    message = make_message(f"Nguyễn Văn Long <{alice['address']}>", bob["address"], "Báo cáo tuần", "Gửi anh.\n")
    message["Sender"] = alice["address"]

    assert send(client, alice["address"], bob["address"], message)[0] == 250
    raw = delivered(imaps, bob, message["Message-ID"])
    header = raw.split(b"\r\n\r\n", 1)[0]
    submitted = [field for field in re.findall(rb"^Received: .*?(?=^\S)", header, re.M | re.S) if b"ESMTPSA" in field]
    assert len(submitted) == 1, header
    assert f"(Authenticated sender: {alice['address']})".encode() in submitted[0], submitted[0]


@pytest.fixture
def alias(ldap_admin, domain, alice):
    """A new alias of alice's mailbox, added to the directory by the test (``add()``), removed after."""
    name = f"vanthu.kiemtra{random.randrange(10**6):06d}@{domain}"
    dn = mailbox_dn(domain, alice)

    def add() -> str:
        ldap_admin.modify(dn, {"govmailAlias": [(ldap3.MODIFY_ADD, [name])]})
        assert ldap_admin.result["description"] == "success", ldap_admin.result
        return name

    add.name = name
    yield add
    ldap_admin.modify(dn, {"govmailAlias": [(ldap3.MODIFY_DELETE, [name])]})


def test_an_alias_may_be_the_sender_as_soon_as_the_directory_has_it(alias, logged_in, imaps, alice, bob):
    client = logged_in("submission", alice)
    message = make_message(alias.name, bob["address"], "Văn thư", "Gửi anh.\n")
    code, text = send(client, alias.name, bob["address"], message)
    assert code == 553 and f"not owned by user {alice['address']}" in text, text

    alias()

    assert send(client, alias.name, bob["address"], message)[0] == 250
    assert b"From: " + alias.name.encode() in delivered(imaps, bob, message["Message-ID"])


@pytest.fixture
def office(new_agency):
    """A new agency with two staff members who have set their own password."""
    unit = new_agency("Văn phòng Kiểm thử Người gửi", "ng")
    staff = [unit.person(name, password=NEW_PASSWORD) for name in ("Phạm Thị Văn Thư", "Vũ Văn Kế Nhiệm")]
    return {**unit, "first": staff[0], "second": staff[1]}


def test_the_clerk_sends_as_the_agency_with_own_login_until_the_handover(office, govmail, logged_in, imaps, bob):
    agency, clerk, successor = office["agency"]["address"], office["first"], office["second"]
    ok_json(govmail("account", "handover", agency, "--to", clerk["address"], "--json"))
    client = logged_in("submission", clerk)
    message = make_message(f"Van phong <{agency}>", bob["address"], "Công văn số 7/VP", "Kính gửi.\n")
    message["Sender"] = clerk["address"]

    assert send(client, agency, bob["address"], message)[0] == 250
    assert f"From: Van phong <{agency}>".encode() in delivered(imaps, bob, message["Message-ID"])

    ok_json(govmail("account", "handover", agency, "--to", successor["address"], "--json"))

    code, text = send(client, agency, bob["address"], message)
    assert code == 553 and f"not owned by user {clerk['address']}" in text, text
    assert send(client, clerk["address"], bob["address"], message) == (
        554, NOT_OWNED.format(header="From", address=agency, login=clerk["address"]))  # fmt: skip

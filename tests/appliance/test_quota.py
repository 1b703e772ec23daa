"""A full mailbox is refused at RCPT time, so nothing is accepted and bounced later."""

from __future__ import annotations

import re

import clients
import ldap3
import pytest
from conftest import mailbox_dn, make_message


def _quota_kib(imaps, account) -> tuple[int, int]:
    """(used, limit) in KiB as IMAP GETQUOTAROOT reports them."""
    client = imaps(account)
    _, data = client.getquotaroot("INBOX")
    text = b" ".join(part for group in data for part in group if isinstance(part, bytes)).decode()
    used, limit = re.search(r"STORAGE (\d+) (\d+)", text).groups()
    return int(used), int(limit)


@pytest.fixture
def set_quota(ldap_admin, domain, personal):
    """Give the third demo person a quota of ``used + room_kib`` for one test, then its default back."""
    account = personal[2]
    dn = mailbox_dn(domain, account)

    def apply(imaps, room_kib: int) -> dict:
        used, _ = _quota_kib(imaps, account)
        return limit(used + room_kib)

    def limit(limit_kib: int) -> dict:
        ldap_admin.modify(dn, {"govmailQuota": [(ldap3.MODIFY_REPLACE, [str(int(limit_kib) * 1024)])]})
        assert ldap_admin.result["description"] == "success"
        return account

    apply.limit = limit
    apply.used = lambda imaps: _quota_kib(imaps, account)[0]
    yield apply
    ldap_admin.modify(dn, {"govmailQuota": [(ldap3.MODIFY_DELETE, [])]})


def test_mail_for_a_full_mailbox_is_refused_at_rcpt(smtp, imaps, set_quota):
    account = set_quota(imaps, room_kib=1)
    # the last message may take a mailbox over its limit (Dovecot's grace); then it is full
    _, limit = _quota_kib(imaps, account)
    filler = make_message("van.thu@ubnd.example.org", account["address"], "Tệp đính kèm", "x" * 4000 + "\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(filler) == {}
    clients.wait_for(lambda: _quota_kib(imaps, account)[0] > limit, what="the mailbox to fill up")

    smtp.rset()
    smtp.mail("van.thu@ubnd.example.org", options=["SIZE=2000"])
    code, text = smtp.rcpt(account["address"])
    assert code == 552, text
    assert b"Mailbox is full" in text


def test_message_that_cannot_fit_is_refused_at_rcpt(smtp, imaps, set_quota):
    account = set_quota(imaps, room_kib=1024)
    _, limit = _quota_kib(imaps, account)
    smtp.ehlo("mx.example.org")
    # beyond the limit plus Dovecot's grace for the last message (10 MiB)
    smtp.mail("van.thu@ubnd.example.org", options=[f"SIZE={(limit + 20 * 1024) * 1024}"])
    code, text = smtp.rcpt(account["address"])
    assert code == 552, text
    assert b"Mailbox is full" in text or b"larger than the mailbox quota" in text


def test_mail_for_a_mailbox_with_room_is_accepted_at_rcpt(smtp, personal):
    smtp.ehlo("mx.example.org")
    smtp.mail("van.thu@ubnd.example.org", options=["SIZE=20000"])
    code, text = smtp.rcpt(personal[1]["address"])
    assert code == 250, text
    smtp.rset()


def test_owner_is_warned_when_the_mailbox_passes_80_percent(smtp, imaps, set_quota, personal):
    account = personal[2]

    def warnings():
        client = imaps(account)
        client.select("INBOX")
        typ, data = client.search("UTF-8", "SUBJECT", "80%", "FROM", "postmaster")
        return data[0].split() if typ == "OK" else []

    earlier = len(warnings())
    used = set_quota.used(imaps)
    body_kib = max(4, used // 5 + 4)
    # after the message (body + about 1.5 KiB of headers) the mailbox is ~87 % full: past 80 %, not 95 %
    set_quota.limit((used + body_kib + 1.5) / 0.87)
    filler = make_message("van.thu@ubnd.example.org", account["address"], "Báo cáo", "x" * (body_kib * 1024) + "\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(filler) == {}

    assert clients.wait_for(lambda: len(warnings()) > earlier, what="the 80 % quota warning")

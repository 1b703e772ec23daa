"""A full mailbox is refused at RCPT time, so nothing is accepted and bounced later."""

from __future__ import annotations

import clients
from conftest import make_message, quota_kib


def test_mail_for_a_full_mailbox_is_refused_at_rcpt(smtp, full_mailbox):
    smtp.mail("van.thu@ubnd.example.org", options=["SIZE=2000"])
    code, text = smtp.rcpt(full_mailbox["address"])
    assert code == 552, text
    assert b"Mailbox is full" in text


def test_message_that_cannot_fit_is_refused_at_rcpt(smtp, imaps, set_quota):
    account = set_quota(imaps, room_kib=1024)
    _, limit = quota_kib(imaps, account)
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

"""Mail goes in through every door and comes out through every client protocol."""

from __future__ import annotations

import clients
from conftest import imap_fetch, make_message, parse

SUBJECT = "Báo cáo tháng 11 của Sở Khoa học và Công nghệ — đề nghị phê duyệt"
BODY = "Kính gửi anh Long,\n\nĐây là nội dung tiếng Việt: ă â đ ê ô ơ ư, Ả Ấ Ặ Ẹ Ố Ờ Ữ.\n"


def _normalise(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def test_submission_with_vietnamese_subject_arrives_identical_over_imaps(submission, imaps, alice, bob):
    message = make_message(alice["address"], bob["address"], SUBJECT, BODY)
    submission.login(alice["address"], alice["password"])
    submission.send_message(message)

    inbox = imaps(bob)
    raw = clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="delivery over IMAPS")
    received = parse(raw)
    assert received["Subject"] == SUBJECT
    assert received.get_content().replace("\r\n", "\n") == BODY
    # servers only add trace headers on top: the message as sent is intact, byte for byte
    assert _normalise(raw).endswith(_normalise(message.as_bytes()))


def test_submissions_message_is_retrieved_over_pop3s(submissions, address, hostname, port, tls, alice, bob):
    message = make_message(bob["address"], alice["address"], "Giấy mời họp giao ban", "Trân trọng kính mời.\n")
    submissions.login(bob["address"], bob["password"])
    submissions.send_message(message)

    def fetch():
        pop = clients.POP3_SSL(address, hostname, port("pop3s"), tls)
        try:
            pop.user(alice["address"])
            pop.pass_(alice["password"])
            count, _ = pop.stat()
            for number in range(count, 0, -1):
                raw = b"\r\n".join(pop.retr(number)[1])
                if message["Message-ID"].encode() in raw:
                    return raw
            return None
        finally:
            pop.quit()

    raw = clients.wait_for(fetch, what="delivery over POP3S")
    assert parse(raw)["Subject"] == "Giấy mời họp giao ban"


def test_port_25_accepts_mail_for_a_local_user_from_outside_without_authentication(smtp, imaps, bob):
    message = make_message("van.thu@ubnd.example.org", bob["address"], "Công văn đến", "Nội dung công văn.\n")
    smtp.ehlo("mx.example.org")
    assert "auth" not in smtp.esmtp_features
    refused = smtp.send_message(message)
    assert refused == {}

    inbox = imaps(bob)
    raw = clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="delivery of inbound mail")
    assert parse(raw)["From"] == "van.thu@ubnd.example.org"


def test_agency_mailbox_receives_mail(smtp, imaps, agency):
    message = make_message("van.thu@ubnd.example.org", agency["address"], "Gửi Sở", "Nội dung.\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(message) == {}
    inbox = imaps(agency)
    assert clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="delivery to the agency mailbox")


def test_a_burst_to_one_agency_mailbox_is_delivered_at_once_not_deferred(mail_host, new_agency):
    """200 messages over 20 parallel SMTP sessions to one mailbox (a circular answered by every unit).

    Postfix delivers over up to 20 LMTP connections; if Dovecot took fewer concurrent deliveries
    per mailbox (its stock limit is 10) it would answer some with 451 and Postfix would retry
    them only minutes later.
    """
    address = new_agency("Văn phòng Kiểm thử Tiếp nhận", "tn")["agency"]["address"]
    local, domain = address.split("@")
    since = mail_host.run("date +%s").stdout.strip()
    sent = mail_host.run(
        f"smtp-source -l 10240 -m 200 -s 20 -f van.thu@ubnd.example.org -t {address} -S 'Burst' 127.0.0.1:25"
    )
    assert sent.rc == 0 and sent.stderr == "", sent.stderr  # smtp-source reports any refusal on stderr

    def delivered() -> bool:
        listing = mail_host.run(f"find /var/vmail/{domain}/{local}/Maildir/new -type f 2>/dev/null | wc -l")
        return int(listing.stdout.strip() or 0) >= 200

    try:
        clients.wait_for(delivered, timeout=120, what="200 messages in the agency's Maildir")
    except AssertionError as late:
        # say why: Postfix's reasons for what it deferred, Dovecot's errors meanwhile
        why = mail_host.run(
            f"journalctl --since @{since} -o cat | grep -E 'status=deferred|lmtp.*(Error|Warning)' | tail -n8"
        )
        raise AssertionError(f"{late}; the mail host's log: {why.stdout.strip() or 'nothing deferred'}") from None
    log = mail_host.run(f"journalctl --since @{since} -o cat | grep -c 'Too many concurrent' || true")
    assert log.stdout.strip() == "0"

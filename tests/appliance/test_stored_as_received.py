"""What the MX or submission accepted with 250 reaches the mailbox as sent, byte for byte.

Servers may only add trace headers (Return-Path, Delivered-To, Received) on top; everything
the sender wrote (headers, long lines, 8-bit bodies, attachments) must come back unchanged
over IMAP. And nothing accepted with 250 is bounced later (issue 10, faults 1 and 6).
"""

from __future__ import annotations

import base64
import email.utils
import os
import re
import uuid

import clients
import pytest
from conftest import imap_fetch

# Authentication-Results, added by the content filter (roles/filter), is a trace field too
# (RFC 8601 section 2.1): it goes on top, like Received.
# What the servers put on top of a message: trace fields (RFC 5321 §4.4), the filter's results,
# and on submission the domain's DKIM signature, prepended by the signer (RFC 6376 §5.6).
TRACE_HEADERS = (b"return-path", b"delivered-to", b"received", b"authentication-results", b"dkim-signature")
SENDER = "van.thu@ubnd.example.org"


def _message(recipient: str, headers: list[bytes], body: bytes) -> tuple[bytes, str]:
    """A raw message with CRLF line ends, as a real client puts it on the wire."""
    message_id = f"<{uuid.uuid4()}@ubnd.example.org>"
    head = [
        f"From: Van thu <{SENDER}>".encode(),
        f"To: {recipient}".encode(),
        f"Date: {email.utils.formatdate()}".encode(),
        f"Message-ID: {message_id}".encode(),
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body, message_id


def _trace_prefix(stored: bytes, sent: bytes) -> bytes:
    """What the servers put on top of the sent message; fails if the message itself changed."""
    assert stored.endswith(sent), _first_difference(stored, sent)
    prefix = stored[: len(stored) - len(sent)]
    names = re.findall(rb"^([^\s:]+):", prefix, flags=re.MULTILINE)
    assert names and all(name.lower() in TRACE_HEADERS for name in names), prefix
    return prefix


def _first_difference(stored: bytes, sent: bytes) -> str:
    start = stored.find(sent[:60])
    if start < 0:
        return f"the message's first line is not in the stored copy: {stored[:300]!r}"
    for index, (a, b) in enumerate(zip(stored[start:], sent, strict=False)):
        if a != b:
            return f"stored copy differs at byte {index}: {stored[start + index - 40 : start + index + 40]!r}"
    return f"stored copy is {len(stored) - start} bytes, sent {len(sent)}"


def _deliver(client, recipient: str, raw: bytes, sender: str = SENDER, options: list[str] | None = None) -> None:
    code, text = client.mail(sender, options or [])
    assert code == 250, text
    code, text = client.rcpt(recipient)
    assert code == 250, text
    code, text = client.data(raw)
    assert code == 250, text


def _stored(imaps, account, message_id: str, timeout: float = 60) -> bytes:
    inbox = imaps(account)
    return clients.wait_for(lambda: imap_fetch(inbox, message_id), timeout=timeout, what=f"{message_id} in INBOX")


# --- fault 1: SMTPUTF8 is honoured or not offered: never 250 and then a bounce ---------------

UTF8_SUBJECT = "Subject: Công văn đến số 125/UBND — Báo cáo".encode()


def _session(kind, smtp, submission, alice) -> tuple[object, str]:
    """(client, envelope sender): a null sender on the MX (a bounce), the user on 587."""
    if kind == "mx":
        smtp.ehlo("mx.example.org")
        return smtp, ""
    submission.login(alice["address"], alice["password"])
    return submission, alice["address"]


def _utf8_message(recipient: str, sender: str) -> tuple[bytes, str]:
    raw, message_id = _message(recipient, [UTF8_SUBJECT], "Kính gửi: ông Đặng.\r\n".encode())
    if sender:
        raw = raw.replace(f"From: Van thu <{SENDER}>".encode(), f"From: <{sender}>".encode())
    return raw, message_id


@pytest.mark.parametrize("kind", ["mx", "submission"])
def test_mail_with_raw_utf8_headers_is_delivered_with_whatever_the_server_offers(kind, smtp, submission, imaps,
                                                                                   alice, bob):  # fmt: skip
    """A sender uses SMTPUTF8 if offered and 8BITMIME otherwise; either way the mail arrives."""
    client, sender = _session(kind, smtp, submission, alice)
    raw, message_id = _utf8_message(bob["address"], sender)
    options = ["BODY=8BITMIME"] + (["SMTPUTF8"] if client.has_extn("smtputf8") else [])
    _deliver(client, bob["address"], raw, sender=sender, options=options)
    _trace_prefix(_stored(imaps, bob, message_id), raw)


@pytest.mark.parametrize("kind", ["mx", "submission"])
def test_smtputf8_is_refused_at_mail_from_unless_it_can_be_delivered(kind, smtp, submission, imaps, alice, bob):
    """A client that insists on SMTPUTF8 learns it at MAIL FROM, not from a bounce after a 250."""
    client, sender = _session(kind, smtp, submission, alice)
    offered = client.has_extn("smtputf8")
    # sent by hand: smtplib itself refuses SMTPUTF8 that was not offered, a careless client does not
    code, text = client.docmd("MAIL", f"FROM:<{sender}> SMTPUTF8 BODY=8BITMIME")
    if not offered:
        assert code >= 500, (code, text)
        return
    raw, message_id = _utf8_message(bob["address"], sender)
    assert code == 250, text
    assert client.rcpt(bob["address"])[0] == 250
    assert client.data(raw)[0] == 250
    _trace_prefix(_stored(imaps, bob, message_id), raw)


# --- fault 6: the shapes real senders produce come back byte for byte ------------------------

LONG_LINE = ("Nội dung một dòng rất dài không xuống dòng " * 120).encode()  # ~6 KB, > 998 octets
ATTACHMENT = base64.encodebytes(os.urandom(30000)).replace(b"\n", b"\r\n")


def _address_list(first: int, count: int) -> bytes:
    """``count`` addresses folded one per line: 30 bytes each."""
    return b",\r\n\t".join(b"don.vi.%04d@so.example.org" % n for n in range(first, first + count))


CC_5000 = _address_list(0, 5000)  # 150 KB in one header

SHAPES = {
    "long_body_line_8bit": (
        [
            b"Subject: Long line",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
        ],
        b"Start\r\n" + LONG_LINE + b"\r\nEnd\r\n",
    ),
    "long_header_line": (
        [b"Subject: Long header", b"X-Recipients-List: " + b", ".join(b"u%03d@so.example.org" % n for n in range(60))],
        b"Body.\r\n",
    ),
    # a circular to every unit of the province: a header block over Postfix's default 100 KB, in
    # headers under the 60,000 bytes at which Postfix cuts one for the milter (see below)
    "header_block_of_150_kb": (
        [
            b"Subject: Cong van gui 5000 don vi",
            b"Cc: " + _address_list(0, 1900),
            b"X-Don-Vi-Nhan: " + _address_list(1900, 1900),
            b"X-Don-Vi-Nhan-Tiep: " + _address_list(3800, 1200),
        ],
        b"Body.\r\n",
    ),
    "utf8_body_8bit": (
        [
            b"Subject: 8bit",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: 8bit",
        ],
        "Kính gửi: ă â đ ê ô ơ ư, Ả Ấ Ặ Ẹ Ố Ờ Ữ.\r\n\r\nTrân trọng.\r\n".encode(),
    ),
    "windows_1258_body": (
        [
            b"Subject: =?windows-1258?Q?C=F4ng_v=E3n?=",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=windows-1258",
            b"Content-Transfer-Encoding: 8bit",
        ],
        "Công văn đi, Đà Nẵng\r\n".encode("cp1258", "replace") + bytes(range(0xA0, 0x100)) + b"\r\n",
    ),
    "odd_but_legal_headers": (
        [
            b"Subject:no space after the colon",
            b"X-Folded: first part\r\n\tsecond part after a tab\r\n  third",
            b"X-Empty:",
            b"X-Trailing: value with trailing blanks   ",
            b"Comments: one",
            b"Comments: two",
            b"X-Mixed-Case-Header: MiXeD",
        ],
        b"Body.\r\n",
    ),
    "dots_and_blank_lines": (
        [b"Subject: Dots"],
        b".\r\n..\r\n.hidden line\r\n\r\n\r\n \r\n\tTabbed\r\nLast line without anything after\r\n",
    ),
    "base64_attachment": (
        [b"Subject: Attachment", b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="=_b0undary"'],
        b"This is a multi-part message in MIME format.\r\n\r\n--=_b0undary\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Gửi kèm tệp.\r\n".encode()
        + b'\r\n--=_b0undary\r\nContent-Type: application/pdf; name="B\xc3\xa1o c\xc3\xa1o.pdf"\r\n'
        b'Content-Disposition: attachment; filename="bao-cao.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + ATTACHMENT
        + b"\r\n--=_b0undary--\r\n",
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_message_arrives_over_port_25_byte_for_byte(shape, smtp, imaps, bob):
    headers, body = SHAPES[shape]
    raw, message_id = _message(bob["address"], headers, body)
    smtp.ehlo("mx.example.org")
    _deliver(smtp, bob["address"], raw, options=["BODY=8BITMIME"])
    _trace_prefix(_stored(imaps, bob, message_id), raw)


@pytest.mark.parametrize("kind", ["mx", "submission"])
def test_a_header_postfix_would_cut_for_the_filter_is_refused_not_stored_cut(kind, smtp, submission, imaps, alice, bob):
    """With a milter, Postfix's cleanup cuts any single header at 60,000 bytes without a word
    (cleanup_message.c, KLUDGE_HEADER_LIMIT): such a message is refused at the end of DATA."""
    client, sender = _session(kind, smtp, submission, alice)
    raw, message_id = _message(bob["address"], [b"Subject: Cong van gui 5000 don vi", b"Cc: " + CC_5000], b"Body.\r\n")
    if kind == "submission":
        raw = raw.replace(f"From: Van thu <{SENDER}>".encode(), f"From: <{alice['address']}>".encode())
    assert client.mail(sender)[0] == 250
    assert client.rcpt(bob["address"])[0] == 250
    code, text = client.data(raw)
    assert (code, text) == (
        550, b"5.6.0 A header line of this message is longer than 60000 bytes / Dong tieu de thu qua dai: "
             b"split the address list",
    )  # fmt: skip
    assert imap_fetch(imaps(bob), message_id) is None


@pytest.mark.parametrize("shape", ["long_body_line_8bit", "utf8_body_8bit", "base64_attachment"])
def test_message_submitted_on_587_arrives_byte_for_byte(shape, submission, imaps, alice, bob):
    headers, body = SHAPES[shape]
    raw, message_id = _message(bob["address"], headers, body)
    raw = raw.replace(f"From: Van thu <{SENDER}>".encode(), f"From: <{alice['address']}>".encode())
    submission.login(alice["address"], alice["password"])
    _deliver(submission, bob["address"], raw, sender=alice["address"], options=["BODY=8BITMIME"])
    _trace_prefix(_stored(imaps, bob, message_id), raw)


def test_message_of_exactly_the_advertised_size_is_accepted_and_stored(smtp, imaps, personal):
    """SIZE is a promise: a message of that many octets is accepted with 250 and stored intact."""
    account = personal[1]
    smtp.ehlo("mx.example.org")
    size = int(smtp.esmtp_features["size"])
    raw, message_id = _message(account["address"], [b"Subject: Exactly SIZE", b"MIME-Version: 1.0",
                                                    b"Content-Type: application/octet-stream",
                                                    b"Content-Transfer-Encoding: base64"], b"")  # fmt: skip
    line = b"A" * 76 + b"\r\n"
    lines, rest = divmod(size - len(raw), len(line))
    if rest < 2:
        lines, rest = lines - 1, rest + len(line)
    body = line * lines + b"B" * (rest - 2) + b"\r\n"
    raw += body
    assert len(raw) == size
    _deliver(smtp, account["address"], raw, options=[f"SIZE={len(raw)}"])
    stored = _stored(imaps, account, message_id, timeout=180)
    assert stored.endswith(body), "the stored copy is not the message as sent"

"""Each accepted message is stored once per recipient, even when Postfix delivers it again (issue 10).

When Dovecot dies (or the mail host restarts) after storing a message but before its LMTP
reply reaches Postfix, Postfix still holds the queue file and delivers it again later. The
mail store recognises the retry by the queue ID in the appliance's own Received header and
the recipient (roles/dovecot, deliver-once.sieve) and stores nothing the second time, while
still answering 250 so that Postfix's queue drains.

Here the retry is replayed exactly: a message goes in through port 25, and the bytes Postfix
delivered (the stored message without the headers Dovecot's LMTP added) are handed to the
mail store's LMTP socket again, as Postfix's LMTP client would after a lost reply.
"""

from __future__ import annotations

import json
import re
import subprocess

import clients
import pytest
from conftest import MAIL_CONTAINER, imap_fetch, make_message

RECEIVED = re.compile(rb"^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", re.M)  # one header, unfolded

# Runs inside the mail host: one LMTP transaction for one recipient, to the socket Postfix
# delivers to (virtual_transport, lmtp:unix:<path in the queue directory>); prints the reply.
_LMTP_CLIENT = """
import json, smtplib, subprocess, sys
queue, transport = subprocess.run(["postconf", "-h", "queue_directory", "virtual_transport"],
                                  capture_output=True, text=True, check=True).stdout.split()
raw = sys.stdin.buffer.read()
client = smtplib.LMTP(queue + "/" + transport.removeprefix("lmtp:unix:"))
client.mail(sys.argv[1])
code, text = client.rcpt(sys.argv[2])
if code == 250:
    code, text = client.data(raw)
client.quit()
print(json.dumps([code, text.decode()]))
"""


def lmtp_deliver(sender: str, recipient: str, raw: bytes) -> tuple[int, str]:
    """Hands ``raw`` to the mail store's LMTP socket as Postfix does; returns the (code, text) reply."""
    result = subprocess.run(
        ["docker", "exec", "-i", MAIL_CONTAINER, "python3", "-c", _LMTP_CLIENT, sender, recipient],
        input=raw, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    code, text = json.loads(result.stdout)
    return code, text


def as_postfix_delivered_it(stored: bytes) -> bytes:
    """The stored message without the headers Dovecot's LMTP prepended (Return-Path, Delivered-To,
    its Received), i.e. the bytes Postfix's LMTP client sent: they start at Postfix's Received."""
    match = next((m for m in RECEIVED.finditer(stored) if b"(Postfix" in m.group()), None)
    assert match, f"no Received header of the appliance's Postfix in {stored[:400]!r}"
    return stored[match.start() :]


def copies(client, message_id: str, mailbox: str = "INBOX") -> int:
    client.select(mailbox, readonly=True)
    typ, data = client.search(None, "HEADER", "Message-ID", message_id)
    return len(data[0].split()) if typ == "OK" else 0


@pytest.fixture
def delivered(smtp, imaps, bob):
    """A message accepted on port 25 for bob and stored: (message, bytes Postfix delivered)."""
    message = make_message("van.thu@ubnd.example.org", bob["address"], "Giao một lần", "Nội dung.\n")
    smtp.ehlo("mx.example.org")
    smtp.send_message(message)
    client = imaps(bob)
    raw = clients.wait_for(lambda: imap_fetch(client, message["Message-ID"]), timeout=30,
                           what="the message to reach bob's INBOX")  # fmt: skip
    return message, as_postfix_delivered_it(raw)


def test_a_retried_delivery_is_confirmed_and_not_stored_again(delivered, imaps, bob):
    message, raw = delivered
    code, text = lmtp_deliver("van.thu@ubnd.example.org", bob["address"], raw)
    assert code == 250, text  # Postfix takes the retry as delivered and drains its queue
    assert copies(imaps(bob), message["Message-ID"]) == 1


def test_the_same_queue_file_still_reaches_every_other_recipient(delivered, imaps, alice):
    message, raw = delivered
    code, text = lmtp_deliver("van.thu@ubnd.example.org", alice["address"], raw)
    assert code == 250, text
    assert copies(imaps(alice), message["Message-ID"]) == 1


def test_another_accepted_message_with_the_same_message_id_is_stored(delivered, imaps, bob):
    """Only Postfix's retry of one queue file is recognised, not look-alike mail: a sender that
    sends a message again (same Message-ID, a new queue ID) gets it stored again."""
    message, raw = delivered
    resent = re.sub(rb"(\(Postfix[^)]*\)\s+(?:with\s+\S+\s+)?id\s+)([0-9A-Za-z]+)", rb"\g<1>\g<2>X", raw, count=1)
    assert resent != raw
    code, text = lmtp_deliver("van.thu@ubnd.example.org", bob["address"], resent)
    assert code == 250, text
    assert copies(imaps(bob), message["Message-ID"]) == 2


def test_a_message_naming_one_mailbox_twice_is_stored_once(smtp, imaps, bob):
    """bob@ and bob+tag@ in one envelope are one queue file for one mailbox: one copy."""
    local, domain = bob["address"].split("@")
    message = make_message("van.thu@ubnd.example.org", bob["address"], "Hai địa chỉ, một hộp thư", "Nội dung.\n")
    smtp.ehlo("mx.example.org")
    refused = smtp.send_message(message, to_addrs=[bob["address"], f"{local}+vanthu@{domain}"])
    assert refused == {}
    clients.wait_for(_queue_empty, timeout=60, what="Postfix to deliver to both addresses")
    assert copies(imaps(bob), message["Message-ID"]) == 1


def _queue_empty() -> bool:
    done = subprocess.run(["docker", "exec", MAIL_CONTAINER, "postqueue", "-j"], capture_output=True, text=True,
                          timeout=30, check=False)  # fmt: skip
    return done.returncode == 0 and done.stdout.strip() == ""

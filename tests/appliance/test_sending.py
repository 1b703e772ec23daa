"""Sending (issue 13, REQUIREMENTS C7 and C8): priority headers arrive as sent, and outbound SMTP
uses TLS whenever the next server offers it, but requires verified TLS towards the partner
domains of the inventory's policy table (roles/postfix: postfix_tls_policy).

The lab's inventory names the partner doitac.example (secure) and routes it, and khongtls.example
(no policy), to a plain SMTP server without STARTTLS that the test starts on the mail host's
loopback (Postfix's own smtp-sink, 127.0.0.1:2525 and :2526): never a server outside the appliance.
"""

from __future__ import annotations

import email.utils
import json
import re
import uuid

import clients
import pytest
import yaml
from conftest import PROJECT_DIR, imap_fetch

LAB = yaml.safe_load((PROJECT_DIR / "inventories/lab/group_vars/all/vars.yml").read_text())
PARTNER = "doitac.example"
PLAIN = "khongtls.example"
SINKS = {PARTNER: "127.0.0.1:2525", PLAIN: "127.0.0.1:2526"}  # the lab's postfix_transport_routes
PRIORITY = [b"X-Priority: 1 (Highest)", b"Importance: high", b"Priority: urgent"]
OUTSIDER = "van.thu@ubnd.example.org"


def raw_message(sender: str, recipient: str, headers: list[bytes]) -> tuple[bytes, str]:
    """A raw message with CRLF line ends, as a client puts it on the wire; (bytes, Message-ID)."""
    message_id = f"<{uuid.uuid4()}@govmail.test>"
    head = [
        f"From: <{sender}>".encode(),
        f"To: <{recipient}>".encode(),
        "Subject: Hỏa tốc: họp giao ban".encode(),
        f"Date: {email.utils.formatdate()}".encode(),
        f"Message-ID: {message_id}".encode(),
        *headers,
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + "Kính gửi các đơn vị: họp lúc 14 giờ.\r\n".encode(), message_id


def transaction(client, sender: str, recipient: str, raw: bytes) -> str:
    """One accepted transaction; the queue ID from the DATA reply ("2.0.0 Ok: queued as ID")."""
    assert client.mail(sender)[0] == 250
    code, text = client.rcpt(recipient)
    assert code == 250, text
    code, text = client.data(raw)
    assert code == 250, text
    return re.search(r"queued as (\w+)", text.decode()).group(1)


@pytest.mark.parametrize("entry", ["submission", "smtp"])
def test_priority_headers_arrive_byte_for_byte(entry, smtp, submission, imaps, alice, bob):
    if entry == "submission":
        submission.login(alice["address"], alice["password"])
        client, sender = submission, alice["address"]
    else:
        smtp.ehlo("mx.example.org")
        client, sender = smtp, OUTSIDER
    raw, message_id = raw_message(sender, bob["address"], PRIORITY)

    transaction(client, sender, bob["address"], raw)

    inbox = imaps(bob)
    stored = clients.wait_for(lambda: imap_fetch(inbox, message_id), what=f"{message_id} in INBOX")
    assert stored.endswith(raw), stored[:2000]


def test_the_policy_table_names_the_inventorys_partner_and_its_route(mail_host):
    assert LAB["postfix_tls_policy"][PARTNER] == "secure"
    for key in (PARTNER, f"[{SINKS[PARTNER].replace(':', ']:')}"):
        looked_up = mail_host.run(f"postmap -q '{key}' texthash:/etc/postfix/tls_policy")
        assert (looked_up.rc, looked_up.stdout.strip()) == (0, "secure"), key
    assert mail_host.run(f"postmap -q '{PLAIN}' texthash:/etc/postfix/tls_policy").rc == 1


@pytest.fixture
def plain_sinks(mail_host):
    """Postfix's smtp-sink on the mail host's loopback, one per routed domain: accepts any mail,
    never offers STARTTLS."""
    units = []
    for listen in SINKS.values():
        unit = f"govmail-test-sink-{uuid.uuid4().hex[:8]}"
        started = mail_host.run(
            f"systemd-run --unit={unit} --collect /usr/sbin/smtp-sink -u postfix -h sink.example {listen} 16"
        )
        assert started.rc == 0, started.stderr
        units.append(unit)
        port = listen.rsplit(":", 1)[1]
        clients.wait_for(lambda port=port: mail_host.run(f"ss -ltn 'sport = :{port}' | grep -q LISTEN").rc == 0,
                         timeout=20, what=f"smtp-sink listening on {listen}")  # fmt: skip
    yield
    for unit in units:
        mail_host.run(f"systemctl stop {unit}")


def queue_entry(mail_host, queue_id: str) -> dict | None:
    """The message's entry in Postfix's queue (postqueue -j), or None once it has left the queue."""
    listed = mail_host.run("postqueue -j")
    assert listed.rc == 0, listed.stderr
    return next((entry for line in listed.stdout.splitlines() if (entry := json.loads(line))["queue_id"] == queue_id),
                None)  # fmt: skip


def test_mail_to_the_partner_without_tls_is_deferred_and_to_others_delivered_in_clear(
    plain_sinks, mail_host, submission, alice
):
    submission.login(alice["address"], alice["password"])
    held, _ = raw_message(alice["address"], f"vanthu@{PARTNER}", [])
    to_partner = transaction(submission, alice["address"], f"vanthu@{PARTNER}", held)
    sent, _ = raw_message(alice["address"], f"vanthu@{PLAIN}", [])
    to_plain = transaction(submission, alice["address"], f"vanthu@{PLAIN}", sent)
    try:
        deferred = clients.wait_for(
            lambda: ((queue_entry(mail_host, to_partner) or {}).get("recipients") or [{}])[0].get("delay_reason"),
            timeout=60, what="the partner's message deferred")  # fmt: skip
        assert deferred == "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]", deferred
        clients.wait_for(lambda: queue_entry(mail_host, to_plain) is None, timeout=60, what="the other message sent")
    finally:
        mail_host.run(f"postsuper -d {to_partner}")
        mail_host.run(f"postsuper -d {to_plain}")

"""DKIM (issue 13): outbound mail of the site's domain is signed by the filter (Rspamd) with the
site's key, and the signature verifies (dkimpy) against the key the site's own DNS server
(roles/dns) serves; mail from outside the domain is not signed. What the mail store's Sieve sends
(vacation replies, redirects) leaves through Postfix's forwarding listener, which hands it to the
filter for signing only (roles/filter settings.conf): it is signed and verifies too.

The public key is fetched from the stack's DNS server inside the stack (``docker exec`` on the dns
host: ``dig @127.0.0.1``), never from the internet (dkimpy's ``dnsfunc`` hook).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid

import clients
import dkim as dkimpy
import pytest
from conftest import MAIL_CONTAINER, imap_fetch, make_message, parse
from test_filter import MILTER, filter_stopped  # noqa: F401 (fixture)
from test_forwarding import PARTNER_TARGET, forwarder, partner_server, sieve  # noqa: F401 (fixtures)

DNS_CONTAINER = MAIL_CONTAINER.replace("mail1", "backup1")  # the dns group's host in the scenario


def from_the_sites_dns_server(name: bytes | str, timeout: int = 5) -> bytes | None:
    """dkimpy's dnsfunc: the TXT record of ``name`` as the site's DNS server answers it."""
    name = name.decode() if isinstance(name, bytes) else name
    asked = subprocess.run(
        ["docker", "exec", DNS_CONTAINER, "dig", "+short", "@127.0.0.1", name.rstrip(".") + ".", "TXT"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = asked.stdout.strip().splitlines()
    if not lines:
        return None
    return "".join(part for part in lines[0].split('"')[1::2]).encode()


@pytest.fixture(scope="module")
def published(govmail):
    return json.loads(govmail("dns", "--json").stdout)["records"]


@pytest.fixture(scope="module")
def key_record(published) -> str:
    """The DNS name of the published DKIM key, ``<selector>._domainkey.<domain>.``."""
    [record] = [r for r in published if r["type"] == "TXT" and "._domainkey." in r["name"]]
    return record["name"]


def _delivered(imaps, account, message_id: str) -> bytes:
    client = imaps(account)
    return clients.wait_for(lambda: imap_fetch(client, message_id), what="the message", timeout=60)


def test_the_dns_server_serves_the_dkim_record_govmail_dns_prints(published, domain):
    [record] = [r for r in published if r["type"] == "TXT" and r["name"].endswith(f"._domainkey.{domain}.")]
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")
    assert from_the_sites_dns_server(record["name"]).decode() == record["value"]


def test_mail_submitted_from_the_domain_is_signed_and_verifies_against_the_served_key(
    submission, imaps, alice, bob, domain, published
):
    message = make_message(alice["address"], bob["address"], "Công văn ký DKIM", "Nội dung công văn.\n")
    submission.login(alice["address"], alice["password"])
    submission.send_message(message)
    raw = _delivered(imaps, bob, message["Message-ID"])
    signature = parse(raw)["DKIM-Signature"]
    assert signature is not None, raw[:2000]
    tags = dict(part.strip().split("=", 1) for part in str(signature).replace("\r\n", "").split(";") if "=" in part)
    [record] = [r for r in published if r["type"] == "TXT" and "._domainkey." in r["name"]]
    assert (tags["d"], f"{tags['s']}._domainkey.{domain}.") == (domain, record["name"])
    assert dkimpy.verify(raw, dnsfunc=from_the_sites_dns_server)


def test_mail_from_outside_the_domain_is_not_signed(smtp, imaps, alice):
    message = make_message("someone@outside.example", alice["address"], "From outside", "Hello.\n")
    smtp.ehlo("mx.outside.example")
    smtp.send_message(message)
    raw = _delivered(imaps, alice, message["Message-ID"])
    assert parse(raw)["DKIM-Signature"] is None


def _tags(signature) -> dict[str, str]:
    """The tag=value pairs of a DKIM-Signature header (RFC 6376 §3.5), whitespace removed."""
    text = "".join(str(signature).split())
    return dict(part.split("=", 1) for part in text.split(";") if "=" in part)


def _signed_for_the_domain(raw: bytes, record_name: str) -> list[dict[str, str]]:
    """Tags of every DKIM-Signature of ``raw``; asserts each names the published key (``record_name``,
    ``<selector>._domainkey.<domain>.``: d= the domain, s= the selector) and verifies (dkimpy)."""
    domain = record_name.split("._domainkey.", 1)[1].rstrip(".")
    signatures = parse(raw).get_all("DKIM-Signature") or []
    tags = [_tags(signature) for signature in signatures]
    for index, tag in enumerate(tags):
        assert (tag["d"], f"{tag['s']}._domainkey.{domain}.") == (domain, record_name), tag
        assert dkimpy.DKIM(raw).verify(idx=index, dnsfunc=from_the_sites_dns_server), f"signature {index} fails"
    return tags


def test_a_vacation_reply_is_signed(submission, imaps, sieve, forwarder, alice, key_record):  # noqa: F811
    """A vacation reply from a user of the domain is signed for it and verifies."""
    # a subject of its own: Pigeonhole answers one sender once per vacation text and period
    token = uuid.uuid4().hex[:8]
    sieve(forwarder, f'require "vacation";\nvacation :days 1 :subject "Vang mat {token}" "Toi nghi phep.";\n')
    message = make_message(alice["address"], forwarder["address"], f"Hỏi việc {token}", "Anh chị có ở cơ quan?\n")
    submission.login(alice["address"], alice["password"])
    submission.send_message(message)

    inbox = imaps(alice)

    def arrived() -> bytes | None:
        return imap_fetch(inbox, message["Message-ID"], header="In-Reply-To")

    raw = clients.wait_for(arrived, what="the vacation reply", timeout=90)
    reply = parse(raw)
    assert (reply["From"].addresses[0].addr_spec, reply["Subject"]) == (forwarder["address"], f"Vang mat {token}")
    # one signature: the forwarding listener's (the reply never passed 587)
    assert len(_signed_for_the_domain(raw, key_record)) == 1, raw[:2000]


def test_a_redirect_is_signed_again(submission, sieve, forwarder, alice, key_record, partner_server):  # noqa: F811
    """A redirect to another government domain arrives there signed twice (587, then the forwarding
    listener), and both signatures verify."""
    sieve(forwarder, f'redirect "{PARTNER_TARGET}";\n')
    message = make_message(alice["address"], forwarder["address"], "Công văn chuyển tiếp", "Xin chuyển công văn.\n")
    submission.login(alice["address"], alice["password"])
    submission.send_message(message)

    dump = clients.wait_for(
        lambda: message["Message-ID"].encode() in partner_server() and partner_server(),
        timeout=90, what="the redirect at the partner domain's server",
    )  # fmt: skip
    # smtp-sink's dump (one message; its own X-* lines on top are not signed): as on the wire, CRLF
    raw = dump.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # 587 signed alice's message; the forwarding listener signed it again on its way out
    assert len(_signed_for_the_domain(raw, key_record)) == 2, raw[:3000]


def _queued_for(mail_host, message_id: str) -> list[dict]:
    """Postfix's deferred queue entries (postqueue -j) of the message with this Message-ID."""
    ids = mail_host.run(
        f"grep -rl --include='*' -F {shlex.quote(message_id)} /var/spool/postfix/deferred /var/spool/postfix/active"
        " 2>/dev/null | xargs -r -n1 basename"
    ).stdout.split()
    return [
        entry
        for line in mail_host.run("postqueue -j").stdout.splitlines()
        if (entry := json.loads(line))["queue_id"] in ids
    ]


def test_a_redirect_waits_for_the_filter(filter_stopped, mail_host, imaps, sieve, forwarder, alice, bob, key_record):  # noqa: F811
    """With the filter down a redirect waits in Postfix's queue (never lost), and once the filter
    is back it leaves signed, once."""
    sieve(forwarder, f'redirect "{bob["address"]}";\n')
    # in the queue as if accepted just before the filter stopped (sendmail: pickup has no milter)
    message = make_message(alice["address"], forwarder["address"], "Chuyển tiếp khi bộ lọc dừng", "Nội dung.\n")
    text = shlex.quote(message.as_string())
    injected = mail_host.run(f"printf %s {text} | sendmail -f {alice['address']} {forwarder['address']}")
    assert injected.rc == 0, injected.stderr
    # the forwarding listener defers (451 4.7.1), so Dovecot's LMTP defers the delivery: Postfix keeps it
    [entry] = clients.wait_for(lambda: _queued_for(mail_host, message["Message-ID"]), what="the deferred delivery")
    [recipient] = entry["recipients"]
    assert recipient["address"] == forwarder["address"]
    assert "451 4.2.0" in recipient["delay_reason"] and "temporary failure" in recipient["delay_reason"], recipient
    assert imap_fetch(imaps(bob), message["Message-ID"]) is None

    filter_stopped()  # Rspamd back; Postfix's next queue run (here asked for at once) retries
    clients.wait_for(lambda: mail_host.socket(f"tcp://{MILTER}").is_listening, what="Rspamd's milter")
    assert mail_host.run(f"postqueue -i {entry['queue_id']}").rc == 0
    raw = _delivered(imaps, bob, message["Message-ID"])
    assert len(_signed_for_the_domain(raw, key_record)) == 1, raw[:2000]
    inbox = imaps(bob)
    inbox.select("INBOX")
    assert len(inbox.search(None, "HEADER", "Message-ID", message["Message-ID"])[1][0].split()) == 1
    assert imap_fetch(imaps(forwarder), message["Message-ID"]) is None

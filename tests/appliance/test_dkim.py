"""DKIM (issue 13): outbound mail of the site's domain is signed by the filter (Rspamd) with the
site's key, and the signature verifies (dkimpy) against the key the site's own DNS server
(roles/dns) serves; mail from outside the domain is not signed.

The public key is fetched from the stack's DNS server inside the stack (``docker exec`` on the dns
host: ``dig @127.0.0.1``), never from the internet (dkimpy's ``dnsfunc`` hook).
"""

from __future__ import annotations

import json
import subprocess

import clients
import dkim as dkimpy
import pytest
from conftest import MAIL_CONTAINER, imap_fetch, make_message, parse

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

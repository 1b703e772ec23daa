"""Desktop clients over IMAP and POP3: TLS first, then the mailbox as a client expects it."""

from __future__ import annotations

import imaplib
import poplib

import clients
import pytest
from conftest import PROJECT_DIR, ok_json, quota_kib

from govmail.inventory import Site
from govmail.sizes import parse_size


def test_cleartext_imap_login_is_refused(address, hostname, port, alice):
    client = clients.IMAP(address, hostname, port("imap"))
    try:
        assert "LOGINDISABLED" in client.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            client.login(alice["address"], alice["password"])
    finally:
        client.shutdown()


def test_imap_login_after_starttls_succeeds(address, hostname, port, tls, alice):
    client = clients.IMAP(address, hostname, port("imap"))
    try:
        client.starttls(ssl_context=tls)
        typ, _ = client.login(alice["address"], alice["password"])
        assert typ == "OK"
    finally:
        client.logout()


def test_cleartext_pop3_login_is_refused(address, hostname, port, alice):
    client = clients.POP3(address, hostname, port("pop3"))
    try:
        # refused at USER already: the password is never sent in clear text
        with pytest.raises(poplib.error_proto, match=r"(?i)(plaintext|cleartext) authentication disallowed"):
            client.user(alice["address"])
    finally:
        client.close()


def test_pop3_login_after_stls_succeeds(address, hostname, port, tls, alice):
    client = clients.POP3(address, hostname, port("pop3"))
    try:
        client.stls(context=tls)
        client.user(alice["address"])
        assert client.pass_(alice["password"]).startswith(b"+OK")
    finally:
        client.quit()


def test_wrong_password_is_refused_over_imaps(address, hostname, port, tls, alice):
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(alice["address"], "Sai-mat-khau-1!")
    finally:
        client.shutdown()


def test_login_with_the_local_part_only_reaches_the_same_mailbox(address, hostname, port, tls, alice):
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    try:
        typ, _ = client.login(alice["address"].split("@")[0], alice["password"])
        assert typ == "OK"
    finally:
        client.logout()


@pytest.mark.parametrize("flag", ["\\Sent", "\\Drafts", "\\Trash", "\\Junk"])
def test_special_use_folders_exist_at_first_login(imaps, agency, flag):
    client = imaps(agency)
    typ, listing = client.list()
    assert typ == "OK"
    flags = b" ".join(listing).decode()
    assert flag in flags


@pytest.fixture(scope="session")
def site_quota():
    """The default quota per kind as the stack's inventory sets it (read through Ansible)."""
    site = Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR)
    return {kind: parse_size(site.value(f"govmail_quota_{kind}")) for kind in ("personal", "agency")}


def test_personal_mailbox_quota_is_the_regulations_2_gigabytes(imaps, alice, site_quota, govmail):
    assert site_quota["personal"] == 2 * 1024**3
    assert quota_kib(imaps, alice)[1] * 1024 == site_quota["personal"]
    assert ok_json(govmail("account", "show", alice["address"], "--json"))["quota_bytes"] == site_quota["personal"]


def test_agency_quota_set_in_the_inventory_is_what_imap_and_the_cli_report(imaps, agency, site_quota, govmail):
    """The lab inventory raises the agency default to 6G (shipped default 5G): one value, two readers."""
    assert site_quota["agency"] == 6 * 1024**3
    assert quota_kib(imaps, agency)[1] * 1024 == site_quota["agency"]
    assert ok_json(govmail("account", "show", agency["address"], "--json"))["quota_bytes"] == site_quota["agency"]

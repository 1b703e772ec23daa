"""Desktop clients over IMAP and POP3: TLS first, then the mailbox as a client expects it."""

from __future__ import annotations

import imaplib
import poplib
import re

import clients
import pytest


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
        with pytest.raises(poplib.error_proto):
            client.user(alice["address"])
            client.pass_(alice["password"])
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


def _quota_kib(client) -> int:
    typ, data = client.getquotaroot("INBOX")
    assert typ == "OK"
    text = b" ".join(part for group in data for part in group if isinstance(part, bytes)).decode()
    match = re.search(r"STORAGE \d+ (\d+)", text)
    assert match, text
    return int(match.group(1))


def test_personal_mailbox_quota_is_2_gigabytes(imaps, alice):
    assert _quota_kib(imaps(alice)) == 2 * 1024 * 1024


def test_agency_mailbox_quota_is_5_gigabytes(imaps, agency):
    assert _quota_kib(imaps(agency)) == 5 * 1024 * 1024

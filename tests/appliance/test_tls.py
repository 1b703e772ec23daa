"""TLS 1.2+ only, and certificates a client can verify against the appliance's CA."""

from __future__ import annotations

import socket
import ssl
import warnings

import clients
import pytest

IMPLICIT_TLS = ["submissions", "imaps", "pop3s", "ldaps", "https"]
OLD_VERSIONS = {"TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1_1"}


def _old_client(version: str) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer what the server must refuse
        context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, OLD_VERSIONS[version])
    return context


@pytest.mark.parametrize("version", OLD_VERSIONS)
@pytest.mark.parametrize("service", IMPLICIT_TLS)
def test_old_tls_versions_are_refused(service, version, address, port):
    with socket.create_connection((address, port(service)), timeout=20) as sock, pytest.raises(ssl.SSLError) as refused:
        _old_client(version).wrap_socket(sock)
    # the server's own refusal, not a client that could not even offer the version
    assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER")
    assert refused.value.reason != "NO_PROTOCOLS_AVAILABLE"


@pytest.mark.parametrize("service", IMPLICIT_TLS)
def test_certificate_verifies_against_the_lab_ca_for_the_mail_host_name(service, address, hostname, port, tls):
    with (
        socket.create_connection((address, port(service)), timeout=20) as sock,
        tls.wrap_socket(sock, server_hostname=hostname) as conn,
    ):
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
        names = [value for kind, value in conn.getpeercert()["subjectAltName"] if kind == "DNS"]
        assert hostname in names


def test_starttls_certificate_verifies_on_submission(address, hostname, port, tls):
    client = clients.SMTP(address, hostname, port("submission"))
    try:
        client.ehlo("client.example")
        code, _ = client.starttls(context=tls)
        assert code == 220
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        client.close()


def test_starttls_certificate_verifies_on_port_25(smtp, tls):
    smtp.ehlo("mx.example.org")
    code, _ = smtp.starttls(context=tls)
    assert code == 220


def test_starttls_certificate_verifies_on_imap(address, hostname, port, tls):
    client = clients.IMAP(address, hostname, port("imap"))
    try:
        typ, _ = client.starttls(ssl_context=tls)
        assert typ == "OK"
    finally:
        client.logout()

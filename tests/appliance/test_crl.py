"""Revocation information of the internal CA (issue 15): every certificate names the CRL, the
appliance serves it over HTTP, signed and fresh, and a revoked host certificate appears in it.

The last test revokes the mail host's certificate with `govmail cert revoke` (which converges the
stack: a new certificate, a new CRL) and reads what a client would see afterwards.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import PROJECT_DIR, _govmail_command

from govmail import pki
from govmail.inventory import Site

IMPLICIT_TLS = ["submissions", "imaps", "pop3s", "ldaps"]


def _inventory() -> Path:
    """The stack's inventory: Molecule's (verify step) or the lab's."""
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    return Path(ephemeral) / "inventory" if ephemeral else PROJECT_DIR / "inventories" / "lab"


@pytest.fixture(scope="module")
def site():
    return Site(_inventory(), PROJECT_DIR)


@pytest.fixture(scope="module")
def crl_url(site):
    return str(site.value("govmail_crl_url"))


def served_certificate(address, port, hostname, tls) -> bytes:
    """The PEM certificate a client verifies on an implicit-TLS port."""
    with (
        socket.create_connection((address, port), timeout=20) as sock,
        tls.wrap_socket(sock, server_hostname=hostname) as conn,
    ):
        return ssl.DER_cert_to_PEM_cert(conn.getpeercert(binary_form=True)).encode()


def fetch(url: str, address: str, http_port: int) -> tuple[int, bytes]:
    """GET ``url`` from the appliance's published HTTP port (the URL's host name in Host:)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(address, http_port, timeout=20)
    try:
        connection.request("GET", parts.path, headers={"Host": parts.hostname})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("service", IMPLICIT_TLS)
def test_every_certificate_names_the_crl_distribution_point(service, address, port, hostname, tls, crl_url):
    status = pki.certificate_status(served_certificate(address, port(service), hostname, tls))
    assert status["crl_urls"] == [crl_url]
    assert crl_url.startswith(f"http://{hostname}/")


def test_the_crl_is_served_over_http_signed_by_the_ca_and_fresh(address, port, crl_url, creds):
    code, body = fetch(crl_url, address, port("http"))
    assert code == 200
    status = pki.crl_status(body, Path(creds["ca_certificate"]).read_bytes())
    assert status["state"] == "ok", status
    assert status["days_left"] > 30  # renewed at a converge once fewer than pki_crl_renew_days remain


# `cert revoke` converges the whole site: minutes on a loaded 2-core machine
REVOKE_TIMEOUT = 1800


def test_a_revoked_host_certificate_appears_in_the_published_crl_and_is_replaced(
    cli_env, site, address, port, hostname, tls, crl_url, creds
):
    before = pki.certificate_status(served_certificate(address, port("imaps"), hostname, tls))
    host = site.first_host("mx")
    result = subprocess.run(
        [*_govmail_command(), "cert", "revoke", host, "--inventory", str(_inventory()), "--json"],
        capture_output=True, text=True, cwd=PROJECT_DIR, env=cli_env, timeout=REVOKE_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["serial"] == before["serial"] and document["host"] == host and document["converged"]

    code, body = fetch(crl_url, address, port("http"))
    assert code == 200
    published = pki.crl_status(body, Path(creds["ca_certificate"]).read_bytes())
    assert before["serial"] in published["revoked"]
    assert published["state"] == "ok"
    for service in IMPLICIT_TLS:  # every service took up the new certificate, which still verifies
        after = pki.certificate_status(served_certificate(address, port(service), hostname, tls))
        assert after["serial"] not in published["revoked"], service
        assert after["serial"] == document["certificate"]["serial"], service


def test_revoking_an_unknown_name_is_one_line_naming_it(govmail):
    result = govmail("cert", "revoke", "no-such-host", "--inventory", str(_inventory()), "--no-converge")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "govmail: 'no-such-host' is neither a host of the inventory nor a serial number: give a host name or "
        "the serial in hex as `openssl x509 -noout -serial` prints it"
    )

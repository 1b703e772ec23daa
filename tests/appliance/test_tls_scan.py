"""Every TLS port passes an auditor's scan (issue 15, REQUIREMENTS C8).

Debian's testssl.sh scans all eleven TLS ports of the stack (the webmail's 443 too) at once
(``tls_scan``); each test reads the findings. A finding at LOW or above that is not in the one accepted list
(``files/tls-accepted-findings.yml``, each entry with its reason) fails the test of its port.
"""

from __future__ import annotations

import time

import pytest
import tls_scan
from conftest import PROJECT_DIR

from govmail.inventory import Site

SERVICES = list(tls_scan.TLS_SERVICES)


@pytest.fixture(scope="module")
def scans(port, hostname, address, creds, tmp_path_factory):
    started = time.monotonic()
    result = tls_scan.scan_all(
        {service: port(service) for service in SERVICES}, hostname, address, creds["ca_certificate"],
        tmp_path_factory.mktemp("testssl"),
    )  # fmt: skip
    elapsed = time.monotonic() - started
    slowest = max(result.values(), key=lambda scan: scan.seconds)
    print(f"\ntestssl: {len(result)} ports in parallel in {elapsed:.0f} s", end=" ")
    print(f"(slowest: {slowest.service}, {slowest.seconds:.0f} s)")
    return result


@pytest.fixture(scope="module")
def shared_ciphers():
    """govmail_tls_ciphers as the inventory's shared fact has it (OpenSSL names, in order)."""
    return str(Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR).value("govmail_tls_ciphers")).split(":")


def _finding(scan, finding_id: str) -> str:
    found = [f["finding"] for f in scan.findings if f["id"] == finding_id]
    assert found, f"{scan.service}: testssl reported no {finding_id} (exit {scan.returncode}): {scan.output[-2000:]}"
    return found[0]


@pytest.mark.parametrize("service", SERVICES)
def test_scan_finds_nothing_at_low_or_above_but_the_accepted_findings(scans, service):
    scan = scans[service]
    assert scan.findings, f"{service}: testssl wrote no findings (exit {scan.returncode}): {scan.output[-2000:]}"
    problems = tls_scan.unaccepted(scan, tls_scan.accepted())
    assert problems == [], "\n".join(f"{p['severity']} {p['id']}: {p['finding']}" for p in problems)


@pytest.mark.parametrize("service", SERVICES)
def test_server_chooses_the_cipher(scans, service):
    assert _finding(scans[service], "cipher_order") == "server"


@pytest.mark.parametrize("service", SERVICES)
def test_tls12_suites_are_the_shared_ones_in_the_shared_order(scans, service, shared_ciphers):
    offered = _finding(scans[service], "cipherorder_TLSv1_2").split()
    # the host key is ECDSA (pki role): of the shared list, the ECDSA suites can be negotiated
    assert offered == [name for name in shared_ciphers if "-ECDSA-" in name]


def test_tls13_suites_come_in_one_order_on_every_port(scans):
    orders = {service: _finding(scan, "cipherorder_TLSv1_3") for service, scan in scans.items()}
    assert len(set(orders.values())) == 1, orders
    assert set(next(iter(orders.values())).split()) == {
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"
    }  # fmt: skip


@pytest.mark.parametrize("service", SERVICES)
def test_certificate_carries_revocation_information(scans, service):
    assert _finding(scans[service], "cert_crlDistributionPoints").startswith("http://")

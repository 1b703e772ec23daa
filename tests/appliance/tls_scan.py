"""Debian's testssl.sh against every TLS port of a stack, as a security auditor runs it.

:func:`scan_all` runs one testssl process per port, all at once, each trusting the stack's CA
(``--add-ca``), naming the mail host while connecting to 127.0.0.1 (``--ip``), with STARTTLS where
the port speaks it (``-t smtp|imap|pop3``, and ``ldap``/``sieve`` where this testssl can; else through
:class:`StartTLSRelay`), no DNS lookups and no fetching of revocation data (the appliance is
offline). Each scan writes testssl's flat JSON: a list of ``{"id", "severity", "finding", ...}``.

:data:`ACCEPTED_FILE` is the one list of findings the project accepts, each with its reason;
:func:`unaccepted` returns every finding at LOW or above (and every scan problem) not in it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ACCEPTED_FILE = Path(__file__).with_name("files") / "tls-accepted-findings.yml"
# testssl's severities at or above LOW, and its own scan problems (a scan that could not run fails)
FAILING = ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL")
# service -> testssl's STARTTLS protocol (None: implicit TLS); contract.SERVICE_PORTS names the ports
TLS_SERVICES: dict[str, str | None] = {
    "smtp": "smtp",
    "submission": "smtp",
    "submissions": None,
    "imap": "imap",
    "imaps": None,
    "pop3": "pop3",
    "pop3s": None,
    "managesieve": "sieve",
    "ldap": "ldap",
    "ldaps": None,
    "https": None,
}
# Checks: an auditor's default run, less client simulation (-c: minutes per port, and nothing it
# finds that -p -s -P -S -f do not) and the HTTP checks (-h: the webmail's headers are tested in
# test_webmail.py). The full set runs on
# one port of each server program (Postfix, Dovecot, slapd), whose other ports share its TLS library
# and settings: there the vulnerability, cipher-category and forward-secrecy checks (-U -s -f) would
# only repeat themselves, so they get protocols, server preference and certificate (-p -P -S), which
# is where listeners of one program can differ (Postfix's mandatory ciphers on 587, its opportunistic
# ones on 25).
FULL_CHECKS = ["-p", "-s", "-P", "-S", "-f", "-U"]
PORT_CHECKS = ["-p", "-P", "-S"]
FULL_SCAN = ("submissions", "imaps", "ldaps")
SCAN_TIMEOUT = 900


def testssl_binary() -> str:
    found = shutil.which("testssl") or shutil.which("testssl.sh")
    if not found:
        raise RuntimeError("testssl is not installed: run `bash scripts/setup.sh` (Debian package testssl.sh)")
    return found


def native_starttls(binary: str, protocol: str) -> bool:
    """Whether this testssl can start TLS itself for ``protocol`` over its own sockets.

    testssl 3.0 (Debian 12) has no ManageSieve at all and stops LDAP with "FIXME: LDAP+STARTTLS
    over sockets not supported yet"; 3.2 (Debian 13) speaks ManageSieve. What it lacks goes
    through :class:`StartTLSRelay`.
    """
    if protocol == "sieve":
        usage = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
        return "sieve" in usage
    if protocol == "ldap":
        return "LDAP+STARTTLS over sockets not supported" not in Path(binary).read_text(errors="replace")
    return True


# RFC 4511 4.14.1: ExtendedRequest with the StartTLS OID 1.3.6.1.4.1.1466.20037, message id 1
LDAP_STARTTLS = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"


class StartTLSRelay:
    """A local port where each connection reaches the server already past STARTTLS.

    For each client it connects to ``(address, port)``, does the protocol's plain-text part
    (ManageSieve: greeting, ``STARTTLS``, ``OK``, RFC 5804 2.2; LDAP: the StartTLS extended
    operation and its success result, RFC 4511 4.14), then copies bytes both ways: the TLS
    handshake and everything after it are between the scanner and the server, untouched.
    """

    def __init__(self, address: str, port: int, protocol: str) -> None:
        self.target = (address, port)
        self.protocol = protocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _sieve_ok(upstream: socket.socket) -> None:
        data = b""
        while not re.search(rb"(^|\r\n)(OK|NO|BYE)\b[^\r\n]*\r\n$", data):
            chunk = upstream.recv(4096)
            if not chunk:
                raise OSError("ManageSieve closed the connection before OK")
            data += chunk
        if not re.search(rb"(^|\r\n)OK\b[^\r\n]*\r\n$", data):
            raise OSError(f"ManageSieve refused: {data[-200:]!r}")

    def _start(self, upstream: socket.socket) -> None:
        if self.protocol == "sieve":
            self._sieve_ok(upstream)
            upstream.sendall(b"STARTTLS\r\n")
            self._sieve_ok(upstream)
        else:  # ldap: an ExtendedResponse whose resultCode is success (ENUMERATED 0)
            upstream.sendall(LDAP_STARTTLS)
            if b"\x0a\x01\x00" not in upstream.recv(4096):
                raise OSError("the LDAP server refused StartTLS")

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=30)
            self._start(upstream)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@dataclass
class Scan:
    service: str
    port: int
    command: list[str]
    findings: list[dict]
    seconds: float
    returncode: int
    output: str


def _command(binary, service, port, hostname, address, ca_file, json_file, starttls) -> list[str]:
    command = [binary, "--quiet", "--color", "0", "--warnings", "batch", "--nodns", "none"]
    command += ["--add-ca", str(ca_file), "--ip", address, "--jsonfile", str(json_file)]
    command += ["--connect-timeout", "30", "--openssl-timeout", "30"]
    command += FULL_CHECKS if service in FULL_SCAN else PORT_CHECKS
    if starttls:
        command += ["-t", starttls]
    return [*command, f"{hostname}:{port}"]


def _start(binary, service, port, hostname, address, ca_file, workdir, relays):
    starttls = TLS_SERVICES[service]
    target_port = port
    if starttls and not native_starttls(binary, starttls):
        relays.append(StartTLSRelay(address, port, starttls))
        starttls, target_port = None, relays[-1].port
    json_file = workdir / f"{service}.json"
    json_file.unlink(missing_ok=True)
    command = _command(binary, service, target_port, hostname, address, ca_file, json_file, starttls)
    process = subprocess.Popen(
        command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    return process, command, json_file, time.monotonic()


def _collect(service, port, process, command, json_file, begun) -> Scan:
    output, _ = process.communicate(timeout=SCAN_TIMEOUT)
    findings = json.loads(json_file.read_text()) if json_file.is_file() else []
    return Scan(
        service, port, command, findings, time.monotonic() - begun, process.returncode, output.decode(errors="replace")
    )


def scan_all(ports: dict[str, int], hostname: str, address: str, ca_file: str, workdir: Path) -> dict[str, Scan]:
    """Scan every port of ``ports`` (service -> published port) at once; returns service -> Scan."""
    binary = testssl_binary()
    relays: list[StartTLSRelay] = []
    started: dict[str, tuple] = {}
    try:
        for service, port in ports.items():
            started[service] = _start(binary, service, port, hostname, address, ca_file, workdir, relays)
        return {service: _collect(service, ports[service], *begun) for service, begun in started.items()}
    finally:
        for process, *_ in started.values():
            if process.poll() is None:
                process.kill()
        for relay in relays:
            relay.close()


def accepted() -> list[dict]:
    """The accepted findings: ``[{"id": str, "services": [str] | "all", "finding": regex, "reason": str}]``."""
    entries = yaml.safe_load(ACCEPTED_FILE.read_text(encoding="utf-8"))["accepted"]
    for entry in entries:
        assert entry.get("reason", "").strip(), f"{ACCEPTED_FILE}: {entry.get('id')} has no reason"
    return entries


def unaccepted(scan: Scan, entries: list[dict]) -> list[dict]:
    """Findings of ``scan`` at LOW or above, or scan problems, that no accepted entry covers."""

    def covered(finding: dict) -> bool:
        return any(
            entry["id"] == finding["id"]
            and (entry.get("services", "all") == "all" or scan.service in entry["services"])
            and re.search(entry.get("finding", ""), finding.get("finding", ""))
            for entry in entries
        )

    return [f for f in scan.findings if f.get("severity") in FAILING and not covered(f)]

"""What one host of the appliance sees of itself: the facts ``govmail check`` judges.

This module runs **on the host**, with the host's own ``/usr/bin/python3`` and the standard
library only (every host Ansible manages has Python 3; nothing else is certain there, e.g. on the
backup host). The controller sends this file's source on stdin, as Ansible sends its modules:
``python3 - SPEC`` (:func:`govmail.health.collect`), and reads one JSON document from stdout.
It changes nothing on the host and talks only to the host's own loopback address, except the
DNS queries, which go to the resolver the host itself uses (its /etc/resolv.conf).

SPEC (JSON)::

    {"hostname": "mail.quangtri.gov.vn",        # the TLS name every port must present
     "ca_file": "/etc/ssl/govmail/ca.crt",      # the site CA (govmail_tls_ca_certificate)
     "units": ["slapd", "postfix", "dovecot"],  # systemd units that must be active
     "ports": [{"service": "imaps", "port": 993, "mode": "implicit"}, ...],
     "queue": true,                             # read Postfix's queue (postqueue -j)
     "store": "/var/vmail",                     # mail store root (or null)
     "quota_domain": "quangtri.gov.vn",         # read every mailbox's quota (or null)
     "directory": {"table": "ldap:/etc/postfix/ldap/virtual_domains.cf", "key": "quangtri.gov.vn"},
     "dns": [{"name": "quangtri.gov.vn.", "type": "MX", "expected": [...]}, ...]}  # govmail.dns's records

Answer (JSON; sizes in bytes, times in seconds since the epoch)::

    {"now": 1796000000.0,
     "units": {"postfix": "active", "dovecot": "inactive"},            # systemctl is-active
     "ports": [{"service": "imaps", "port": 993, "error": null, "protocol": "TLSv1.3",
                "not_after": 1827000000.0, "subject": "mail.quangtri.gov.vn"}, ...],
     "queue": {"messages": 2, "oldest": 1795999000.0, "error": null},
     "store": {"path": "/var/vmail", "bytes": .., "bytes_free": .., "inodes": .., "inodes_free": ..},
     "quota": {"mailboxes": [{"address": "a@d", "used_kib": 10, "limit_kib": 2097152}], "error": null},
     "directory": {"answer": "quangtri.gov.vn", "error": null},
     "dns": {"resolvers": ["172.29.41.3"], "error": null, "answers": [...]}}   # see dns()

Port modes: ``implicit`` (TLS from the first byte: 465, 993, 995, 636) or the protocol's own
upgrade: ``smtp`` (EHLO, STARTTLS: RFC 3207), ``imap`` (STARTTLS: RFC 9051 §6.2.1), ``pop3``
(STLS: RFC 2595 §4), ``sieve`` (STARTTLS: RFC 5804 §2.2), ``ldap`` (the StartTLS extended
operation 1.3.6.1.4.1.1466.20037: RFC 4511 §4.14). The handshake requires TLS 1.2 or later
(Mozilla "intermediate"), a chain to ``ca_file`` and ``hostname`` in the certificate.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TIMEOUT = 10  # seconds per connection step
LOOPBACK = "127.0.0.1"
# LDAPMessage {messageID 1, ExtendedRequest {requestName "1.3.6.1.4.1.1466.20037"}} (RFC 4511 §4.14.1)
LDAP_STARTTLS = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x16" + b"1.3.6.1.4.1.1466.20037"


class ProbeError(Exception):
    """A port answered, but not as its protocol should."""


class _Lines:
    """CRLF lines from a plain socket, without reading past what the server sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def line(self) -> str:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ProbeError("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")


def _smtp_reply(lines: _Lines) -> str:
    while True:
        line = lines.line()
        if len(line) < 4 or line[3] != "-":
            return line


def _upgrade(sock: socket.socket, mode: str) -> None:
    """Bring a plain connection to the point where the TLS handshake starts."""
    if mode == "ldap":
        sock.sendall(LDAP_STARTTLS)
        answer = sock.recv(4096)
        code = _ldap_result_code(answer)
        if code != 0:
            raise ProbeError(f"StartTLS refused (LDAP result code {code})")
        return
    lines = _Lines(sock)
    if mode == "smtp":
        greeting = _smtp_reply(lines)
        if not greeting.startswith("220"):
            raise ProbeError(f"greeting {greeting!r}")
        lines.send("EHLO govmail-check")
        _smtp_reply(lines)
        lines.send("STARTTLS")
        answer = _smtp_reply(lines)
        if not answer.startswith("220"):
            raise ProbeError(f"STARTTLS answered {answer!r}")
    elif mode == "imap":
        greeting = lines.line()
        if not greeting.startswith("* OK"):
            raise ProbeError(f"greeting {greeting!r}")
        lines.send("a1 STARTTLS")
        answer = lines.line()
        while answer.startswith("*"):
            answer = lines.line()
        if not answer.startswith("a1 OK"):
            raise ProbeError(f"STARTTLS answered {answer!r}")
    elif mode == "pop3":
        greeting = lines.line()
        if not greeting.startswith("+OK"):
            raise ProbeError(f"greeting {greeting!r}")
        lines.send("STLS")
        answer = lines.line()
        if not answer.startswith("+OK"):
            raise ProbeError(f"STLS answered {answer!r}")
    elif mode == "sieve":
        line = lines.line()
        while not line.startswith(("OK", "NO", "BYE")):
            line = lines.line()
        if not line.startswith("OK"):
            raise ProbeError(f"greeting {line!r}")
        lines.send("STARTTLS")
        answer = lines.line()
        if not answer.startswith("OK"):
            raise ProbeError(f"STARTTLS answered {answer!r}")
    else:
        raise ProbeError(f"unknown mode {mode!r}")


def _ldap_result_code(data: bytes) -> int:
    """resultCode of an LDAP ExtendedResponse (BER: SEQUENCE, messageID, [APPLICATION 24] ...)."""

    def header(offset: int) -> tuple[int, int, int]:  # tag, length, offset of the value
        tag, first = data[offset], data[offset + 1]
        offset += 2
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        else:
            length = first
        return tag, length, offset

    try:
        tag, _, offset = header(0)
        _, length, value = header(offset)  # messageID
        tag, _, offset = header(value + length)
        if tag != 0x78:
            raise ProbeError(f"StartTLS answered with LDAP operation tag {tag:#x}")
        tag, length, value = header(offset)  # resultCode ENUMERATED
        return int.from_bytes(data[value : value + length], "big")
    except IndexError:
        raise ProbeError("StartTLS answer is cut short") from None


def probe_port(port: int, mode: str, hostname: str, ca_file: str, address: str = LOOPBACK) -> dict[str, Any]:
    """Connect, upgrade if needed, and shake hands; the facts of the TLS session or its error."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"cannot read the site CA {ca_file}: {exc.strerror or exc}"}
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT) as plain:
            if mode != "implicit":
                _upgrade(plain, mode)
            with context.wrap_socket(plain, server_hostname=hostname) as tls:
                cert = tls.getpeercert() or {}
                subject = dict(item[0] for item in cert.get("subject", ()))
                return {
                    "error": None,
                    "protocol": tls.version(),
                    "not_after": ssl.cert_time_to_seconds(cert["notAfter"]) if "notAfter" in cert else None,
                    "subject": subject.get("commonName", ""),
                }
    except ssl.SSLCertVerificationError as exc:
        return {"error": f"certificate not accepted: {exc.verify_message}", "verify": exc.verify_message}
    except ssl.SSLError as exc:
        return {"error": f"TLS handshake failed: {exc.reason or exc}"}
    except ConnectionRefusedError:
        return {"error": "connection refused (nothing listens)"}
    except TimeoutError:
        return {"error": f"no answer within {TIMEOUT}s"}
    except (OSError, ProbeError) as exc:
        return {"error": str(exc) or exc.__class__.__name__}


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def _last_line(completed: subprocess.CompletedProcess) -> str:
    lines = (completed.stderr or completed.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {completed.returncode}"


def units(names: list[str]) -> dict[str, str]:
    """``systemctl is-active`` of each unit: active, inactive, failed, activating, ..."""
    states = {}
    for name in names:
        try:
            states[name] = _run(["systemctl", "is-active", name]).stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired) as exc:
            states[name] = f"unknown ({exc})"
    return states


def queue() -> dict[str, Any]:
    """Postfix's queue as ``postqueue -j`` lists it (one JSON object per message, Postfix >= 3.1)."""
    try:
        completed = _run(["postqueue", "-j"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"messages": None, "oldest": None, "error": str(exc)}
    if completed.returncode != 0:
        return {"messages": None, "oldest": None, "error": _last_line(completed)}
    arrivals = [json.loads(line).get("arrival_time") for line in completed.stdout.splitlines() if line.strip()]
    times = [float(value) for value in arrivals if value is not None]
    return {"messages": len(arrivals), "oldest": min(times) if times else None, "error": None}


def store(path: str) -> dict[str, Any]:
    """Size and free room of the file system holding ``path`` (statvfs: what an unprivileged user may use)."""
    try:
        stats = os.statvfs(path)
    except OSError as exc:
        return {"path": path, "error": str(exc)}
    return {
        "path": path,
        "bytes": stats.f_blocks * stats.f_frsize,
        "bytes_free": stats.f_bavail * stats.f_frsize,
        "inodes": stats.f_files,
        "inodes_free": stats.f_favail,
        "error": None,
    }


def quota(root: str, domain: str) -> dict[str, Any]:
    """Every mailbox's storage quota (``doveadm quota get``, KiB), mailboxes found as their homes
    (``mail_home = <root>/<domain>/<local part>``: the dovecot role's layout)."""
    base = os.path.join(root, domain)
    try:
        names = sorted(entry.name for entry in os.scandir(base) if entry.is_dir())
    except FileNotFoundError:
        names = []
    except OSError as exc:
        return {"mailboxes": [], "error": str(exc)}
    if not names:
        return {"mailboxes": [], "error": None}
    with tempfile.NamedTemporaryFile("w", suffix=".users") as users:
        users.write("".join(f"{name}@{domain}\n" for name in names))
        users.flush()
        try:
            completed = _run(["doveadm", "-f", "tab", "quota", "get", "-F", users.name])
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"mailboxes": [], "error": str(exc)}
    mailboxes = []
    for line in completed.stdout.splitlines()[1:]:  # header: Username Quota name Type Value Limit %
        fields = line.split("\t")
        if len(fields) >= 5 and fields[2] == "STORAGE":
            limit = int(fields[4]) if fields[4].isdigit() else None
            mailboxes.append({"address": fields[0], "used_kib": int(fields[3]), "limit_kib": limit})
    error = None if completed.returncode == 0 else _last_line(completed)
    return {"mailboxes": mailboxes, "error": error}


def directory(table: str, key: str) -> dict[str, Any]:
    """Postfix's own LDAP lookup of ``key`` in ``table`` (``postmap -q``, not through proxymap)."""
    try:
        completed = _run(["postmap", "-q", key, table])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"answer": None, "error": str(exc)}
    answer = completed.stdout.strip()
    if completed.returncode == 0 and answer:
        return {"answer": answer, "error": None}
    if completed.returncode == 1 and not completed.stderr.strip():
        return {"answer": None, "error": f"{key} not found in {table}"}
    return {"answer": None, "error": _last_line(completed).removeprefix("postmap: ")}


def crl(path: str, ca_file: str) -> dict[str, Any] | None:
    """The CRL this host publishes and the site CA, base64 (judged on the controller, with the
    ``cryptography`` package); ``None`` when the host publishes no CRL there."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"error": f"cannot read {path}: {exc.strerror or exc}"}
    try:
        ca = Path(ca_file).read_bytes()
    except OSError:
        ca = b""
    return {"path": path, "data": base64.b64encode(data).decode(), "ca": base64.b64encode(ca).decode()}


RESOLV_CONF = "/etc/resolv.conf"
DIG_TIMEOUT = 2  # seconds per try (dig +time), two tries per record


def resolvers(path: str = RESOLV_CONF) -> list[str]:
    """The ``nameserver`` addresses of the host's resolver configuration (resolv.conf(5))."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [
        line.split()[1] for line in text.splitlines() if line.strip().startswith("nameserver") and len(line.split()) > 1
    ]


def dns(queries: list[dict[str, Any]]) -> dict[str, Any]:
    """Each ``{"name", "type"}`` asked of the host's own resolver with Debian's ``dig`` (bind9-dnsutils),
    as any program on the host would see it. Answer::

        {"resolvers": ["172.29.41.3"], "error": null | "no resolver answers (...)",
         "answers": [{"name": N, "type": T, "status": "NOERROR"|"NXDOMAIN"|..., "values": [DATA, ...],
                      "error": null | TEXT}, ...]}

    ``values`` are the answer section's data of that type (zone-file presentation, as dig prints it).
    ``error`` (top level) is set when not one query got an answer: the resolver is unreachable.
    """
    answers = []
    for query in queries:
        argv = [
            "dig",
            "+noall",
            "+answer",
            "+comments",
            f"+time={DIG_TIMEOUT}",
            "+tries=2",
            query["name"],
            query["type"],
        ]
        try:
            completed = _run(argv)
        except FileNotFoundError:
            return {"resolvers": resolvers(), "answers": [], "error": "dig is not installed (Debian's bind9-dnsutils)"}
        except (OSError, subprocess.TimeoutExpired) as exc:
            answers.append({**query, "status": None, "values": [], "error": str(exc)})
            continue
        status, values = None, []
        for line in completed.stdout.splitlines():
            if "status:" in line and line.startswith(";;"):
                status = line.split("status:", 1)[1].split(",", 1)[0].strip()
            elif line and not line.startswith(";"):
                fields = line.split(None, 4)
                if len(fields) == 5 and fields[3].upper() == query["type"].upper():
                    values.append(fields[4])
        error = None if status else _last_line(completed).lstrip("; ")
        answers.append({**query, "status": status, "values": values, "error": error})
    unreachable = answers and all(answer["status"] is None for answer in answers)
    error = f"no resolver answers ({answers[0]['error']})" if unreachable else None
    return {"resolvers": resolvers(), "answers": answers, "error": error}


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Every fact ``spec`` asks for (module docstring)."""
    facts: dict[str, Any] = {"now": time.time(), "units": units(spec.get("units", []))}
    facts["ports"] = [
        {"service": port["service"], "port": port["port"]}
        | probe_port(port["port"], port["mode"], spec["hostname"], spec["ca_file"])
        for port in spec.get("ports", [])
    ]
    if spec.get("queue"):
        facts["queue"] = queue()
    if spec.get("store"):
        facts["store"] = store(spec["store"])
        if spec.get("quota_domain"):
            facts["quota"] = quota(spec["store"], spec["quota_domain"])
    if spec.get("directory"):
        facts["directory"] = directory(spec["directory"]["table"], spec["directory"]["key"])
    if spec.get("dns"):
        facts["dns"] = dns([{"name": q["name"], "type": q["type"]} for q in spec["dns"]])
    if spec.get("crl_file"):
        published = crl(spec["crl_file"], spec["ca_file"])
        if published is not None:
            facts["crl"] = published
    return facts


if __name__ == "__main__":
    json.dump(probe(json.loads(sys.argv[1])), sys.stdout)

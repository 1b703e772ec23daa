"""Real protocol clients that reach the appliance on 127.0.0.1 but verify TLS for its host name.

The published ports live on 127.0.0.1, while certificates name the mail host
(mail.quangtri.gov.vn): each client connects to the address but uses the host name for SNI
and certificate verification, exactly as a desktop client that resolves the name would.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import time

CONNECT_TIMEOUT = 20


class SMTP(smtplib.SMTP):
    def __init__(self, address: str, hostname: str, port: int, **kwargs):
        self._address = address
        super().__init__(hostname, port, timeout=CONNECT_TIMEOUT, **kwargs)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._address, port), timeout)


class SMTP_SSL(smtplib.SMTP_SSL):
    def __init__(self, address: str, hostname: str, port: int, context: ssl.SSLContext):
        self._address = address
        super().__init__(hostname, port, timeout=CONNECT_TIMEOUT, context=context)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((self._address, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._host)


class IMAP(imaplib.IMAP4):
    def __init__(self, address: str, hostname: str, port: int):
        self._address = address
        super().__init__(hostname, port, timeout=CONNECT_TIMEOUT)

    def _create_socket(self, timeout):
        return socket.create_connection((self._address, self.port), timeout)


class IMAP_SSL(imaplib.IMAP4_SSL):
    def __init__(self, address: str, hostname: str, port: int, context: ssl.SSLContext):
        self._address = address
        super().__init__(hostname, port, ssl_context=context, timeout=CONNECT_TIMEOUT)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self._address, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class POP3(poplib.POP3):
    def __init__(self, address: str, hostname: str, port: int):
        self._address = address
        super().__init__(hostname, port, timeout=CONNECT_TIMEOUT)

    def _create_socket(self, timeout):
        return socket.create_connection((self._address, self.port), timeout)


class POP3_SSL(poplib.POP3_SSL):
    def __init__(self, address: str, hostname: str, port: int, context: ssl.SSLContext):
        self._address = address
        super().__init__(hostname, port, context=context, timeout=CONNECT_TIMEOUT)

    def _create_socket(self, timeout):
        sock = socket.create_connection((self._address, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


class ManageSieve:
    """Just enough of RFC 5804 to test STARTTLS, login and uploading a script."""

    def __init__(self, address: str, hostname: str, port: int):
        self.hostname = hostname
        self.sock = socket.create_connection((address, port), CONNECT_TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.capabilities = self._read_response()[0]

    def _read_response(self) -> tuple[list[str], str]:
        lines = []
        while True:
            line = self.file.readline().decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                raise ConnectionError("ManageSieve server closed the connection")
            if line.split(" ", 1)[0].upper() in ("OK", "NO", "BYE"):
                return lines, line
            lines.append(line)

    def command(self, text: str) -> tuple[list[str], str]:
        self.sock.sendall(text.encode() + b"\r\n")
        return self._read_response()

    def starttls(self, context: ssl.SSLContext) -> str:
        _, status = self.command("STARTTLS")
        if status.upper().startswith("OK"):
            self.sock = context.wrap_socket(self.sock, server_hostname=self.hostname)
            self.file = self.sock.makefile("rb")
            self.capabilities = self._read_response()[0]
        return status

    def authenticate(self, user: str, password: str) -> str:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.command(f'AUTHENTICATE "PLAIN" "{token}"')[1]

    def put_script(self, name: str, text: str) -> str:
        """PUTSCRIPT with a non-synchronising literal (RFC 5804 2.6); the status line."""
        data = text.encode()
        self.sock.sendall(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")
        status = self._read_response()[1]
        literal = re.fullmatch(r"(.*)\{(\d+)\}", status)
        if literal:  # the reason as a literal (the compiler's errors): "NO <reason>"
            reason = self.file.read(int(literal.group(2))).decode("utf-8", "replace")
            self.file.readline()
            status = literal.group(1) + reason
        return status

    def set_active(self, name: str) -> str:
        """SETACTIVE (RFC 5804 2.8); "" deactivates every script. The status line."""
        return self.command(f'SETACTIVE "{name}"')[1]

    def list_scripts(self) -> dict[str, bool]:
        """LISTSCRIPTS (RFC 5804 2.7): {script name: active}."""
        lines, status = self.command("LISTSCRIPTS")
        assert status.upper().startswith("OK"), status
        found = (re.fullmatch(r'"(.*)"( ACTIVE)?', line.strip()) for line in lines)
        return {match.group(1): bool(match.group(2)) for match in found if match}

    def get_script(self, name: str) -> str:
        """GETSCRIPT (RFC 5804 2.9): the script's text, read as the literal the server sends."""
        self.sock.sendall(f'GETSCRIPT "{name}"\r\n'.encode())
        first = self.file.readline().decode("utf-8", "replace").rstrip("\r\n")
        literal = re.fullmatch(r"\{(\d+)\}", first)
        assert literal, first
        text = self.file.read(int(literal.group(1))).decode("utf-8", "replace")
        self.file.readline()  # the CRLF after the literal
        status = self._read_response()[1]
        assert status.upper().startswith("OK"), status
        return text

    def delete_script(self, name: str) -> str:
        return self.command(f'DELETESCRIPT "{name}"')[1]

    def close(self):
        with contextlib.suppress(OSError):
            self.command("LOGOUT")
        self.sock.close()


def imap_utf7(name: str) -> str:
    """RFC 3501 modified UTF-7, as Thunderbird and Outlook put folder names on the wire."""
    out, buffer = [], []

    def flush():
        if buffer:
            encoded = "".join(buffer).encode("utf-16-be")
            out.append("&" + base64.b64encode(encoded).decode().rstrip("=").replace("/", ",") + "-")
            buffer.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            buffer.append(char)
    flush()
    return "".join(out)


def wait_for(predicate, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Poll ``predicate`` until it returns a true value; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

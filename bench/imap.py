"""IMAP: C concurrent users doing login, select, fetch headers, fetch bodies, logout (asyncio).

The figure is whole sessions per second (each one login) and the latency of a session and of its
LOGIN. The bound is the same load with authentication served from Dovecot's auth cache (warmed by
a first pass), so the directory's authentication bind is taken out of each login: the ratio shows
what the bind per login (ppolicy, lastbind write) costs. The appliance does not keep the cache:
with it, a changed or locked password would keep working until the cache entry expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import setup
from lib import BenchError, Figure, dovecot_drop_in, percentiles, sh

MESSAGES_PER_USER = 10


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.counter = reader, writer, 0

    async def command(self, text: str) -> list[bytes]:
        self.counter += 1
        tag = f"a{self.counter}".encode()
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        await self.writer.drain()
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise BenchError(f"connection closed during {text.split()[0]}")
            lines.append(line)
            if line.endswith(b"}\r\n"):  # a literal: read its bytes, then the rest of the line
                size = int(line[line.rindex(b"{") + 1 : -3])
                lines.append(await self.reader.readexactly(size))
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise BenchError(f"{text.split()[0]} refused: {line.decode(errors='replace').strip()}")
                return lines


async def one_session(port: int, context: ssl.SSLContext, user: str, password: str) -> tuple[float, float]:
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=None)
    session = Session(reader, writer)
    await reader.readline()  # greeting
    login_start = time.monotonic()
    await session.command(f'LOGIN "{user}" "{password}"')
    login = time.monotonic() - login_start
    await session.command("SELECT INBOX")
    await session.command("FETCH 1:* (BODY.PEEK[HEADER])")
    await session.command("FETCH 1:* (BODY.PEEK[])")
    await session.command("LOGOUT")
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()
    return time.monotonic() - start, login


async def load(port: int, users: list[str], password: str, rounds: int) -> dict:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the load generator measures, the appliance tests verify

    async def user_loop(user: str) -> list[tuple[float, float]]:
        return [await one_session(port, context, user, password) for _ in range(rounds)]

    start = time.monotonic()
    results = await asyncio.gather(*(user_loop(user) for user in users))
    elapsed = time.monotonic() - start
    sessions = [item for per_user in results for item in per_user]
    return {
        "sessions_per_s": len(sessions) / elapsed,
        "session_s": percentiles([item[0] for item in sessions], (50, 99)),
        "login_s": percentiles([item[1] for item in sessions], (50, 99)),
        "sessions": len(sessions),
    }


def _fill(users: list[str]) -> None:
    for user in users:
        sh(f"doveadm expunge -u {user} mailbox INBOX all 2>/dev/null; true", check=False)
    jobs = " ".join(
        f"smtp-source -l 4096 -m {MESSAGES_PER_USER} -s 2 -f bench@example.net -t {user} 127.0.0.1:25 >/dev/null &"
        for user in users
    )
    sh(f"{jobs} wait")
    expected = MESSAGES_PER_USER
    deadline = time.monotonic() + 300
    for user in users:
        while True:
            count = sh(f"doveadm -f flow mailbox status -u {user} messages INBOX", check=False).strip()
            if count.endswith(f"={expected}") or time.monotonic() > deadline:
                break
            time.sleep(0.5)


def _auth_cache(enabled: bool) -> None:
    dovecot_drop_in("auth-cache", "auth_cache_size = 10M\nauth_cache_ttl = 1h\n" if enabled else None)


def run(concurrency: int = 20, rounds: int = 10, port: int = 10993) -> list[Figure]:
    _auth_cache(False)  # an interrupted earlier run may have left it on
    domain = sh("postconf -h mydomain").strip()
    users, password = setup.ensure_mailboxes(concurrency, domain)
    _fill(users)
    measured = asyncio.run(load(port, users, password, rounds))
    _auth_cache(True)
    try:
        asyncio.run(load(port, users, password, 1))  # warm the cache
        cached = asyncio.run(load(port, users, password, rounds))
    finally:
        _auth_cache(False)
    for user in users:
        sh(f"doveadm expunge -u {user} mailbox INBOX all", check=False)
    details = {"concurrency": concurrency, "rounds": rounds, "measured": measured, "auth_cache": cached}
    return [
        Figure(
            "IMAP sessions/s (login, select, fetch, logout)",
            measured["sessions_per_s"],
            "sessions/s",
            "same with Dovecot auth cache",
            cached["sessions_per_s"],
            details,
        ),
        Figure(
            "IMAP login p50",
            measured["login_s"]["p50"],
            "s",
            "same with Dovecot auth cache",
            cached["login_s"]["p50"],
            {"p99": measured["login_s"]["p99"], "cached_p99": cached["login_s"]["p99"]},
        ),
    ]

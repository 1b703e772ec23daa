"""Crash safety under load (issue 10): nothing accepted with 250 is lost or delivered twice.

Several sessions stream numbered messages into 25 and 587 while Postfix's master, Dovecot's
LMTP and master and slapd are killed with SIGKILL one at a time (systemd restarts them), or
while the whole mail host restarts. The clients behave like real ones: a 4xx reply or a lost
connection means "try again later" (each attempt carries its own Message-ID, so the check is
exact). Afterwards every attempt answered 250 is in the mailbox, attempts refused with 4xx are
not there, nothing got a 5xx, Postfix's queue drains to empty, and each message is stored
exactly once: a delivery Dovecot stored but could not confirm before it was killed comes back
from Postfix's queue and is recognised (roles/dovecot, deliver-once.sieve; test_deliver_once).

Bounded: at most SESSIONS x MAX_PER_SESSION messages of a few hundred bytes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import smtplib
import subprocess
import threading
import time
import uuid

import clients
import pytest
from conftest import MAIL_CONTAINER

MAX_PER_SESSION = 60
PAUSE_AFTER_FAILURE = 0.5


class Stream:
    """Sessions that send numbered messages until told to stop, recording every attempt's outcome."""

    def __init__(self, connect, recipient: str, sessions: dict[str, tuple[str, str]]):
        self.run = uuid.uuid4().hex[:10]
        self.connect, self.recipient, self.sessions = connect, recipient, sessions
        self.outcomes: dict[str, str] = {}  # Message-ID -> accepted | temporary | unknown | refused
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._session, args=(name,), daemon=True) for name in sessions]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _record(self, message_id: str, outcome: str) -> None:
        with self.lock:
            self.outcomes[message_id] = outcome

    @staticmethod
    def _drop(client):
        with contextlib.suppress(Exception):
            client.close()

    def _session(self, name: str) -> None:
        service, sender = self.sessions[name]
        client = None
        for number in range(MAX_PER_SESSION):
            if self.stop.is_set():
                break
            for attempt in range(200):
                message_id = f"<crash-{self.run}-{name}-{number}-{attempt}@govmail.test>"
                raw = (
                    f"From: <{sender or 'mailer-daemon@ubnd.example.org'}>\r\nTo: <{self.recipient}>\r\n"
                    f"Subject: crash {self.run} {name} {number}\r\nMessage-ID: {message_id}\r\n\r\n"
                    f"Message {number} of session {name}, attempt {attempt}.\r\n"
                ).encode()
                stage = "connect"
                try:
                    if client is None:
                        client = self.connect(service)
                    stage = "envelope"
                    code, _ = client.mail(sender)
                    if code == 250:
                        code, _ = client.rcpt(self.recipient)
                    if code == 250:
                        stage = "data"
                        code, _ = client.data(raw)
                    if code == 250:
                        self._record(message_id, "accepted")
                        break
                    self._record(message_id, "temporary" if 400 <= code < 500 else "refused")
                    with contextlib.suppress(Exception):
                        client.rset()
                except smtplib.SMTPResponseException as error:  # a reply: 4xx try again, 5xx final
                    self._record(message_id, "temporary" if 400 <= error.smtp_code < 500 else "refused")
                    client = self._drop(client)
                except (smtplib.SMTPException, OSError):  # no reply: after DATA the outcome is unknown
                    self._record(message_id, "unknown" if stage == "data" else "temporary")
                    client = self._drop(client)
                time.sleep(PAUSE_AFTER_FAILURE)
        if client is not None:
            with contextlib.suppress(Exception):
                client.quit()


@pytest.fixture
def connect(address, hostname, port, tls, alice):
    def open_session(service: str):
        if service == "smtp":
            client = clients.SMTP(address, hostname, port("smtp"))
            client.ehlo("mx.example.org")
            return client
        client = clients.SMTP(address, hostname, port("submission"))
        client.ehlo("client.example")
        client.starttls(context=tls)
        client.ehlo("client.example")
        client.login(alice["address"], alice["password"])
        return client

    return open_session


@pytest.fixture
def sessions(alice):
    return {
        "mx1": ("smtp", "van.thu@ubnd.example.org"),
        "mx2": ("smtp", ""),
        "sub1": ("submission", alice["address"]),
        "sub2": ("submission", alice["address"]),
    }


def _host(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", MAIL_CONTAINER, "sh", "-c", command], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def _restarts(unit: str) -> int:
    return int(_host(f"systemctl show -p NRestarts --value {unit}").stdout.strip() or 0)


def _serving() -> bool:
    states = _host("systemctl is-active postfix dovecot slapd").stdout.split()
    return states == ["active"] * 3 and _host("test -S /var/spool/postfix/private/dovecot-lmtp").returncode == 0


def _queue_drained() -> bool:
    _host("postqueue -f")  # retry what was deferred now, not after Postfix's backoff
    return _host("postqueue -j").stdout.strip() == ""


def _stored_ids(imaps, account, run: str) -> collections.Counter:
    client = imaps(account)
    client.select("INBOX", readonly=True)
    typ, data = client.search(None, "HEADER", "Message-ID", f"crash-{run}-")
    numbers = data[0].split() if typ == "OK" else []
    found = collections.Counter()
    for start in range(0, len(numbers), 200):
        chunk = b",".join(numbers[start : start + 200]).decode()
        typ, parts = client.fetch(chunk, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        for part in parts:
            if isinstance(part, tuple):
                match = re.search(rb"<crash-[^>]+>", part[1])
                if match:
                    found[match.group().decode()] += 1
    client.logout()
    return found


def _check(stream: Stream, imaps, account) -> dict:
    clients.wait_for(_queue_drained, timeout=120, interval=2, what="Postfix's queue to drain")
    stored = _stored_ids(imaps, account, stream.run)
    by_outcome = collections.defaultdict(list)
    for message_id, outcome in stream.outcomes.items():
        by_outcome[outcome].append(message_id)
    summary = {outcome: len(ids) for outcome, ids in by_outcome.items()}
    assert by_outcome["accepted"], f"nothing was accepted at all: {summary}"
    assert not by_outcome["refused"], f"5xx refusals under crashes: {by_outcome['refused'][:5]}"
    lost = [mid for mid in by_outcome["accepted"] if stored[mid] == 0]
    doubled = [mid for mid in by_outcome["accepted"] + by_outcome["unknown"] if stored[mid] > 1]
    assert not doubled, f"stored more than once: {doubled[:5]} ({summary})"
    refused_but_stored = [mid for mid in by_outcome["temporary"] if stored[mid]]
    unexpected = [mid for mid in stored if mid not in stream.outcomes]
    assert not lost, f"accepted with 250 but not in the mailbox: {lost[:5]} ({summary})"
    assert not refused_but_stored, f"refused with 4xx but delivered: {refused_but_stored[:5]} ({summary})"
    assert not unexpected, unexpected[:5]
    return summary


KILLS = {
    "postfix master": ("systemctl kill -s KILL --kill-whom=main postfix", "postfix"),
    # Dovecot's LMTP processes only (Postfix's LMTP client processes are also called lmtp)
    "dovecot lmtp": (
        "for pid in $(pgrep -x -P $(systemctl show -p MainPID --value dovecot) lmtp); do kill -KILL $pid; done",
        None,
    ),
    "dovecot master": ("systemctl kill -s KILL --kill-whom=main dovecot", "dovecot"),
    "slapd": ("systemctl kill -s KILL --kill-whom=main slapd", "slapd"),
}


@pytest.mark.parametrize("name", list(KILLS))
def test_nothing_accepted_is_lost_when_a_daemon_is_killed(name, connect, sessions, imaps, bob):
    assert clients.wait_for(_serving, timeout=60, what="the mail host to serve")
    command, unit = KILLS[name]
    with Stream(connect, bob["address"], sessions) as stream:
        time.sleep(2)
        before = _restarts(unit) if unit else None
        killed = _host(command)
        assert killed.returncode == 0, (name, killed.stderr)
        if unit:
            clients.wait_for(lambda: _restarts(unit) > before, timeout=60,
                             what=f"systemd to restart {unit} after {name} was killed")  # fmt: skip
        clients.wait_for(_serving, timeout=60, what=f"the mail host to serve again after killing {name}")
        time.sleep(2)
    summary = _check(stream, imaps, bob)
    print(name, json.dumps(summary))


def test_nothing_accepted_is_lost_across_a_restart_of_the_mail_host(connect, sessions, imaps, bob):
    assert clients.wait_for(_serving, timeout=60, what="the mail host to serve")
    with Stream(connect, bob["address"], sessions) as stream:
        time.sleep(3)
        restarted = subprocess.run(["docker", "restart", "-t", "10", MAIL_CONTAINER], capture_output=True, text=True,
                                   timeout=180, check=False)  # fmt: skip
        assert restarted.returncode == 0, restarted.stderr
        clients.wait_for(_serving, timeout=120, interval=2, what="the mail host to serve after its restart")
        time.sleep(5)
    summary = _check(stream, imaps, bob)
    print(json.dumps(summary))

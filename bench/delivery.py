"""Delivery: Postfix's smtp-source into port 25 until every message is in a Maildir.

Bounds measured in the same run, on the same host, with the same smtp-source command:
- ``smtp-sink``: SMTP acceptance alone (no queue, no lookups, no delivery);
- null LMTP: the whole Postfix path, delivering to ``smtp-sink -L`` on a unix socket instead of
  Dovecot, isolates what the mail store costs;
- the disk's fsync rate (fio, fsync after every 4 KiB write, on the Maildir volume) divided by the
  fsyncs one delivered message costs (strace -c on Postfix and Dovecot while delivering): the
  physical ceiling of a delivery path that loses nothing.
Per-message latency percentiles come from Postfix's own log (``delay=``, and its last component:
the LMTP transaction with Dovecot).

A burst to one mailbox (600 x 10 KB over 20 sessions, as when every unit answers an agency's
circular) is measured apart, against smtp-sink with the same burst, and counts Dovecot's
"451 Too many concurrent deliveries" answers. ``lmtp_concurrency_trial`` (``run.py --trial
lmtp-concurrency``) measures that burst with Dovecot's stock per-mailbox limit (10) and with the
role's (20, as many as Postfix's LMTP connections): the tuning's before and after. Its "before"
waits for Postfix's retry of the deferred messages: about 7 minutes.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from shlex import quote

import setup
from lib import (
    MAIL_CONTAINER,
    BenchError,
    Figure,
    dovecot_drop_in,
    ensure_packages,
    peak_memory,
    percentiles,
    sh,
    wait_until,
)

RECIPIENTS = 4  # smtp-source sends to one address per process: one process per bench mailbox
NULL_SOCKET = "private/null-lmtp"
SYSCALLS = "fsync,fdatasync,sync_file_range,msync"


def _domain() -> str:
    return sh("postconf -h mydomain").strip() or sh("postconf -h myorigin").strip()


def _maildir_count(addresses: list[str]) -> int:
    paths = " ".join(f"/var/vmail/{a.split('@')[1]}/{a.split('@')[0]}/Maildir/new" for a in addresses)
    return int(sh(f"find {paths} -type f 2>/dev/null | wc -l").strip() or 0)


def _empty_mailboxes(addresses: list[str]) -> None:
    for address in addresses:
        sh(
            f"doveadm expunge -u {address} mailbox INBOX all 2>/dev/null; doveadm quota recalc -u {address}",
            check=False,
        )


def _queue_empty() -> bool:
    return "Mail queue is empty" in sh("postqueue -p | tail -1", check=False)


def _source(target: str, addresses: list[str], count: int, sessions: int, size: int, sender: str) -> str:
    """One smtp-source process per recipient, in parallel, sharing ``count`` and ``sessions``."""
    per = max(1, count // len(addresses))
    each = max(1, sessions // len(addresses))
    jobs = " ".join(
        f"smtp-source -l {size} -m {per} -s {each} -f {sender} -t {address} -S govmail-bench {target} "
        f">/dev/null 2>>/tmp/bench-source.err &"
        for address in addresses
    )
    # smtp-source reports refused connections and SMTP errors on stderr: any of it fails the run
    errors = "/tmp/bench-source.err"
    return f"rm -f {errors}; {jobs} wait; if [ -s {errors} ]; then head -3 {errors} >&2; exit 1; fi"


def _timed(script: str) -> float:
    start = time.monotonic()
    sh(script, timeout=3600)
    return time.monotonic() - start


def sink_rate(addresses, count, sessions, size, sender) -> float:
    sh("pkill -x smtp-sink; (smtp-sink -u postfix 127.0.0.1:2525 512 >/dev/null 2>&1 &) ; sleep 0.5", check=False)
    try:
        seconds = _timed(_source("127.0.0.1:2525", addresses, count, sessions, size, sender))
    finally:
        sh("pkill -x smtp-sink", check=False)
    return count / seconds


# roles/postfix's transport_maps file: the trial route goes there (main.cf is never edited) and
# the next converge rewrites the file with the inventory's routes only.
TRANSPORT_FILE = "/etc/postfix/transport"
TRIAL_MARK = "# govmail bench trial route"


def restore_transport() -> None:
    """Take the trial route out of the transport file if an interrupted run left it there."""
    sh(
        f"if grep -q {quote(TRIAL_MARK)} {TRANSPORT_FILE}; then sed -i '/{TRIAL_MARK}/,+1d' {TRANSPORT_FILE} && "
        "postfix reload >/dev/null 2>&1; postqueue -f; fi",
        check=False,
    )


def null_lmtp_rate(addresses, count, sessions, size, sender) -> float:
    restore_transport()
    domain = addresses[0].rpartition("@")[2]
    sh(
        "pkill -x smtp-sink; cd /var/spool/postfix && "
        "(smtp-sink -u postfix -L unix:private/null-lmtp 512 >/dev/null 2>&1 &); "
        "sleep 0.5; chmod 666 /var/spool/postfix/private/null-lmtp; "
        f"printf '%s\\n%s\\n' {quote(TRIAL_MARK)} {quote(f'{domain} lmtp:unix:{NULL_SOCKET}')} >> {TRANSPORT_FILE} && "
        "postfix reload >/dev/null 2>&1; sleep 1",
        check=False,
    )
    try:
        start = time.monotonic()
        sh(_source("127.0.0.1:25", addresses, count, sessions, size, sender), timeout=3600)
        wait_until(_queue_empty, timeout=600, interval=0.25)
        seconds = time.monotonic() - start
    finally:
        restore_transport()
        sh(f"pkill -x smtp-sink; rm -f /var/spool/postfix/{NULL_SOCKET}", check=False)
    return count / seconds


def delivery_rate(addresses, count, sessions, size, sender) -> tuple[float, dict]:
    _empty_mailboxes(addresses)
    since = sh("date +%s").strip()
    with peak_memory() as memory:
        start = time.monotonic()
        sh(_source("127.0.0.1:25", addresses, count, sessions, size, sender), timeout=3600)
        expected = (count // len(addresses)) * len(addresses)
        wait_until(lambda: _maildir_count(addresses) >= expected, timeout=3600, interval=0.5)
        seconds = time.monotonic() - start
    latency = _latencies(since)
    return expected / seconds, {"seconds": round(seconds, 2), "messages": expected, **memory, **latency}


def burst_one_mailbox(address: str, count: int, sessions: int, sender: str) -> tuple[float, dict]:
    """``count`` 10 KB messages over ``sessions`` sessions to one mailbox, until all are in its Maildir."""
    _empty_mailboxes([address])
    since = sh("date +%s").strip()
    start = time.monotonic()
    sh(_source("127.0.0.1:25", [address], count, sessions, 10240, sender), timeout=3600)
    accepted = time.monotonic() - start
    wait_until(lambda: _maildir_count([address]) >= count, timeout=3600, interval=0.5)
    seconds = time.monotonic() - start
    log = f"journalctl --since @{since} -o cat --no-pager"
    refused = sh(f"{log} | grep -c 'Too many concurrent deliveries'", check=False)
    latency = _latencies(since)
    _empty_mailboxes([address])
    return count / seconds, {
        "seconds": round(seconds, 1),
        "accepted_in_s": round(accepted, 1),
        "messages": count,
        "sessions": sessions,
        "deferred_too_many_concurrent": int(refused.strip() or 0),
        "latency_s": latency["latency_s"],
    }


def lmtp_concurrency_trial(count: int = 600, sessions: int = 20) -> dict:
    """The burst with Dovecot's stock lmtp_user_concurrency_limit (10), then with the role's."""
    restore_transport()
    address = setup.ensure_mailboxes(1, _domain())[0][0]
    sender = "bench@example.net"
    configured = sh("doveconf -h lmtp_user_concurrency_limit").strip()
    dovecot_drop_in("lmtp-concurrency", "lmtp_user_concurrency_limit = 10\n")
    try:
        before_rate, before = burst_one_mailbox(address, count, sessions, sender)
    finally:
        dovecot_drop_in("lmtp-concurrency", None)
    after_rate, after = burst_one_mailbox(address, count, sessions, sender)

    def summary(rate: float, details: dict) -> dict:
        return {
            "msg/s": round(rate, 1),
            "all delivered s": details["seconds"],
            "deferred 451": details["deferred_too_many_concurrent"],
            "latency p99 s": details["latency_s"].get("p99"),
        }

    return {
        "what": f"Dovecot lmtp_user_concurrency_limit 10 (stock) -> {configured}, as many as Postfix's "
        "LMTP connections (lmtp_destination_concurrency_limit)",
        "why": "a burst to one mailbox: Dovecot answered part of it '451 Too many concurrent deliveries' and "
        "Postfix retried those only after minimal_backoff_time (300 s)",
        "benchmark": f"delivery.lmtp_concurrency_trial, {count} x 10 KB, {sessions} sessions, one mailbox, lab",
        "before": summary(before_rate, before),
        "after": summary(after_rate, after),
        "adopted": configured != "10",
        "conclusion": f"{before['deferred_too_many_concurrent']} deferred before, "
        f"{after['deferred_too_many_concurrent']} after; the roles postfix and dovecot both take "
        "govmail_lmtp_concurrency (20)",
    }


USERDB_CACHE = "auth_cache_size = 1M\nauth_cache_ttl = 1 min\npassdb_use_cache = no\n"


def userdb_cache_trial(count: int = 1000, sessions: int = 20) -> dict:
    """Delivery with Dovecot's auth cache for userdb lookups only, against the role's (no cache).

    Every message costs two userdb lookups in the directory (quota-status at Postfix's RCPT, then
    LMTP's RCPT); passdb stays uncached so a lock or a password change acts at once.
    """
    restore_transport()
    addresses = setup.ensure_mailboxes(RECIPIENTS, _domain())[0]
    sender = "bench@example.net"
    before_rate, before = delivery_rate(addresses, count, sessions, 10240, sender)
    dovecot_drop_in("userdb-cache", USERDB_CACHE)
    try:
        after_rate, after = delivery_rate(addresses, count, sessions, 10240, sender)
    finally:
        dovecot_drop_in("userdb-cache", None)
        _empty_mailboxes(addresses)

    def summary(rate: float, details: dict) -> dict:
        return {"msg/s": round(rate, 1), "latency p50 s": details["latency_s"].get("p50")}

    gain = after_rate / before_rate - 1
    return {
        "what": "Dovecot auth cache for userdb lookups only (auth_cache_size 1M, ttl 1 min, passdb_use_cache no)",
        "why": "each message costs two userdb lookups in the directory: quota-status at RCPT and LMTP's RCPT",
        "benchmark": f"delivery.userdb_cache_trial, {count} x 10 KB, {RECIPIENTS} mailboxes, {sessions} sessions",
        "before": summary(before_rate, before),
        "after": summary(after_rate, after),
        "adopted": False,
        "conclusion": f"{gain:+.0%} delivered/s; "
        + (
            "within this VM's run-to-run noise: not worth a quota or kind change taking up to a minute to act"
            if abs(gain) < 0.15
            else "a real change: weigh it against a quota or kind change taking up to a minute to act"
        ),
    }


def _latencies(since: str) -> dict:
    """Postfix's own per-message timings: ``delay=`` and its parts ``delays=a/b/c/d``.

    a: before the queue manager (smtpd, cleanup), b: waiting in the queue manager, c: connection
    set-up to Dovecot's LMTP, d: the LMTP transaction (Dovecot's delivery).
    """
    log = sh(f"journalctl --since @{since} -o cat --no-pager | grep 'status=sent' | grep dovecot-lmtp", check=False)
    total: list[float] = []
    parts: dict[str, list[float]] = {name: [] for name in ("before_queue", "in_queue", "connect", "lmtp")}
    for line in log.splitlines():
        found = re.search(r"delay=([\d.]+), delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)", line)
        if found:
            total.append(float(found.group(1)))
            for index, name in enumerate(parts, start=2):
                parts[name].append(float(found.group(index)))
    return {
        "latency_s": percentiles(total),
        "latency_parts_s": {name: percentiles(values) for name, values in parts.items()},
        "lmtp_transaction_s": percentiles(parts["lmtp"]),
        "logged_deliveries": len(total),
    }


def _host_pids(pattern: str) -> list[str]:
    """PIDs, as the controller sees them, of the mail host's processes whose command matches."""
    listing = subprocess.run(
        ["docker", "top", MAIL_CONTAINER, "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    return [line.split(None, 1)[0] for line in listing if re.match(pattern, line.split(None, 1)[1])]


def fsyncs_per_message(addresses, count, sessions, size, sender) -> dict:
    """strace -c on Postfix and Dovecot (every running process, and -f for the ones forked later).

    strace runs on the controller: the lab's containers may not ptrace (no CAP_SYS_PTRACE).
    """
    if shutil.which("strace") is None:
        raise BenchError("strace is not installed on this machine: apt-get install strace")
    _empty_mailboxes(addresses)
    patterns = {
        "postfix": r"(/usr/lib/postfix/sbin/master|"
        r"(smtpd|cleanup|qmgr|lmtp|trivial-rewrite|proxymap|bounce|tlsmgr|anvil) -)",
        "dovecot": r"(/usr/sbin/)?dovecot",
    }
    tracers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pattern in patterns.items():
            flags = [arg for pid in _host_pids(pattern) for arg in ("-p", pid)]
            output = f"{tmp}/{name}"
            tracers[name] = (
                subprocess.Popen(
                    ["strace", "-c", "-f", "-e", f"trace={SYSCALLS}", "-o", output, *flags],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
                output,
            )
        time.sleep(1)
        try:
            sh(_source("127.0.0.1:25", addresses, count, sessions, size, sender), timeout=3600)
            expected = (count // len(addresses)) * len(addresses)
            wait_until(lambda: _maildir_count(addresses) >= expected, timeout=3600, interval=0.5)
        finally:
            for process, _ in tracers.values():
                process.send_signal(signal.SIGINT)
            for process, _ in tracers.values():
                process.wait(timeout=60)
        result = {}
        for name, (_, output) in tracers.items():
            calls = 0
            for line in Path(output).read_text().splitlines():
                parts = line.split()
                if parts and parts[-1] in SYSCALLS.split(",") and len(parts) >= 5:
                    calls += int(parts[3])
            result[name] = round(calls / expected, 2)
    return result


def disk_fsync_rate() -> float:
    """fsyncs/s of the Maildir volume: 4 KiB writes, fsync after each (fio)."""
    output = sh(
        "fio --name=fsync --directory=/var/vmail --rw=write --bs=4k --size=4m --fsync=1 --ioengine=sync "
        "--output-format=json 2>/dev/null; rm -f /var/vmail/fsync.*"
    )
    try:
        iops = float(json.loads(output)["jobs"][0]["write"]["iops"])
    except (ValueError, KeyError, IndexError):
        raise BenchError(f"fio gave no fsync rate: {output[:200]}") from None
    return iops


def run(count: int = 2000, sessions: int = 20, large_count: int = 100, large_sessions: int = 8) -> list[Figure]:
    ensure_packages("strace", "fio")
    restore_transport()
    domain = _domain()
    addresses, _ = setup.ensure_mailboxes(RECIPIENTS, domain)
    sender = "bench@example.net"
    figures = []
    fsync_rate = disk_fsync_rate()
    syscalls = fsyncs_per_message(addresses, 400, sessions, 10240, sender)
    per_message = syscalls["postfix"] + syscalls["dovecot"]
    for label, n, s, size in (("10 KB", count, sessions, 10240), ("1 MB", large_count, large_sessions, 1 << 20)):
        sink = sink_rate(addresses, n, s, size, sender)
        null = null_lmtp_rate(addresses, n, s, size, sender)
        delivered, details = delivery_rate(addresses, n, s, size, sender)
        details.update({"sessions": s, "size_bytes": size})
        figures.append(Figure(f"delivered/s {label} vs smtp-sink", delivered, "msg/s", "smtp-sink", sink, details))
        figures.append(Figure(f"delivered/s {label} vs null LMTP", delivered, "msg/s", "null LMTP", null))
        if label == "10 KB" and per_message > 0:
            figures.append(
                Figure(
                    "delivered/s 10 KB vs disk fsync rate / fsyncs per message",
                    delivered,
                    "msg/s",
                    "fio fsync/s ÷ fsyncs per message",
                    fsync_rate / per_message,
                    {"disk_fsync_per_s": round(fsync_rate, 1), "fsyncs_per_message": syscalls},
                )
            )
    burst = max(100, count * 3 // 10)
    sink = sink_rate(addresses[:1], burst, sessions, 10240, sender)
    delivered, details = burst_one_mailbox(addresses[0], burst, sessions, sender)
    figures.append(
        Figure(
            f"burst of {burst} x 10 KB to one mailbox, delivered/s vs smtp-sink",
            delivered,
            "msg/s",
            "smtp-sink",
            sink,
            details,
        )
    )
    _empty_mailboxes(addresses)
    return figures

"""The content filter: delivery through Rspamd (and ClamAV) against delivery without it, same run.

The same messages, a mix of what agencies send (``MIX``: plain text, a PDF-like attachment, a
zipped spreadsheet; none spam, none banned, so all are delivered), are submitted over SMTP by
``SESSIONS`` parallel sessions (several messages per session, as a sending server does) from a
client inside the mail host, until every one is in the bench mailboxes' Maildirs:

- **with the filter**: to port 25 on the mail host's own network address, so the client is not
  loopback and Rspamd scans it as mail from another server (``filter_local_addresses`` is loopback
  only): the milter, Rspamd's checks, ClamAV's scan of every part, the spam header decision;
- **without it** (the bound): to a milter-less listener that exists only while the benchmark runs
  (``BOUND_PORT`` on loopback): a copy of Postfix's forwarding listener (roles/postfix master.cf,
  ``syslog_name=postfix/forward``; every ``-o`` of it) with ``smtpd_milters=`` empty, added with
  ``postconf -M``/``-P`` and ``postfix reload`` and removed (``postconf -MX``, reload) in a
  ``finally``; main.cf is never edited, and a listener left behind by a killed run is gone at the
  next converge (the role writes master.cf whole). It is the same Postfix (smtpd, cleanup, queue
  manager, LMTP to Dovecot) without the filter. The forwarding listener itself is not the bound
  any more: it hands its mail to the filter too (for DKIM signing, issue 13). The copy's
  recipient checks are lighter than port 25's (no ``closed_recipients`` directory lookup, no
  quota-status policy query): the ratio charges those to the filter too, so it is a lower bound
  of what the filter alone allows.

The two paths alternate (``rounds`` times each) so that a slow spell of the shared VM hits both.
The filter's memory is the proportional set size (Pss, ``/proc/PID/smaps_rollup``: each shared
page split between the processes sharing it, so the sum is what the group costs) and the resident
set (Rss: shared pages counted in every process) of every ``rspamd`` process (main and workers),
of ``clamd`` and of ``valkey-server``, sampled every 0.25 s by the sending program itself: idle
before the first round, and the peak during the filtered rounds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time

import setup
from lib import MAIL_CONTAINER, BenchError, Figure, quote, sh, wait_until

RECIPIENTS = 4
SESSIONS = 8
SENDER = "vanthu@ubnd.example.org"
# share of messages, kind: what a provincial mailbox receives most days
MIX = ((5, "plain"), (3, "pdf"), (2, "zip"))
MEMORY_GROUPS = {"rspamd": ("rspamd",), "clamd": ("clamd",), "valkey": ("valkey-server", "redis-server")}

# Runs inside the mail host (its python3, standard library only): builds the messages (the same
# ones for every round, with a Message-ID of the round: the mail store delivers a Message-ID once
# per mailbox), sends them over SESSIONS sessions and samples the filter's memory meanwhile.
SENDER_PROGRAM = r"""
import email.utils, io, json, random, smtplib, sys, threading, time, zipfile
from email.message import EmailMessage

host, port, count, sessions, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
recipients, sender, mix, groups = json.loads(sys.argv[6]), sys.argv[7], json.loads(sys.argv[8]), json.loads(sys.argv[9])
WORDS = ("công văn số báo cáo kế hoạch triển khai sở ban ngành ủy ban nhân dân tỉnh quyết định "
         "thông báo họp giao ban tuần tháng năm đề nghị các đơn vị phối hợp thực hiện đúng hạn").split()

def build(index):
    rng = random.Random(index)  # the same message for the same index in every round
    kinds = [kind for share, kind in mix for _ in range(share)]
    kind = kinds[index % len(kinds)]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipients[index % len(recipients)]
    message["Subject"] = f"Công văn số {index}/UBND về việc báo cáo"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = f"<bench-filter-{tag}-{index}@ubnd.example.org>"
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 1200)))
    message.set_content("Kính gửi các đơn vị,\n\n" + body + "\n\nTrân trọng.\n")
    if kind == "pdf":
        data = b"%PDF-1.7\n" + rng.randbytes(rng.randint(60_000, 200_000))
        message.add_attachment(data, maintype="application", subtype="pdf", filename=f"cong-van-{index}.pdf")
    elif kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            rows = "\n".join(f"{n},{rng.choice(WORDS)},{rng.randint(0, 10**6)}" for n in range(rng.randint(500, 3000)))
            archive.writestr(f"so-lieu-{index}.csv", "STT,Đơn vị,Số\n" + rows)
            archive.writestr(f"bao-cao-{index}.pdf", b"%PDF-1.7\n" + rng.randbytes(rng.randint(20_000, 80_000)))
        message.add_attachment(buffer.getvalue(), maintype="application", subtype="zip", filename=f"ho-so-{index}.zip")
    return kind, message.as_bytes()

messages = [build(index) for index in range(count)]
peak, stop = {}, threading.Event()

def rss():
    # kB per group: resident (Rss, shared pages counted in every process) and proportional (Pss)
    import os
    totals = {f"{name}_{kind}": 0 for name in groups for kind in ("rss", "pss")}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = open(f"/proc/{pid}/comm").read().strip()
            for name, comms in groups.items():
                if comm in comms:
                    for line in open(f"/proc/{pid}/smaps_rollup"):
                        if line.startswith("Rss:"):
                            totals[f"{name}_rss"] += int(line.split()[1])
                        elif line.startswith("Pss:"):
                            totals[f"{name}_pss"] += int(line.split()[1])
        except OSError:
            pass
    return totals

def sample():
    while not stop.is_set():
        for name, kb in rss().items():
            peak[name] = max(peak.get(name, 0), kb)
        time.sleep(0.25)

refused, errors = [], []

def send(indexes):
    try:
        client = smtplib.SMTP(host, port, local_hostname="mx.ubnd.example.org", timeout=300)
        client.ehlo()
        for index in indexes:
            _, data = messages[index]
            try:
                client.sendmail(sender, [recipients[index % len(recipients)]], data)
            except smtplib.SMTPResponseException as exc:
                refused.append([index, exc.smtp_code, exc.smtp_error.decode(errors="replace")])
                client.rset()
        client.quit()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")

before = rss()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.monotonic()
threads = [threading.Thread(target=send, args=(range(s, count, sessions),)) for s in range(sessions)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
accepted_s = time.monotonic() - start
kinds = {}
for kind, data in messages:
    kinds.setdefault(kind, [0, 0])
    kinds[kind][0] += 1
    kinds[kind][1] += len(data)
print(json.dumps({"accepted_s": accepted_s, "refused": refused, "errors": errors, "memory_before_kb": before,
                  "kinds": kinds, "bytes": sum(len(data) for _, data in messages)}))
sys.stdout.flush()
# keep sampling until the controller has seen every message delivered (it closes our stdin)
sys.stdin.read()
stop.set()
print(json.dumps({"memory_peak_kb": peak}))
"""


def _mailbox_count(addresses: list[str]) -> int:
    """Messages in the bench mailboxes, every folder (mail scored between the thresholds is filed in Junk)."""
    paths = " ".join(f"/var/vmail/{a.split('@')[1]}/{a.split('@')[0]}/Maildir" for a in addresses)
    return int(sh(f"find {paths} -path '*/new/*' -type f 2>/dev/null | wc -l").strip() or 0)


def _empty(addresses: list[str]) -> None:
    for address in addresses:
        sh(f"doveadm expunge -u {address} mailbox '*' all 2>/dev/null; doveadm quota recalc -u {address}", check=False)


def _pass(host: str, port: int, addresses: list[str], count: int, tag: str) -> dict:
    """One round: send ``count`` messages to host:port, wait until all are delivered; figures."""
    _empty(addresses)
    args = [
        host,
        str(port),
        str(count),
        str(SESSIONS),
        tag,
        json.dumps(addresses),
        SENDER,
        json.dumps(MIX),
        json.dumps(MEMORY_GROUPS),
    ]
    process = subprocess.Popen(
        ["docker", "exec", "-i", MAIL_CONTAINER, "python3", "-c", SENDER_PROGRAM, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    try:
        sent = json.loads(process.stdout.readline() or "null") or {}
        if not sent:
            raise BenchError(f"the sender on the mail host failed: {process.stderr.read()[-400:]}")
        if sent["errors"] or sent["refused"]:
            raise BenchError(
                f"{tag}: {len(sent['refused'])} refused, errors {sent['errors'][:3]}, {sent['refused'][:3]}"
            )
        wait_until(lambda: _mailbox_count(addresses) >= count, timeout=1800, interval=0.25)
        seconds = time.monotonic() - start
    finally:
        process.stdin.close()
    tail = process.stdout.read()
    process.wait(timeout=60)
    peak = json.loads(tail.strip().splitlines()[-1])["memory_peak_kb"] if tail.strip() else {}
    junk = int(
        sh(
            " ".join(
                f"ls /var/vmail/{a.split('@')[1]}/{a.split('@')[0]}/Maildir/.Junk/new 2>/dev/null;" for a in addresses
            )
            + " true | wc -l"
        ).strip()
        or 0
    )
    return {
        "seconds": round(seconds, 2),
        "accepted_s": round(sent["accepted_s"], 2),
        "rate": count / seconds,
        "memory_before_kb": sent["memory_before_kb"],
        "memory_peak_kb": peak,
        "kinds": sent["kinds"],
        "bytes": sent["bytes"],
        "filed_in_junk": junk,
    }


# Loopback port of the benchmark's milter-less listener (free on the appliance: nothing in
# master.cf or the roles listens there; checked before it is added).
BOUND_PORT = 10099
BOUND_SYSLOG_NAME = "postfix/bench-nofilter"


def bound_listener_commands(listener: str, options: list[str], port: int = BOUND_PORT) -> tuple[str, str]:
    """Shell commands that add and remove the milter-less copy of the forwarding listener.

    ``listener`` is the forwarding listener's service name (``127.0.0.1:10027``), ``options`` its
    ``postconf -P`` lines (``127.0.0.1:10027/inet/NAME = VALUE``). Returns (add, remove): add puts
    ``127.0.0.1:PORT`` into master.cf with the same options, but ``smtpd_milters`` empty, its own
    ``syslog_name`` and no ``milter_macro_daemon_name``, and reloads Postfix; remove takes it out
    again (``postconf -MX``) and reloads. Raises BenchError on an option line that is not
    ``LISTENER/inet/NAME = VALUE``.
    """
    service = f"127.0.0.1:{port}"
    prefix = f"{listener}/inet/"
    overrides = {"smtpd_milters": "", "syslog_name": BOUND_SYSLOG_NAME, "milter_macro_daemon_name": None}
    settings: dict[str, str | None] = {}
    for line in options:
        name, sep, value = line.partition(" =")
        if not sep or not name.startswith(prefix) or " " in name:
            raise BenchError(f"unexpected postconf -P line for {listener}: {line!r}")
        settings[name[len(prefix) :]] = value.removeprefix(" ")
    settings.update(overrides)
    parts = [f"postconf -M {quote(f'{service}/inet={service} inet n - y - - smtpd')}"]
    kept = {name: value for name, value in settings.items() if value is not None}
    parts += [f"postconf -P {quote(f'{service}/inet/{name}={value}')}" for name, value in kept.items()]
    add = " && ".join([*parts, "postfix reload >/dev/null 2>&1"])
    remove = f"postconf -MX {quote(f'{service}/inet')} && postfix reload >/dev/null 2>&1"
    return add, remove


def run(count: int = 400, rounds: int = 2) -> list[Figure]:
    """Three figures: delivered msg/s with the filter against without it (mean of ``rounds`` each,
    alternated), and the filter's peak memory in MiB against idle, as Pss and as Rss.

    ``count`` messages per round go to 4 bench mailboxes (bench/setup.py, emptied before each round
    and after). Raises BenchError when the forwarding listener (the model of the milter-less
    bound) is missing or ``BOUND_PORT`` is taken, when any message is refused or a session fails,
    or when delivery takes longer than 30 minutes. The bound's listener is removed again whatever
    happens.
    """
    domain = sh("postconf -h mydomain").strip()
    # the forwarding listener (roles/postfix master.cf, syslog_name postfix/forward): the bound's model
    listener = sh("postconf -P | sed -n 's|^\\(.*\\)/inet/syslog_name = postfix/forward$|\\1|p'").strip()
    if not listener:
        raise BenchError("no forwarding listener in master.cf (roles/postfix): no model for the path without filter")
    if sh(f"ss -Hltn 'sport = :{BOUND_PORT}'", check=False).strip():
        raise BenchError(f"port {BOUND_PORT} is taken on the mail host: no room for the milter-less listener")
    options = [line for line in sh(f"postconf -P | grep -F {quote(listener + '/inet/')}").splitlines() if line]
    add, remove = bound_listener_commands(listener, options)
    address = sh("hostname -I").split()[0]
    addresses, _ = setup.ensure_mailboxes(RECIPIENTS, domain)
    filtered: list[dict] = []
    bypassed: list[dict] = []
    try:
        sh(add)
        wait_until(lambda: bool(sh(f"ss -Hltn 'sport = :{BOUND_PORT}'", check=False).strip()), timeout=30)
        for round_ in range(rounds):
            bypassed.append(_pass("127.0.0.1", BOUND_PORT, addresses, count, f"plain{round_}-{time.time_ns()}"))
            filtered.append(_pass(address, 25, addresses, count, f"filter{round_}-{time.time_ns()}"))
    finally:
        sh(remove, check=False)
        _empty(addresses)
    with_rate = statistics.mean(entry["rate"] for entry in filtered)
    without_rate = statistics.mean(entry["rate"] for entry in bypassed)
    mix = filtered[0]["kinds"]
    details = {
        "messages": count,
        "sessions": SESSIONS,
        "rounds": rounds,
        "mix": {kind: {"messages": n, "avg_kb": round(size / n / 1024, 1)} for kind, (n, size) in mix.items()},
        "with_filter": [{k: v for k, v in e.items() if k not in ("kinds", "memory_before_kb")} for e in filtered],
        "without_filter": [
            {k: v for k, v in e.items() if k in ("seconds", "accepted_s", "rate", "filed_in_junk")} for e in bypassed
        ],
        "with_path": f"{address}:25 (Postfix smtpd -> Rspamd milter -> ClamAV) -> LMTP",
        "without_path": f"127.0.0.1:{BOUND_PORT} (the forwarding listener's copy, smtpd_milters empty) -> LMTP",
    }
    figures = [
        Figure(
            "delivered/s with the filter vs without it (mixed mail)",
            with_rate,
            "msg/s",
            "no milter",
            without_rate,
            details,
        ),
    ]
    before = filtered[0]["memory_before_kb"]
    peaks = {key: max(entry["memory_peak_kb"].get(key, 0) for entry in filtered) for key in before}
    meanings = (("pss", "PSS: shared pages split between processes"), ("rss", "RSS: shared pages counted in each"))
    for kind, meaning in meanings:
        idle = sum(kb for key, kb in before.items() if key.endswith(kind))
        peak = sum(kb for key, kb in peaks.items() if key.endswith(kind))
        figures.append(
            Figure(
                f"filter memory ({meaning}; rspamd's processes + clamd + valkey), peak while filtering vs idle",
                peak / 1024,
                "MiB",
                "idle, before the first round",
                idle / 1024,
                {
                    "idle_kb": {k: v for k, v in before.items() if k.endswith(kind)},
                    "peak_kb": {k: v for k, v in peaks.items() if k.endswith(kind)},
                },
            )
        )
    return figures

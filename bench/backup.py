"""Backup benchmark (issue 11, "Benchmarks"; REQUIREMENTS O1, A4): first backup, incremental, restore, drill.

A tree of ``messages`` small messages (1-4 KiB of text each) over ``mailboxes`` bench mailboxes
(``dokiem1..N``, bench/setup.py) is **written directly as Maildir files** into each mailbox's
``Maildir/cur`` by one Python process on the mail host, then ``doveadm force-resync`` makes
Dovecot index every mailbox. Why not LMTP or ``doveadm save``: 100,000 deliveries take hours on
this VM and would measure delivery (bench/delivery.py's job), not backup; a Maildir message *is*
its file (Dovecot's Maildir format), so the backup reads exactly what it would read after real
deliveries, and the resync gives Dovecot the same view. Each message is distinct (its own
Message-ID and randomly drawn words, so neither restic's deduplication nor compression gets an
unrealistic advantage).

Figures, each timed on the mail host itself (``date +%s%N`` around the command, no ``docker exec``
overhead), with its bound measured in the same run on the same host and disk:

- first backup: ``govmail-backup run --json`` (staging by hard links, manifest with every
  message's SHA-256, ``slapcat``, restic over HTTPS to the backup host's rest-server);
  bound: ``tar -cf`` of the same mail store (``vmail_dir`` of ``/etc/govmail/backup.json``) to a
  file on the same disk, then ``sync``. Aim: ratio <= 2.
- incremental: ``govmail-backup run --json`` again after 1 % new messages spread over the
  mailboxes; bound: the first backup. Aim: ratio <= 0.1.
- restore: every bench mailbox's home removed, then ``govmail-backup restore --mailbox A ...``
  of the first archive, i.e. the very tree the tar holds (restic restore, copy back with owner and times, a
  ``doveadm force-resync`` per mailbox); bound: ``tar -xf`` of the tar above into a directory on
  the same disk, then ``sync``. Aim: ratio <= 2. Then (not timed) ``govmail-backup verify --live``
  compares every message's SHA-256 with the archive's manifest: a restore that lost or altered
  anything fails the benchmark.
- drill (``drill=True``, minutes): ``govmail drill --json`` of the incremental archive (on the
  stack of ``$GOVMAIL_BENCH_INVENTORY``, default the lab; ``$GOVMAIL_BENCH_DRILL_ARGS`` adds
  e.g. ``--prefix``/``--subnet``/``--port-base`` for a stack beside a Molecule scenario), its ``rto_seconds``
  against A4's 4 working hours (the requirement's bound, not a measurement).

The bench mailboxes' homes are removed afterwards, with the tar and the extracted copy. The
archives stay in the repository (a client's credential cannot delete them: append-only) until
the backup host's retention prunes them. Raises :class:`lib.BenchError` when a step fails.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import setup
from lib import PROJECT, BenchError, Figure, sh

SCRATCH = "/var/backups/govmail-bench"  # on the mail store's disk (/var), removed afterwards
A4_RTO_SECONDS = 4 * 3600  # REQUIREMENTS A4: 4 working hours

# One Python process on the mail host writes every message; argv: vmail_dir, domain, first index
# (for names), then "local:count" per mailbox.
_GENERATOR = r"""
import os, random, socket, sys, time
vmail, domain, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
owner = os.stat(vmail)
words = ("công văn số quyết định ủy ban nhân dân tỉnh sở phòng ban báo cáo kế hoạch thực hiện "
         "the report meeting budget schedule agency province decision review attached please").split()
host = socket.gethostname()
rng = random.Random()
written = 0
now = int(time.time())
for spec in sys.argv[4:]:
    local, count = spec.split(":")
    cur = os.path.join(vmail, domain, local, "Maildir", "cur")
    for sub in ("cur", "new", "tmp"):
        path = os.path.join(vmail, domain, local, "Maildir", sub)
        os.makedirs(path, mode=0o700, exist_ok=True)
    os.chown(os.path.join(vmail, domain), owner.st_uid, owner.st_gid)
    for top, dirs, files in os.walk(os.path.join(vmail, domain, local)):
        os.chown(top, owner.st_uid, owner.st_gid)
    for n in range(int(count)):
        index = first + written
        body = "\n".join(" ".join(rng.choices(words, k=12)) for _ in range(rng.randint(12, 50)))
        text = (f"From: bench@{domain}\nTo: {local}@{domain}\nSubject: bench {index}\n"
                f"Message-ID: <bench-{index}-{rng.getrandbits(64):x}@{domain}>\n"
                f"Date: Mon, 30 Nov 2026 00:00:00 +0000\nContent-Type: text/plain; charset=utf-8\n\n{body}\n")
        data = text.encode()
        name = f"{now}.M{index}P{os.getpid()}.{host},S={len(data)},W={len(data) + text.count(chr(10))}:2,S"
        path = os.path.join(cur, name)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chown(path, owner.st_uid, owner.st_gid)
        written += 1
print(written)
"""


def _timed(script: str, *, timeout: int = 7200) -> tuple[float, str]:
    """Seconds ``script`` took on the mail host (timed there) and its stdout (the timing line removed)."""
    out = sh(
        f"s=$(date +%s%N); {{ {script} ; }} >/tmp/bench-step.out || exit $?; e=$(date +%s%N); cat /tmp/bench-step.out; "
        "echo BENCH-NS=$((e-s))",
        timeout=timeout,
    )
    lines = out.rstrip("\n").splitlines()
    if not lines or not lines[-1].startswith("BENCH-NS="):
        raise BenchError(f"no timing from {script[:80]!r}")
    return int(lines[-1].removeprefix("BENCH-NS=")) / 1e9, "\n".join(lines[:-1])


def _phases() -> dict[str, float]:
    """The phases of the last ``govmail-backup run`` (its stderr in /tmp/bench-backup.err): ``{phase: seconds}``."""
    phases = {}
    for line in sh("cat /tmp/bench-backup.err", check=False).splitlines():
        head, took, rest = line.removeprefix("govmail-backup: ").partition(" took ")
        if took and rest.split(" ", 1)[0].replace(".", "", 1).isdigit():
            phases[head] = float(rest.split(" ", 1)[0])
    return phases


# restic alone, without govmail-backup (no staging, no manifest, no TLS, no rest-server): a fresh
# repository on the same disk, its own passphrase; what restic's chunking, hashing, compression and
# encryption of many small files cost at least.
_FLOOR_ENV = " ".join(
    f"RESTIC_{key}={SCRATCH}/{value}" for key, value in (("REPOSITORY", "repo"), ("PASSWORD_FILE", "repo.password"),
                                                         ("CACHE_DIR", "cache"))
)  # fmt: skip


def _floor_backup(vmail: str) -> tuple[float, str]:
    """Seconds of ``restic backup`` alone of the mail store (+ sync) and the snapshot's id."""
    seconds, out = _timed(f"{_FLOOR_ENV} restic backup --json --no-scan {vmail} | tail -n1 && sync")
    return seconds, json.loads(out)["snapshot_id"]


def _config() -> dict:
    return json.loads(sh("cat /etc/govmail/backup.json"))


def _spread(total: int, mailboxes: list[str]) -> list[str]:
    """``local:count`` per mailbox, ``total`` spread as evenly as possible."""
    share, extra = divmod(total, len(mailboxes))
    return [f"{a.split('@')[0]}:{share + (i < extra)}" for i, a in enumerate(mailboxes) if share + (i < extra)]


def _generate(vmail: str, domain: str, first: int, specs: list[str]) -> float:
    """Write the messages and resync Dovecot; seconds it took (recorded, not a figure)."""
    start = time.monotonic()
    args = " ".join(shlex.quote(a) for a in (vmail, domain, str(first), *specs))
    sh(f"python3 - {args} >/dev/null", stdin=_GENERATOR, timeout=7200)
    users = " ".join(f"{spec.split(':')[0]}@{domain}" for spec in specs)
    sh(f"for u in {users}; do doveadm force-resync -u $u '*' || exit 1; done", timeout=7200)
    return time.monotonic() - start


def _drill(archive: str) -> Figure:
    """``govmail drill`` of ``archive`` on the controller; the stack is GOVMAIL_BENCH_INVENTORY's."""
    program = Path(sys.executable).with_name("govmail")  # the venv's console script, beside this Python
    report_dir = tempfile.mkdtemp(prefix="bench-drill-")
    argv = [str(program), "drill", "--archive", archive, "--json", "--report", report_dir]
    if os.environ.get("GOVMAIL_BENCH_INVENTORY"):
        argv += ["--inventory", os.environ["GOVMAIL_BENCH_INVENTORY"]]
    argv += shlex.split(os.environ.get("GOVMAIL_BENCH_DRILL_ARGS", ""))
    completed = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT, timeout=7200, check=False)
    if not completed.stdout.strip():
        raise BenchError(f"govmail drill failed ({completed.returncode}): {completed.stderr.strip()[-300:]}")
    report = json.loads(completed.stdout)
    return Figure(
        "drill RTO (start to verified restored stack)",
        report["rto_seconds"],
        "s",
        "A4's bound, 4 working hours (requirement, not measured)",
        A4_RTO_SECONDS,
        {
            "result": report["result"],
            "rpo_seconds": report["rpo_seconds"],
            "phases": report.get("phases"),
            "mismatches": report["mismatches"][:10],
        },
    )


def run(mailboxes: int = 200, messages: int = 100_000, drill: bool = False) -> list[Figure]:
    """The figures of the module docstring for ``messages`` messages over ``mailboxes`` mailboxes."""
    config = _config()
    vmail = config["vmail_dir"]
    domain = sh("postconf -h mydomain").strip()
    addresses, _ = setup.ensure_mailboxes(mailboxes, domain)
    homes = " ".join(shlex.quote(f"{vmail}/{domain}/{a.split('@')[0]}") for a in addresses)
    sh(f"rm -rf {homes} {SCRATCH} && mkdir -p -m 700 {SCRATCH}/extract")
    try:
        generated = _generate(vmail, domain, 0, _spread(messages, addresses))
        size = int(sh(f"du -sb {vmail} | cut -f1"))
        files = int(sh(f"find {vmail} -type f | wc -l"))
        tree = {
            "mailboxes": mailboxes,
            "messages": messages,
            "vmail_bytes": size,
            "vmail_files": files,
            "generated_seconds": round(generated, 1),
            "generator": "Maildir files + doveadm force-resync",
        }

        # the staging mirror and digest cache of earlier runs (the stack's own backups) stay; the
        # bench messages are new files to them, so the first backup reads every one of them
        sh(f"head -c 24 /dev/urandom | base64 > {SCRATCH}/repo.password && {_FLOOR_ENV} restic init -q")
        tar_seconds, _ = _timed(f"tar -C {vmail} -cf {SCRATCH}/vmail.tar . && sync")
        first_seconds, out = _timed("govmail-backup run --json 2>/tmp/bench-backup.err")
        first, first_phases = json.loads(out), _phases()
        floor_first, floor_snapshot = _floor_backup(vmail)

        new = max(1, messages // 100)
        _generate(vmail, domain, messages, _spread(new, addresses))
        incremental_seconds, out = _timed("govmail-backup run --json 2>/tmp/bench-backup.err")
        incremental, incremental_phases = json.loads(out), _phases()
        floor_incremental, _ = _floor_backup(vmail)

        extract_seconds, _ = _timed(f"tar -C {SCRATCH}/extract -xf {SCRATCH}/vmail.tar && sync")
        floor_restore, _ = _timed(f"{_FLOOR_ENV} restic restore -q {floor_snapshot} --target {SCRATCH}/floor && sync")
        sh(f"rm -rf {homes} {SCRATCH}/extract {SCRATCH}/floor")
        mailbox_args = " ".join(f"--mailbox {shlex.quote(a)}" for a in addresses)
        restore_seconds, out = _timed(
            f"govmail-backup restore --archive {first['archive']} {mailbox_args} --json 2>/tmp/bench-backup.err"
        )
        restore_phases = _phases()
        restored = sum(row["restored"] for row in json.loads(out)["mailboxes"])
        check = json.loads(
            sh(f"govmail-backup verify --archive {first['archive']} --live --json", check=False, timeout=7200)
        )
        lost = [line for line in check["mismatches"] if not line.startswith("directory:")]
        if lost or restored != messages:
            raise BenchError(f"the restore is not the archive: {restored} of {messages} messages back, {lost[:3]}")
        figures = [
            Figure(
                "first backup (govmail-backup run)",
                first_seconds,
                "s",
                "tar -cf of the mail store + sync",
                tar_seconds,
                {
                    **tree,
                    "archive": first["archive"],
                    "bytes_added": first["bytes_added"],
                    "aim": "ratio <= 2",
                    "phases_seconds": first_phases,
                },
            ),
            Figure(
                "restic alone: first backup of the mail store to a local repository",
                floor_first,
                "s",
                "tar -cf of the mail store + sync",
                tar_seconds,
                {
                    "what": "restic's floor: no staging, manifest, TLS or rest-server",
                    "our_run_over_it": round(first_seconds / floor_first, 3),
                },
            ),
            Figure(
                "incremental after 1 % new mail",
                incremental_seconds,
                "s",
                "the first backup",
                first_seconds,
                {
                    "new_messages": new,
                    "archive": incremental["archive"],
                    "bytes_added": incremental["bytes_added"],
                    "aim": "ratio <= 0.1",
                    "phases_seconds": incremental_phases,
                },
            ),
            Figure(
                "restic alone: incremental after 1 % new mail",
                floor_incremental,
                "s",
                "restic alone's first backup",
                floor_first,
                {"what": "restic's floor for the incremental (its own change detection on the live tree)"},
            ),
            Figure(
                "restore of every bench mailbox (govmail-backup restore)",
                restore_seconds,
                "s",
                "tar -xf of the same tree + sync",
                extract_seconds,
                {
                    "archive": first["archive"],
                    "messages_restored": restored,
                    "verified_live": True,
                    "aim": "ratio <= 2",
                    "phases_seconds": restore_phases,
                },
            ),
            Figure(
                "restic alone: restore of the first snapshot from the local repository",
                floor_restore,
                "s",
                "tar -xf of the same tree + sync",
                extract_seconds,
                {"what": "restic's floor: restic restore of the whole tree, no placing, no Dovecot resync"},
            ),
        ]
        if drill:
            figures.append(_drill(incremental["archive"]))
        return figures
    finally:
        # the staging mirror's links to the bench mail too (else they hold its disk space until the next run)
        staged = " ".join(shlex.quote(f"{config['staging_dir']}/vmail/{domain}/{a.split('@')[0]}") for a in addresses)
        sh(f"rm -rf {homes} {staged} {SCRATCH}", check=False)

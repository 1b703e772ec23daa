"""Run the benchmarks against the lab and write bench/results/<date>.json and <date>.md.

    python bench/run.py [delivery imap directory provisioning backup filter] [--from-scratch] [--drill] [--trial NAME]
                        [--quick]

Another stack than the lab (a private Molecule scenario): GOVMAIL_MAIL_CONTAINER names its mail
host (bench/lib.py); the backup drill also takes GOVMAIL_BENCH_INVENTORY and
GOVMAIL_BENCH_DRILL_ARGS (bench/backup.py).

Every figure is reported with a bound measured in the same run on the same machine, and their
ratio; absolute timings are recorded but never asserted (a noisy 2-core VM). Not part of
`make test`: `make bench` runs them all (after `make up`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backup
import delivery
import directory
import filtering
import imap
import provisioning
from lib import PROJECT, BenchError, sh, write_results

BENCHMARKS = ("delivery", "imap", "directory", "provisioning", "backup", "filter")
TRIALS = {"lmtp-concurrency": delivery.lmtp_concurrency_trial, "userdb-cache": delivery.userdb_cache_trial}


def machine() -> str:
    return f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "benchmarks", nargs="*", help=f"any of: {', '.join(BENCHMARKS)} (all unless only --trial is given)"
    )
    parser.add_argument(
        "--from-scratch", action="store_true", help="also time lab down + lab up, base image cached and not"
    )
    parser.add_argument("--drill", action="store_true", help="backup: also time `govmail drill` (RTO; minutes)")
    parser.add_argument(
        "--trial",
        action="append",
        default=[],
        choices=sorted(TRIALS),
        help="also measure a tuning's before and after (recorded under 'tuning')",
    )
    parser.add_argument("--quick", action="store_true", help="smaller loads, for trying the benchmarks out")
    parser.add_argument("--out", default=str(PROJECT / "bench" / "results"), help="results directory")
    args = parser.parse_args(argv)
    if not args.benchmarks and not args.trial:
        args.benchmarks = list(BENCHMARKS)
    if args.from_scratch and "provisioning" not in args.benchmarks:
        print("bench: --from-scratch is part of provisioning: name provisioning too", file=sys.stderr)
        return 2
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if args.drill and "backup" not in args.benchmarks:
        print("bench: --drill is part of backup: name backup too", file=sys.stderr)
        return 2
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    try:
        sh("systemctl is-active slapd postfix dovecot >/dev/null")
    except BenchError as exc:
        print(f"bench: the lab is not up or not healthy ({exc}): run `make up` first", file=sys.stderr)
        return 2
    quick = args.quick
    plans = {
        "delivery": lambda: delivery.run(count=400 if quick else 2000, large_count=40 if quick else 100),
        "imap": lambda: imap.run(concurrency=10 if quick else 20, rounds=3 if quick else 10),
        "directory": directory.run,
        "provisioning": lambda: provisioning.run(count=500 if quick else 5000, from_scratch=args.from_scratch),
        "backup": lambda: backup.run(
            mailboxes=20 if quick else 200, messages=5000 if quick else 100_000, drill=args.drill
        ),
        "filter": lambda: filtering.run(count=100 if quick else 400),
    }
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": quick,
        "benchmarks": {},
    }
    failed = False
    for name in args.benchmarks:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        try:
            figures = plans[name]()
            results["benchmarks"][name] = [figure.as_dict() for figure in figures]
        except Exception as exc:  # one benchmark failing must not lose the others' figures
            failed = True
            results["benchmarks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
        print(f"bench: {name} took {time.monotonic() - start:.0f}s", file=sys.stderr, flush=True)
    for name in args.trial:
        print(f"bench: trial {name} ...", file=sys.stderr, flush=True)
        try:
            results.setdefault("tuning", []).append(TRIALS[name]())
        except Exception:  # the figures measured so far are still written
            failed = True
            traceback.print_exc()
    json_path, md_path = write_results(results, Path(args.out))
    print(md_path.read_text())
    print(f"bench: wrote {json_path} and {md_path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

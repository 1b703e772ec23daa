"""``govmail-host-check``: ``govmail check`` of the host it runs on, as Prometheus metrics.

Runs on the directory host every few minutes (``govmail-host-check.timer``, roles/operations)
with the daily mail's configuration (:class:`govmail.daily.Config`), and writes the text format
(https://prometheus.io/docs/instrumenting/exposition_formats/) into the node exporter's textfile
directory, which serves it on the management address with the machine's own metrics. No daemon
of ours: what Debian's exporters and Dovecot do not know (certificate expiry as the ports serve
it, the verdict of each check) comes from the same probe as ``govmail check``.

Metrics::

    govmail_check_status{service="dovecot",check="port 993 (imaps)"} 0   # 0 ok, 1 warning, 2 critical
    govmail_certificate_expiry_seconds{service="imaps",port="993"} 31536000
    govmail_queue_messages 0
    govmail_queue_oldest_seconds 0
    govmail_check_timestamp_seconds 1796000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import daily, health, probe
from .errors import GovmailError

TEXTFILE = "/var/lib/prometheus/node-exporter/govmail.prom"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(checks: list[dict[str, Any]], facts: dict[str, Any], now: float) -> str:
    """The checks and facts of one host in Prometheus' text format."""
    lines = [
        "# HELP govmail_check_status Verdict of each govmail check: 0 ok, 1 warning, 2 critical.",
        "# TYPE govmail_check_status gauge",
    ]
    for row in checks:
        value = health.STATUSES.index(row["status"])
        lines.append(
            f'govmail_check_status{{service="{_label(row["service"])}",check="{_label(row["check"])}"}} {value}'
        )
    lines += [
        "# HELP govmail_certificate_expiry_seconds Time left until the certificate a port serves expires.",
        "# TYPE govmail_certificate_expiry_seconds gauge",
    ]
    for port in facts.get("ports", []):
        if port.get("not_after"):
            left = int(port["not_after"] - now)
            lines.append(
                f'govmail_certificate_expiry_seconds{{service="{port["service"]}",port="{port["port"]}"}} {left}'
            )
    queue = facts.get("queue") or {}
    if queue.get("messages") is not None:
        oldest = int(now - queue["oldest"]) if queue.get("oldest") else 0
        lines += [
            "# HELP govmail_queue_messages Messages in Postfix's queue.",
            "# TYPE govmail_queue_messages gauge",
            f"govmail_queue_messages {queue['messages']}",
            "# HELP govmail_queue_oldest_seconds Age of the oldest message in Postfix's queue.",
            "# TYPE govmail_queue_oldest_seconds gauge",
            f"govmail_queue_oldest_seconds {oldest}",
        ]
    lines += [
        "# HELP govmail_check_timestamp_seconds When these checks ran.",
        "# TYPE govmail_check_timestamp_seconds gauge",
        f"govmail_check_timestamp_seconds {int(now)}",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (the exporter never reads half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".govmail-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-host-check", description=__doc__.splitlines()[0])
    parser.add_argument("--textfile", default=TEXTFILE, help=f"where to write the metrics (default {TEXTFILE})")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON instead")
    parser.add_argument("--config", default=daily.CONFIG_FILE, help=f"configuration (default {daily.CONFIG_FILE})")
    args = parser.parse_args(argv)
    try:
        config = daily.Config.load(args.config)
    except GovmailError as exc:
        print(f"govmail-host-check: {exc}", file=sys.stderr)
        return 3
    spec = health.spec_for(
        config.groups, hostname=config.hostname, ca_file=config.ca_file, domain=config.domain, store=config.vmail_dir
    )
    facts = probe.probe(spec)
    checks = health.judge(config.host, spec, facts, config.thresholds)
    status = health.worst(row["status"] for row in checks)
    if args.json:
        print(json.dumps({"status": status, "checks": checks}, ensure_ascii=False, indent=2))
    else:
        write_atomically(Path(args.textfile), metrics_text(checks, facts, float(facts.get("now") or time.time())))
    return health.EXIT_CODES[status] if args.json else 0


if __name__ == "__main__":
    sys.exit(main())

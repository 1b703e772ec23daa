"""Shared helpers of the benchmarks: the lab host, timing, percentiles and result records.

Every benchmark measures against the lab (``govmail lab up``: mail1 on 127.0.0.1:1xxxx; another
stack's mail host with ``GOVMAIL_MAIL_CONTAINER``, e.g. a private Molecule scenario's) and runs
its load generators inside the mail host where the figure is about the host (so the controller's
Docker port forwarding is not what is measured). Every figure comes with a bound measured in the
same run on the same machine, and the ratio between them.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
MAIL_CONTAINER = os.environ.get("GOVMAIL_MAIL_CONTAINER", "govmail-lab-mail1")


class BenchError(Exception):
    """A benchmark cannot run (lab down, tool missing); the message says what to do."""


def sh(script: str, *, check: bool = True, timeout: int = 1800, stdin: str | None = None) -> str:
    """Run ``script`` with bash inside the mail host as root; its stdout."""
    completed = subprocess.run(
        ["docker", "exec", "-i", MAIL_CONTAINER, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )
    if check and completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or [""])[-3:]
        raise BenchError(f"on {MAIL_CONTAINER}: {script[:120]!r} failed ({completed.returncode}): {' | '.join(tail)}")
    return completed.stdout


# roles/dovecot includes every file of this directory last and removes at each converge the ones
# the inventory does not declare: a trial's settings never outlive the next `make up`.
DROP_IN_DIR = "/etc/dovecot/govmail.d"


def dovecot_drop_in(name: str, text: str | None) -> None:
    """Put (``text``) or take away (``None``) a benchmark's settings as a Dovecot drop-in; reload.

    dovecot.conf itself is never edited (the role's ``!include_try`` takes the drop-in).
    """
    path = f"{DROP_IN_DIR}/bench-{name}.conf"
    if text is not None:
        sh(f"printf %s {quote(text)} > {path} && doveconf -n >/dev/null && systemctl reload dovecot && sleep 1")
        return
    sh(f"rm -f {path}; systemctl reload dovecot && sleep 1", check=False)


def ensure_packages(*packages: str) -> None:
    """Install benchmark tools on the mail host (they are not part of the appliance)."""
    missing = sh(f"for p in {' '.join(packages)}; do dpkg -s $p >/dev/null 2>&1 || echo $p; done").split()
    if missing:
        sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {' '.join(missing)} >/dev/null", timeout=900)


def container_id() -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.Id}}", MAIL_CONTAINER], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def peak_memory() -> Iterator[dict[str, int]]:
    """The mail host's peak memory (cgroup v1 max_usage, page cache included) over the block."""
    path = Path(f"/sys/fs/cgroup/memory/docker/{container_id()}/memory.max_usage_in_bytes")
    result: dict[str, int] = {}
    if path.exists():
        path.write_text("0")
    yield result
    if path.exists():
        result["peak_bytes"] = int(path.read_text())


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    if not values:
        return {f"p{point}": float("nan") for point in points}
    ordered = sorted(values)
    result = {}
    for point in points:
        index = min(len(ordered) - 1, max(0, round(point / 100 * len(ordered) + 0.5) - 1))
        result[f"p{point}"] = round(ordered[index], 4)
    return result


def wait_until(predicate, timeout: float, interval: float = 0.2) -> float:
    """Seconds until ``predicate()`` is true; BenchError after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise BenchError(f"condition not reached within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start


@dataclass
class Figure:
    """One measured figure, its bound (same run, same machine) and their ratio."""

    name: str
    value: float
    unit: str
    bound_name: str | None = None
    bound: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.bound in (None, 0):
            return None
        return round(self.value / self.bound, 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "bound_name": self.bound_name,
            "bound": None if self.bound is None else round(self.bound, 3),
            "ratio": self.ratio,
            "details": self.details,
        }


def quote(value: str) -> str:
    return shlex.quote(value)


def write_results(results: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """``<date>.json`` and ``<date>.md`` (the readable table) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = results["date"]
    json_path = directory / f"{stem}.json"
    if json_path.exists():  # a later run of some benchmarks the same day keeps the others' figures
        earlier = json.loads(json_path.read_text())
        merged = dict(earlier.get("benchmarks") or {})
        merged.update(results["benchmarks"])
        trials = {trial["what"]: trial for trial in earlier.get("tuning") or []}
        trials.update({trial["what"]: trial for trial in results.get("tuning") or []})
        results = {**earlier, **results, "benchmarks": merged, "tuning": list(trials.values())}
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    lines = [
        f"# Benchmarks {results['date']} ({results['machine']})",
        "",
        "| benchmark | figure | value | bound (same run) | ratio |",
        "|---|---|---|---|---|",
    ]
    for bench, figures in results["benchmarks"].items():
        if isinstance(figures, dict) and "error" in figures:
            lines.append(f"| {bench} | error | {figures['error']} | | |")
            continue
        for figure in figures:
            bound = "" if figure["bound"] is None else f"{figure['bound']} {figure['unit']} ({figure['bound_name']})"
            ratio = "" if figure["ratio"] is None else f"{figure['ratio']}"
            lines.append(f"| {bench} | {figure['name']} | {figure['value']} {figure['unit']} | {bound} | {ratio} |")
    if results.get("tuning"):
        lines += ["", "## Tuning tried (before/after, same session)", "", "| change | before | after | adopted |",
                  "|---|---|---|---|"]  # fmt: skip
        for trial in results["tuning"]:
            before = ", ".join(f"{key} {value}" for key, value in trial["before"].items())
            after = ", ".join(f"{key} {value}" for key, value in trial["after"].items())
            adopted = "yes" if trial["adopted"] else "no"
            lines.append(f"| {trial['what']} | {before} | {after} | {adopted}: {trial['conclusion']} |")
    md_path = directory / f"{stem}.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path

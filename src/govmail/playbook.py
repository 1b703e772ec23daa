"""Run a playbook with ansible-playbook from this environment, the way an operator would.

``ansible-playbook -i <inventory> <playbook>`` in the project directory with
``ANSIBLE_CONFIG=<project>/ansible.cfg``; the whole output goes to a log file under
``.lab/logs/`` and, line by line, to optional callbacks (the CLI shows progress from them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PlaybookError
from .project import Project

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?"
    r"(?:\s+ignored=(?P<ignored>\d+))?"
)
HEADING_RE = re.compile(r"^(?P<kind>PLAY|TASK|RUNNING HANDLER) \[(?P<name>.*?)\]")
FAILURE_RE = re.compile(r"^(fatal|failed): \[|^ERROR!|^\[ERROR\]")


@dataclass
class HostRecap:
    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


@dataclass
class PlaybookResult:
    playbook: str
    returncode: int
    log_path: Path
    duration: float
    recap: dict[str, HostRecap] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(r.changed for r in self.recap.values())

    @property
    def failed(self) -> int:
        return sum(r.failed + r.unreachable for r in self.recap.values())


def parse_recap(lines: Sequence[str]) -> dict[str, HostRecap]:
    """Per-host counts from the ``PLAY RECAP`` lines of ansible-playbook's output."""
    recap: dict[str, HostRecap] = {}
    in_recap = False
    for line in lines:
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = RECAP_RE.match(line.strip()) if in_recap else None
        if match:
            counts = {k: int(v) for k, v in match.groupdict().items() if k != "host" and v is not None}
            recap[match["host"]] = HostRecap(**counts)
    return recap


def ansible_playbook() -> Path:
    """``ansible-playbook`` of this Python environment (the venv govmail runs from), else PATH's."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.is_file():
        return beside
    found = shutil.which("ansible-playbook")
    if found:
        return Path(found)
    raise PlaybookError(
        "ansible-playbook not found beside this Python nor on PATH: run `sudo bash scripts/setup.sh` "
        "to install the pinned Ansible into .venv"
    )


def run(
    project: Project,
    playbook: str = "playbooks/site.yml",
    inventory: str = "inventories/lab",
    *,
    extra_args: Sequence[str] = (),
    on_line: Callable[[str], None] | None = None,
    on_task: Callable[[str], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> PlaybookResult:
    """Run ``ansible-playbook -i <inventory> <playbook>`` in the project directory.

    ``on_line`` receives every output line, ``on_task`` the name of each task or play as it starts.
    Returns the recap; raises :class:`PlaybookError` naming the log file when the run fails.
    """
    if not (project.root / playbook).is_file():
        raise PlaybookError(f"playbook {project.root / playbook} does not exist: check the project checkout")
    if not (project.root / inventory).exists():
        raise PlaybookError(f"inventory {project.root / inventory} does not exist: check the project checkout")
    binary = ansible_playbook()
    project.logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = project.logs_dir / f"{Path(playbook).stem}-{stamp}.log"
    command = [str(binary), "-i", inventory, playbook, *extra_args]
    environment = dict(os.environ)
    environment.update(
        {
            "ANSIBLE_CONFIG": str(project.ansible_cfg),
            "ANSIBLE_NOCOLOR": "1",
            "PYTHONUNBUFFERED": "1",
            "GOVMAIL_PROJECT_DIR": str(project.root),
            "PATH": f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    environment.update(env or {})
    lines: list[str] = []
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        try:
            process = subprocess.Popen(
                command,
                cwd=project.root,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                errors="replace",
            )
        except OSError as exc:
            raise PlaybookError(f"cannot start {binary}: {exc.strerror}", str(log_path)) from None
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                log.write(raw)
                lines.append(line)
                heading = HEADING_RE.match(line)
                if heading and on_task:
                    on_task(heading["name"])
                if on_line:
                    on_line(line)
            returncode = process.wait()
        except BaseException:
            process.terminate()
            process.wait()
            raise
    result = PlaybookResult(playbook, returncode, log_path, time.monotonic() - started, parse_recap(lines))
    if returncode != 0:
        failures = [line.strip() for line in lines if FAILURE_RE.match(line.strip())]
        detail = f"; last error: {failures[-1][:240]}" if failures else ""
        hint = " (hosts unreachable: is the lab up? `govmail lab status`)" if returncode == 4 else ""
        raise PlaybookError(
            f"{playbook} failed with exit {returncode}{hint}{detail}; full log: {log_path}", str(log_path)
        )
    return result


# --- "already converged" stamp ------------------------------------------------------------
# A repeated `govmail lab up` skips the playbook when the same containers were converged with
# the same Ansible content: nothing could change, and a no-op converge over the Docker
# connection costs minutes. Any edit under these paths, a new container or --converge runs it.
CONVERGE_INPUTS = ("ansible.cfg", "playbooks", "roles", "plugins", "inventories/lab")


def content_digest(project: Project) -> str:
    """sha256 over the paths and contents of everything a converge of the lab reads."""
    digest = hashlib.sha256()
    for name in CONVERGE_INPUTS:
        root = project.root / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(project.root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _stamp_path(project: Project) -> Path:
    return project.lab_dir / "converged.json"


def converged_state(project: Project) -> dict[str, Any]:
    """The stamp of the last converge (``{}`` if none): content digest, containers, managed files."""
    try:
        stamp = json.loads(_stamp_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def is_converged(project: Project, containers: Mapping[str, str], managed: Mapping[str, str] | None = None) -> bool:
    """True when ``containers`` (name -> id) were converged with the current content and, when
    ``managed`` (name -> digest of the files the roles write, :func:`govmail.lab.managed_files_digest`)
    is given, nothing the roles manage was changed on a host since (drift is repaired by a converge)."""
    stamp = converged_state(project)
    if stamp.get("digest") != content_digest(project) or stamp.get("containers") != dict(containers):
        return False
    return managed is None or (all(managed.values()) and stamp.get("managed") == dict(managed))


def record_converged(project: Project, containers: Mapping[str, str], managed: Mapping[str, str] | None = None) -> None:
    """Write the stamp after a successful converge (``managed`` read from the hosts after it)."""
    path = _stamp_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"digest": content_digest(project), "containers": dict(containers), "managed": dict(managed or {})}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def forget_converged(project: Project) -> None:
    _stamp_path(project).unlink(missing_ok=True)

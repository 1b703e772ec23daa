"""Provisioning: account import of 5,000 people, a converge of the running lab, `lab up` again.

- Import: ``govmail account import`` of a generated staff list (5,000 Vietnamese names, namesakes
  included) into a new agency, from the controller over LDAPS. Bound: adding the very entries it
  created (read back as LDIF, hashes included) with ``ldapadd`` over ldapi on the host: the
  directory's own add rate, without naming, hashing or TLS.
- Converge: ``ansible-playbook playbooks/site.yml`` on the running lab (nothing to change).
  Bound: a playbook of as many trivial module calls (``command: true``) over the same connection:
  what Ansible's per-task round trip alone costs.
- ``govmail lab up`` when the lab is up (the converge stamp lets it skip Ansible).
- With ``--from-scratch``: ``govmail lab down`` then ``govmail lab up`` (base image cached), then
  the same from a base image not cached: ``lab down``, ``lab image --rebuild`` (debootstrap from
  Debian's mirror, the systemd image built on it), ``lab up``; the cached run is its bound.
"""

from __future__ import annotations

import csv
import json
import random
import re
import subprocess
import tempfile
import time
from pathlib import Path

from lib import PROJECT, BenchError, Figure, sh

GOVMAIL = str(PROJECT / ".venv" / "bin" / "govmail")
PLAYBOOK = str(PROJECT / ".venv" / "bin" / "ansible-playbook")
AGENCY = "dknhap"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô",
          "Dương", "Lý", "Đinh", "Trịnh", "Lương", "Mai"]  # fmt: skip
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Thanh", "Ngọc", "Quốc", "Thu", "Xuân", "Hồng", "Công", "Anh", "Bảo"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hòa", "Hùng", "Hương", "Khánh",
         "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Nhung", "Phong", "Phúc", "Quân", "Quỳnh", "Sơn", "Tâm",
         "Thảo", "Thắng", "Trang", "Trung", "Tuấn", "Uyên", "Vinh", "Yến", "Đạt", "Ước", "Ơn", "Ấn"]  # fmt: skip


def _run(argv: list[str], timeout: int = 3600) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=PROJECT, check=False)
    elapsed = time.monotonic() - start
    if completed.returncode != 0:
        tail = (completed.stderr.strip().splitlines() or completed.stdout.strip().splitlines() or [""])[-1]
        raise BenchError(f"{' '.join(argv[:3])} failed: {tail}")
    return elapsed, completed


def staff_list(path: Path, count: int, seed: int = 2026) -> None:
    """A staff list as an agency sends it: full name, agency, date of birth (tells namesakes apart)."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Họ và tên", "Cơ quan", "Ngày sinh"])
        seen = set()
        while len(seen) < count:
            name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
            born = f"{rng.randint(1965, 2003)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if (name, born) in seen:
                continue
            seen.add((name, born))
            writer.writerow([name, AGENCY, born])


def _agency_dn() -> str:
    base = sh(
        "ldapsearch -Q -Y EXTERNAL -H ldapi:/// -LLL -s base -b '' namingContexts | awk '/^namingContexts/{print $2}'"
    )
    return f"ou={AGENCY},ou=agencies,{base.split()[0]}"


def _remove_agency() -> None:
    sh(f"ldapdelete -Q -Y EXTERNAL -H ldapi:/// -r '{_agency_dn()}' 2>/dev/null; true", check=False, timeout=1800)


def import_figure(count: int) -> Figure:
    _remove_agency()
    _run(
        [GOVMAIL, "account", "add", "Đơn vị Đo kiểm Nhập liệu", "--kind", "agency", "--abbreviation", AGENCY, "--json"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "staff.csv"
        staff_list(path, count)
        seconds, completed = _run([GOVMAIL, "account", "import", str(path), "--json"])
    report = json.loads(completed.stdout)
    created = len(report.get("rows") or [])
    people = "(&(objectClass=govmailMailbox)(govmailKind=personal))"
    ldif = sh(f"ldapsearch -Q -Y EXTERNAL -H ldapi:/// -LLL -o ldif-wrap=no -b '{_agency_dn()}' '{people}' '*'")
    entries = [block for block in ldif.strip().split("\n\n") if block.startswith("dn:")]
    sh(
        "ldapdelete -Q -Y EXTERNAL -H ldapi:/// -c >/dev/null",
        stdin="\n".join(b.splitlines()[0][4:] for b in entries) + "\n",
    )
    start = time.monotonic()
    sh("ldapadd -Q -Y EXTERNAL -H ldapi:/// >/dev/null", stdin="\n\n".join(entries) + "\n", timeout=1800)
    raw_seconds = time.monotonic() - start
    _remove_agency()
    return Figure(
        f"account import of {count} people",
        count / seconds,
        "accounts/s",
        "ldapadd of the same entries (ldapi)",
        len(entries) / raw_seconds,
        {"seconds": round(seconds, 1), "created": created or len(entries), "raw_seconds": round(raw_seconds, 1)},
    )


def converge_figures() -> list[Figure]:
    seconds, completed = _run([PLAYBOOK, "-i", "inventories/lab", "playbooks/site.yml"])
    recap = re.findall(r"ok=(\d+)\s+changed=(\d+)", completed.stdout)
    tasks = sum(int(ok) for ok, _ in recap)
    changed = sum(int(c) for _, c in recap)
    with tempfile.TemporaryDirectory() as tmp:
        playbook = Path(tmp) / "trivial.yml"
        per_host = max(1, tasks // 2)
        lines = ["- hosts: mail1:backup1", "  gather_facts: false", "  tasks:"]
        lines += ["    - ansible.builtin.command: 'true'\n      changed_when: false" for _ in range(per_host)]
        playbook.write_text("\n".join(lines) + "\n")
        bound, _ = _run([PLAYBOOK, "-i", "inventories/lab", str(playbook)])
    up_seconds, _ = _run([GOVMAIL, "lab", "up"])
    return [
        Figure(
            "converge of the running lab (no change)",
            seconds,
            "s",
            f"{per_host} trivial tasks per host",
            bound,
            {"tasks": tasks, "changed": changed},
        ),
        Figure("govmail lab up when up", up_seconds, "s"),
    ]


def from_scratch_figures() -> list[Figure]:
    _run([GOVMAIL, "lab", "down"])
    cached, _ = _run([GOVMAIL, "lab", "up"], timeout=3600)
    _run([GOVMAIL, "lab", "down"])
    image, _ = _run([GOVMAIL, "lab", "image", "--rebuild"], timeout=3600)
    up, _ = _run([GOVMAIL, "lab", "up"], timeout=3600)
    return [
        Figure("lab down, then lab up from nothing (base image cached)", cached, "s"),
        Figure(
            "lab up from nothing, base image not cached (lab image --rebuild, then lab up)",
            image + up,
            "s",
            "the same with the base image cached",
            cached,
            {"image_seconds": round(image, 1), "up_seconds": round(up, 1)},
        ),
    ]


def run(count: int = 5000, from_scratch: bool = False) -> list[Figure]:
    figures = from_scratch_figures() if from_scratch else []
    figures.append(import_figure(count))
    figures.extend(converge_figures())
    return figures

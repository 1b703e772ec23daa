"""The restore drill (O1, A4, issue 11): a healthy archive passes; an altered or lost message is named.

The drill builds its disposable stack from the scenario's name: containers ``<scenario>-drill-*``
(``govmail-mol-drill-*`` for the default scenario), the subnet ``$GOVMAIL_DRILL_SUBNET`` (default
172.29.51.0/24) and ports at the scenario's offset + 1000 (21025/21993 for the default scenario),
so it touches neither the scenario's stack nor the lab. One drill runs (a whole restore onto new
containers: minutes); the archive-side comparison it relies on is then shown to name a message
altered or removed in an archive, with archives made for that purpose (seconds each).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import clients
import pytest
from clients import wait_for
from conftest import MAIL_CONTAINER, OFFSET, PROJECT_DIR, _govmail_command, make_message, ok_json
from test_backup import OUTSIDER, open_imaps

PREFIX = MAIL_CONTAINER.removesuffix("-mail1") + "-drill"
SUBNET = os.environ.get("GOVMAIL_DRILL_SUBNET", "172.29.51.0/24")
STAGING = "/var/backups/govmail/staging"


def _inventory() -> Path:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral:
        pytest.skip("the drill test runs on a Molecule scenario (MOLECULE_EPHEMERAL_DIRECTORY)")
    return Path(ephemeral) / "inventory"


def on_mail_host(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", MAIL_CONTAINER, "sh", "-euc", script], capture_output=True, text=True,
                          check=False, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def drill(govmail, cli_env, tmp_path_factory, address, hostname, port, tls, alice):
    """One drill of a fresh archive holding mail for alice: (exit status, JSON report, stderr)."""
    tag = uuid.uuid4().hex[:8]
    with clients.SMTP(address, hostname, port("smtp")) as smtp:
        smtp.ehlo("mx.example.org")
        assert smtp.send_message(make_message(OUTSIDER, alice["address"], f"Diễn tập {tag}", "Nội dung\n")) == {}
    client = open_imaps(address, hostname, port, tls, alice)
    client.select("INBOX")
    wait_for(lambda: len(client.search(None, "SUBJECT", tag)[1][0].split()) == 1, what="the delivery")
    client.logout()
    archive = ok_json(govmail("backup", "run", "--json"))["archive"]
    reports = tmp_path_factory.mktemp("drill")
    result = subprocess.run(
        [*_govmail_command(), "drill", "--archive", archive, "--inventory", str(_inventory()), "--report",
         str(reports), "--prefix", PREFIX, "--subnet", SUBNET, "--port-base", str(OFFSET + 1000), "--json"],
        capture_output=True, text=True, check=False, timeout=3600, cwd=PROJECT_DIR, env=cli_env,
    )  # fmt: skip
    return {"archive": archive, "code": result.returncode, "stderr": result.stderr,
            "report": json.loads(result.stdout) if result.stdout.strip() else {}}  # fmt: skip


def test_a_drill_of_a_healthy_archive_passes(drill):
    assert drill["code"] == 0, drill["stderr"][-2000:]
    report = drill["report"]
    assert report["result"] == "pass", report["mismatches"]
    assert report["archive"] == drill["archive"]
    assert report["mismatches"] == []
    assert report["mailboxes"] and all(row["ok"] for row in report["mailboxes"])
    assert sum(row["messages"] for row in report["mailboxes"]) >= 1
    assert report["directory"]["ok"] and report["directory"]["entries"] > 0


def test_the_drill_measures_rto_and_rpo_and_compares_rto_with_a4(drill):
    report = drill["report"]
    assert 0 < report["rto_seconds"] < report["rto_bound_seconds"] == 4 * 3600
    assert report["rto_within_bound"] is True
    assert 0 <= report["rpo_seconds"] < 3600
    assert [p["name"] for p in report["phases"]] == ["create", "copy", "restore", "verify", "login", "delivery",
                                                     "remove"]  # fmt: skip


def test_the_drill_shows_each_phase_on_stderr(drill):
    for phase in ("create", "copy", "restore", "verify", "login", "delivery", "remove"):
        assert f"drill: {phase}..." in drill["stderr"]


def test_the_drill_writes_an_html_report_with_a_phase_chart_and_agencies(drill):
    page = Path(drill["report"]["report_html"]).read_text()
    assert "Restore drill: PASS" in page and "<svg" in page and "<h2>Agencies</h2>" in page
    assert Path(drill["report"]["report_html"]).with_suffix(".json").is_file()


def test_the_drill_removes_its_disposable_stack(drill):
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    assert not [n for n in names if n.startswith(PREFIX)]
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              check=True).stdout.split()  # fmt: skip
    assert f"{PREFIX}-net" not in networks


def tampered_archive(change: str) -> tuple[str, str, str]:
    """An archive whose manifest is the latest one's but one stored INBOX message is changed.

    ``change`` is ``alter`` (one byte appended) or ``remove``. Returns (archive, address, message
    base name). Built on the mail host with restic and its own append-only credential.
    """
    script = f"""
rm -rf {STAGING}
govmail-backup restic restore latest --tag govmail --target / --include {STAGING} >/dev/null
file=$(ls -d {STAGING}/vmail/*/*/Maildir/cur/* {STAGING}/vmail/*/*/Maildir/new/* 2>/dev/null | head -n1)
echo "$file"
if [ {change} = alter ]; then printf x >> "$file"; else rm "$file"; fi
govmail-backup restic backup --json --tag govmail --host tampered {STAGING} | tail -n1
rm -rf {STAGING}
"""
    completed = on_mail_host(script)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    path, summary = lines[0], json.loads(lines[-1])
    parts = path.split("/")
    address = f"{parts[-4]}@{parts[-5]}"
    return summary["snapshot_id"][:8], address, parts[-1].split(":")[0]


@pytest.fixture(scope="module")
def normal_archive_afterwards(govmail):
    yield
    ok_json(govmail("backup", "run", "--json"))  # later tests and `latest` see an honest archive


@pytest.mark.parametrize("change", ["alter", "remove"])
def test_a_message_altered_or_removed_in_an_archive_is_named(drill, normal_archive_afterwards, change):
    archive, address, message = tampered_archive(change)
    completed = on_mail_host(f"govmail-backup verify --archive {archive} --json")
    assert completed.returncode == 1, completed.stdout
    report = json.loads(completed.stdout)
    word = "altered" if change == "alter" else "missing"
    assert any(line.startswith(f"{address}: folder 'INBOX': message {message} {word}") for line in
               report["mismatches"]), report["mismatches"]  # fmt: skip
    assert [row["ok"] for row in report["mailboxes"] if row["address"] == address] == [False]
    assert f"govmail-backup: mismatch: {address}: folder 'INBOX': message {message} {word}" in completed.stderr

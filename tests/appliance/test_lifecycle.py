"""`govmail lifecycle run` (REQUIREMENTS P6-P8) with --as-of, against a converged stack.

The run executes on the directory host (govmail-lifecycle, installed by roles/lifecycle); the
tests confine it to a new agency of their own (--agency) so the other tests' mailboxes are not
touched, and simulate the passing months with --as-of (the quangtri-2026 profile: lock after 90
idle days, notify the agency after 180, delete 3 days after the notice).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import ok_json, one_line_error

NEW_PASSWORD = "Vong-Doi#2026a"


@pytest.fixture
def unit(new_agency):
    return new_agency("Phòng Kiểm thử Vòng đời", "vd")


@pytest.fixture
def today() -> date:
    """The controller's UTC day, read once per test (the hosts count days in UTC): a test that
    crosses midnight keeps one calendar for all its runs."""
    return datetime.now(UTC).date()


def run(govmail, unit, days: int, *extra: str, today: date) -> dict:
    as_of = (today + timedelta(days=days)).isoformat()
    return ok_json(govmail("lifecycle", "run", "--agency", unit["abbr"], "--as-of", as_of, "--json", *extra))


def actions_for(report: dict, address: str) -> list[str]:
    return [action["action"] for action in report["actions"] if action["address"] == address]


def test_idle_mailbox_is_locked_then_announced_then_archived_and_deleted(
    unit, today, govmail, login_ok, smtp, mail_host
):
    person = unit.person("Vũ Thị Vắng Mặt")
    mailbox = person["address"]
    changed = govmail("account", "passwd", mailbox, "--old", person["initial_password"], "--new", NEW_PASSWORD)
    assert changed.returncode == 0, changed.stderr
    assert login_ok(mailbox, NEW_PASSWORD)

    planned = run(govmail, unit, 100, "--dry-run", today=today)
    assert actions_for(planned, mailbox) == ["lock"]
    assert ok_json(govmail("account", "show", mailbox, "--json"))["status"] == "active", "a dry run changes nothing"

    assert actions_for(run(govmail, unit, 100, today=today), mailbox) == ["lock"]
    assert ok_json(govmail("account", "show", mailbox, "--json"))["status"] == "locked"
    assert not login_ok(mailbox, NEW_PASSWORD)
    assert run(govmail, unit, 101, today=today)["actions"] == [], "a locked mailbox is not locked twice"

    notified = run(govmail, unit, 181, today=today)
    assert actions_for(notified, mailbox) == ["notify"]
    notice = next(action for action in notified["actions"] if action["action"] == "notify")
    assert notice["agency_mailbox"] == unit["agency"]["address"]
    assert notice["deletion_due"] == (today + timedelta(days=184)).isoformat()
    found = mail_host.run(f"doveadm search -u {unit['agency']['address']} SUBJECT {mailbox}")
    assert found.rc == 0 and found.stdout.strip(), "the agency mailbox received the notice"
    assert ok_json(govmail("account", "show", mailbox, "--json"))["deletion_notice"]

    assert run(govmail, unit, 183, today=today)["actions"] == [], "nothing is deleted before the grace has passed"

    deleted = run(govmail, unit, 184, today=today)
    assert actions_for(deleted, mailbox) == ["delete"]
    archive = next(action for action in deleted["actions"] if action["action"] == "delete")["archive"]
    listing = mail_host.run(f"tar -tzf {archive}")
    assert listing.rc == 0 and "entry.json" in listing.stdout.split()
    assert mail_host.file(archive).mode == 0o600
    entry = json.loads(mail_host.check_output(f"tar -xzOf {archive} entry.json"))
    assert entry["mailbox_layout"] == "fs" and entry["attributes"]["mail"] == [mailbox]
    error = one_line_error(govmail("account", "show", mailbox, "--json"))
    assert mailbox in error
    smtp.ehlo("mx.example.net")
    smtp.mail("someone@example.net")
    code, _ = smtp.rcpt(mailbox)
    assert code == 550, "mail to a deleted mailbox is refused at RCPT"


def test_unlock_calls_off_the_deletion(unit, today, govmail):
    person = unit.person("Trịnh Văn Trở Lại")
    mailbox = person["address"]
    assert actions_for(run(govmail, unit, 181, today=today), mailbox) == ["lock", "notify"]

    unlocked = ok_json(govmail("account", "unlock", mailbox, "--json"))
    assert unlocked["status"] == "active"
    assert ok_json(govmail("account", "show", mailbox, "--json"))["deletion_notice"] is None

    assert "delete" not in actions_for(run(govmail, unit, 184, "--dry-run", today=today), mailbox)


def test_agency_mailboxes_are_not_locked_for_inactivity(unit, today, govmail):
    report = run(govmail, unit, 400, "--dry-run", today=today)
    assert actions_for(report, unit["agency"]["address"]) == []


def test_bad_as_of_and_unknown_agency_are_one_line_errors(unit, govmail):
    error = one_line_error(govmail("lifecycle", "run", "--as-of", "2026-13-40"))
    assert "2026-13-40" in error and "YYYY-MM-DD" in error
    error = one_line_error(govmail("lifecycle", "run", "--agency", "khongco123", "--dry-run"))
    assert "khongco123" in error


def test_the_daily_timer_is_enabled_and_its_run_succeeds(mail_host):
    timer = mail_host.service("govmail-lifecycle.timer")
    assert timer.is_enabled and timer.is_running
    assert "OnCalendar=" in mail_host.run("systemctl cat govmail-lifecycle.timer").stdout
    started = mail_host.run("systemctl start govmail-lifecycle.service")
    assert started.rc == 0, started.stderr
    result = mail_host.run("systemctl show -p Result --value govmail-lifecycle.service").stdout.strip()
    assert result == "success"


def test_the_host_program_is_the_govmail_package_installed_from_a_wheel(mail_host):
    """roles/lifecycle installs the package itself (no source files copied by name)."""
    where = mail_host.check_output("/opt/govmail/venv/bin/python -c 'import govmail.lifecycle as m; print(m.__file__)'")
    assert where.startswith("/opt/govmail/venv/lib/") and "/site-packages/govmail/" in where
    listed = mail_host.check_output("/opt/govmail/venv/bin/python -m pip show --files govmail")
    assert "govmail/mailbox.py" in listed and "govmail-lifecycle" in listed
    assert not mail_host.file("/usr/local/lib/govmail/python").exists
    check = mail_host.run("govmail-lifecycle check")
    assert check.rc == 0 and check.stdout.startswith("quangtri-2026: lock after 90 idle days"), check.stdout

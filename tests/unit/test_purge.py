"""Purge without a host: the Message-ID rule, exact matching of Dovecot's substring search, the
lifecycle archives that still hold a copy, and the audit file."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import subprocess
import tarfile
from datetime import UTC, date, datetime, timedelta

import pytest

from govmail import purge

ID = "<a1b2@quangtri.gov.vn>"


@pytest.mark.parametrize(("given", "expected"), [(ID, ID), ("a1b2@quangtri.gov.vn", ID), (f" {ID} ", ID)])
def test_a_message_id_is_taken_with_or_without_its_brackets(given, expected):
    assert purge.check_message_id(given) == expected


@pytest.mark.parametrize("bad", ["", "no-at-sign", "<a b@c>", "<a@b> <c@d>"])
def test_anything_else_is_refused_naming_the_input(bad):
    with pytest.raises(purge.PurgeError, match="is not a Message-ID"):
        purge.check_message_id(bad)


def test_only_exact_message_ids_are_kept_and_each_copy_gets_a_digest(monkeypatch):
    rows = [
        {"username": "b@q", "mailbox": "Trash", "uid": "3", "hdr.message-id": ID, "text": "mail"},
        {"username": "a@q", "mailbox": "INBOX", "uid": "9", "hdr.message-id": "<xa1b2@quangtri.gov.vn>", "text": "x"},
        {"username": "a@q", "mailbox": "Sent", "uid": "1", "hdr.message-id": f" {ID}", "text": "mail"},
    ]
    calls = []

    def fake(*argv):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, json.dumps(rows), "")

    monkeypatch.setattr(purge, "_doveadm", fake)
    found = purge.find(ID, ["a@q", "b@q"], sender="s@q")
    assert [(c["address"], c["folder"], c["uid"]) for c in found] == [("a@q", "Sent", 1), ("b@q", "Trash", 3)]
    assert {c["sha256"] for c in found} == {hashlib.sha256(b"mail").hexdigest()}
    assert calls[0][-7:] == ("mailbox", "*", "header", "Message-ID", ID, "from", "s@q")


def test_lifecycle_archives_holding_the_message_are_listed(tmp_path):
    def archive(name: str, content: bytes) -> None:
        with tarfile.open(tmp_path / name, "w:gz") as tar:
            info = tarfile.TarInfo("home/Maildir/cur/1:2,S")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))

    archive("a@q-2026-01-01.tar.gz", b"From: x\r\nMessage-Id: " + ID.encode() + b"\r\n\r\nbody")
    archive("b@q-2026-01-01.tar.gz", b"Message-ID: <other@q>\r\n\r\nbody")
    found = purge.archives_holding(ID, str(tmp_path))
    assert [item["archive"] for item in found] == [str(tmp_path / "a@q-2026-01-01.tar.gz")]


def test_the_audit_file_is_root_only_and_appended(tmp_path):
    path = tmp_path / "log" / "purge.log"
    purge.audit(str(path), {"n": 1})
    purge.audit(str(path), {"n": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2]


def test_a_host_program_that_is_missing_or_fails_is_one_line_naming_it():
    from govmail.cli.common import host_program_report
    from govmail.remote import Completed

    class Runner:
        description = "mail1 (docker exec)"

        def __init__(self, completed):
            self.completed = completed

        def run(self, command):
            return self.completed

    missing = Runner(Completed(127, "", "sh: 1: /opt/govmail/venv/bin/govmail-purge: not found\n"))
    with pytest.raises(purge.PurgeError, match=r"^purge on mail1 \(docker exec\) failed: .*-purge is not installed"):
        host_program_report(missing, ["/opt/govmail/venv/bin/govmail-purge", "--json"], purge.PurgeError, "purge")
    failing = Runner(Completed(1, "", "govmail-purge: doveadm fetch failed: timeout\n"))
    with pytest.raises(purge.PurgeError, match=r"failed: doveadm fetch failed: timeout$"):
        host_program_report(failing, ["/opt/govmail/venv/bin/govmail-purge", "--json"], purge.PurgeError, "purge")
    ok = Runner(Completed(0, '{"removed": []}', ""))
    assert host_program_report(ok, ["/x/govmail-purge", "--json"], purge.PurgeError, "purge") == {"removed": []}


# --- backups still holding the message, and when the retention ages them out ---------------------

RETENTION = {"daily": 7, "weekly": 4, "monthly": 12}  # roles/backup's defaults
NEWEST = datetime(2026, 11, 30, 1, 30, tzinfo=UTC)  # a Monday
DAILY = [NEWEST - timedelta(days=day) for day in range(60)]  # one backup a day for 60 days


@pytest.mark.parametrize(
    ("taken", "rules", "drops"),
    [
        # the newest: daily for 7 days, weekly until Tuesday, monthly (newest of November) for 12 months
        (date(2026, 11, 30), ["daily", "weekly", "monthly"], date(2027, 11, 1)),
        (date(2026, 11, 24), ["daily"], date(2026, 12, 1)),  # 7th newest day: dropped by the next backup
        (date(2026, 11, 22), ["weekly"], date(2026, 12, 14)),  # Sunday: last of its week, 4 weeks
        (date(2026, 10, 31), ["monthly"], date(2027, 10, 1)),  # last of October
        (date(2026, 11, 23), [], date(2026, 11, 30)),  # kept by no rule: the next prune removes it
    ],
    ids=["newest", "seventh-day", "sunday", "end-of-month", "not-kept"],
)
def test_the_retention_says_when_each_backup_ages_out(taken, rules, drops):
    snapshot = next(moment for moment in DAILY if moment.date() == taken)
    assert purge.ages_out(snapshot, DAILY, RETENTION) == (rules, drops)


def test_the_newest_backup_on_the_first_of_a_month_is_dropped_as_a_daily():
    """On a day that ends neither a week nor a month, tomorrow's backup takes the week's and the
    month's place: the newest is kept by all three rules today and ages out as a daily, 7 days
    later (the CI run of 2026-12-01 found the appliance test assumed the last day of a month)."""
    newest = datetime(2026, 12, 1, 1, 7, tzinfo=UTC)  # a Tuesday
    daily = [newest - timedelta(days=day) for day in range(60)]
    assert purge.ages_out(newest, daily, RETENTION) == (["daily", "weekly", "monthly"], date(2026, 12, 8))


def maildir(root, address, folder, name, content):
    local, domain = address.split("@")
    path = root / domain / local / "Maildir" / ("" if folder == "INBOX" else folder) / "cur"
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def test_the_digest_of_each_copys_file_is_what_a_backup_manifest_records(tmp_path):
    inbox = maildir(tmp_path, "a@q", "INBOX", "1.M1P1.mail1,S=4:2,S", b"mail")
    sent = maildir(tmp_path, "a@q", "Sent", "2.M2P2.mail1,S=5:2,", b"mail!")
    maildir(tmp_path, "a@q", "INBOX", "3.M3P3.mail1,S=5:2,", b"other")
    copies = [
        {"address": "a@q", "folder": "INBOX", "guid": "1.M1P1.mail1,S=4"},
        {"address": "a@q", "folder": "Sent", "guid": "2.M2P2.mail1,S=5"},
    ]
    assert purge.file_digests(str(tmp_path), copies) == {inbox, sent}


def test_backups_whose_manifest_holds_a_copy_are_listed_with_their_ageing(tmp_path, monkeypatch):
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({
        "host": "mail1", "repository": "rest:https://backup1:8000/mail1/", "username": "mail1",
        "password_file": "p", "repository_password_file": "r", "ca_certificate": "c", "vmail_dir": "/var/vmail",
        "base_dn": "dc=q", "staging_dir": "/var/backups/govmail/staging", "paths": [], "operators": "o@q",
        "retention": RETENTION,
    }))  # fmt: skip
    snapshots = [
        {"id": "aaaa" * 16, "short_id": "aaaaaaaa", "time": "2026-11-29T01:30:00.123456789+00:00"},
        {"id": "bbbb" * 16, "short_id": "bbbbbbbb", "time": "2026-11-30T01:30:00.5+00:00"},
    ]
    holding = {"mailboxes": {"a@q": {"folders": {"Sent": {"files": {"2.M2": {"sha256": "d1"}}}}}}}
    without = {"mailboxes": {"a@q": {"folders": {"INBOX": {"files": {"9.M9": {"sha256": "zz"}}}}}}}
    calls = []

    def restic(_config, args, check=True):
        calls.append(args)
        if args[0] == "snapshots":
            return subprocess.CompletedProcess(args, 0, json.dumps(snapshots), "")
        assert args[2] == "/var/backups/govmail/staging/manifest.json"
        return subprocess.CompletedProcess(args, 0, json.dumps(holding if args[1] == "a" * 64 else without), "")

    monkeypatch.setattr(purge.backup, "restic", restic)
    found = purge.backups_holding({"d1"}, [], str(config))
    assert found == [
        {"archive": "aaaaaaaa", "kind": "backup", "time": "2026-11-29T01:30:00.123456789+00:00",
         "copies": [{"address": "a@q", "folder": "Sent"}], "kept_as": ["daily", "weekly"], "ages_out": "2026-12-21"}
    ]  # fmt: skip
    assert [args[0] for args in calls] == ["snapshots", "dump", "dump"]


def test_a_host_without_backups_lists_none(tmp_path):
    assert purge.backups_holding({"d1"}, [], str(tmp_path / "absent.json")) == []

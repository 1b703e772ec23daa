"""Purge without a host: the Message-ID rule, exact matching of Dovecot's substring search, the
lifecycle archives that still hold a copy, and the audit file."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import subprocess
import tarfile

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
    from govmail.cli.operations_commands import _host_program_report
    from govmail.remote import Completed

    class Runner:
        description = "mail1 (docker exec)"

        def __init__(self, completed):
            self.completed = completed

        def run(self, command):
            return self.completed

    missing = Runner(Completed(127, "", "sh: 1: /opt/govmail/venv/bin/govmail-purge: not found\n"))
    with pytest.raises(purge.PurgeError, match=r"^purge on mail1 \(docker exec\) failed: .*-purge is not installed"):
        _host_program_report(missing, ["/opt/govmail/venv/bin/govmail-purge", "--json"], purge.PurgeError, "purge")
    failing = Runner(Completed(1, "", "govmail-purge: doveadm fetch failed: timeout\n"))
    with pytest.raises(purge.PurgeError, match=r"failed: doveadm fetch failed: timeout$"):
        _host_program_report(failing, ["/opt/govmail/venv/bin/govmail-purge", "--json"], purge.PurgeError, "purge")
    ok = Runner(Completed(0, '{"removed": []}', ""))
    assert _host_program_report(ok, ["/x/govmail-purge", "--json"], purge.PurgeError, "purge") == {"removed": []}

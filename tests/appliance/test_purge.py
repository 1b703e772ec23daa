"""Purging a leaked secret document (QT §10.4, §11.3; LC §17.3): `govmail message purge` finds every
copy in every mailbox and folder, removes them and nothing else, and leaves an audit record with
digests but no content."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import clients
import pytest
from conftest import imap_fetch, make_message, ok_json

SUBJECT = "Tài liệu MẬT số 17"


def _doveadm(mail_host, command: str):
    result = mail_host.run(f"doveadm {command}")
    assert result.rc == 0, result.stderr
    return result


@pytest.fixture
def leaked(new_agency, submissions, alice, bob, agency, personal, imaps, mail_host):
    """A secret mail from alice to five mailboxes, with alice's Sent copy; bob moved his copy to a
    folder of his own, the third person deleted hers (Trash). Also an ordinary mail to the same
    people, which must survive. Returns (secret Message-ID, ordinary Message-ID, recipients)."""
    unit = new_agency("Phòng Kiểm thử Thu hồi", "th")
    extra = [unit.person("Phan Văn Nhận"), unit.person("Hà Thị Nhận")]
    recipients = [bob["address"], personal[2]["address"], agency["address"], *(p["address"] for p in extra)]
    submissions.login(alice["address"], alice["password"])
    secret = make_message(alice["address"], ", ".join(recipients), SUBJECT, "Nội dung mật, không được lan truyền.\n")
    ordinary = make_message(alice["address"], ", ".join(recipients), "Lịch họp", "Họp giao ban sáng thứ Hai.\n")
    for message in (ordinary, secret):
        assert submissions.send_message(message) == {}
    sent = imaps(alice)
    assert sent.append("Sent", "(\\Seen)", None, secret.as_bytes())[0] == "OK"
    folder = "Tài liệu mật"
    bob_address, third = bob["address"], personal[2]["address"]

    def delivered() -> bool:
        return all(
            mail_host.run(f"doveadm search -u {who} mailbox INBOX header Message-ID '{mid}'").stdout.strip()
            for who in recipients for mid in (secret["Message-ID"], ordinary["Message-ID"])
        )  # fmt: skip

    clients.wait_for(delivered, what="both mails in the five INBOXes", timeout=120)
    _doveadm(mail_host, f"mailbox create -u {bob_address} '{folder}'")
    _doveadm(mail_host, f"move -u {bob_address} '{folder}' mailbox INBOX header Message-ID '{secret['Message-ID']}'")
    _doveadm(mail_host, f"move -u {third} Trash mailbox INBOX header Message-ID '{secret['Message-ID']}'")
    yield secret["Message-ID"], ordinary["Message-ID"], recipients
    mail_host.run(f"doveadm mailbox delete -u {bob_address} '{folder}'")


def test_the_dry_run_lists_every_copy_and_removes_nothing(govmail, leaked, alice, bob, personal):
    secret, _, recipients = leaked
    report = ok_json(govmail("message", "purge", "--message-id", secret, "--dry-run", "--json"))
    assert report["dry_run"] is True and report["message_id"] == secret
    where = {(copy["address"], copy["folder"]) for copy in report["removed"]}
    assert where == {
        (alice["address"], "Sent"),
        (bob["address"], "Tài liệu mật"),
        (personal[2]["address"], "Trash"),
        *((address, "INBOX") for address in recipients if address not in (bob["address"], personal[2]["address"])),
    }
    again = ok_json(govmail("message", "purge", "--message-id", secret, "--dry-run", "--json"))
    assert len(again["removed"]) == 6


def test_the_purge_removes_every_copy_and_nothing_else(govmail, leaked, imaps, bob, mail_host):
    secret, ordinary, recipients = leaked
    report = ok_json(govmail("message", "purge", "--message-id", secret, "--json"))
    assert report["dry_run"] is False
    # the 6 copies people saw, then what Dovecot's lazy_expunge kept of them (undelete's folder)
    seen = [copy for copy in report["removed"] if copy["folder"] != "EXPUNGED"]
    assert len(seen) == 6
    assert report["archives_still_holding"] == []
    after = ok_json(govmail("message", "purge", "--message-id", secret, "--dry-run", "--json"))
    assert after["removed"] == []
    for who in recipients:
        found = mail_host.run(f"doveadm search -u {who} mailbox INBOX header Message-ID '{ordinary}'").stdout
        assert found.strip(), f"the ordinary mail to {who} was removed"
    assert imap_fetch(imaps(bob), ordinary) is not None  # what the owner sees over IMAP


def test_the_purge_leaves_an_audit_record_with_digests_and_no_content(govmail, leaked, mail_host):
    secret, _, _ = leaked
    report = ok_json(govmail("message", "purge", "--message-id", secret, "--json"))
    log = mail_host.file(report["audit"])
    assert log.mode == 0o600 and log.user == "root"
    record = json.loads(log.content_string.strip().splitlines()[-1])
    assert record["message_id"] == secret and record["dry_run"] is False and record["operator"]
    # the 6 copies people saw, then those Dovecot's lazy_expunge kept of them (undelete's folder)
    assert len([copy for copy in record["copies"] if copy["folder"] != "EXPUNGED"]) == 6
    assert all(len(copy["sha256"]) == 64 and set(copy) == {"address", "folder", "sha256"} for copy in record["copies"])
    assert [c["sha256"] for c in record["copies"]] == [c["sha256"] for c in report["removed"]]
    text = log.content_string
    assert SUBJECT not in text and "Nội dung mật" not in text


def test_a_malformed_message_id_is_a_one_line_error(govmail):
    result = govmail("message", "purge", "--message-id", f"khong-hop-le-{uuid.uuid4().hex}", "--json")
    assert result.returncode == 1
    assert "is not a Message-ID: write it as <left@right>" in result.stderr


def drops_newest(taken: date) -> date:
    """The day roles/backup's default retention (7 daily, 4 weekly, 12 monthly) drops the newest
    backup, taken on ``taken``, when one backup follows each day: restic keeps the newest snapshot of
    each day, ISO week and month. Written from the calendar, apart from the binary search of
    ``purge.ages_out``: 7 days later as a daily; on a Sunday (the last day of its week), when the
    fourth newer week begins (22 days later); on the last day of a month, when the twelfth newer
    month begins (the first day of the same month a year later)."""
    days = [taken + timedelta(days=7)]
    if taken.isoweekday() == 7:
        days.append(taken + timedelta(days=22))
    if (taken + timedelta(days=1)).month != taken.month:
        days.append(date(taken.year + 1, taken.month, 1))
    return max(days)


def test_drops_newest_follows_the_calendar():
    """The oracle itself, on the days that mattered: the CI run of 2026-12-01 (a Tuesday, first of
    the month) and the day the test was written (2026-11-30, the last of November)."""
    assert drops_newest(date(2026, 12, 1)) == date(2026, 12, 8)
    assert drops_newest(date(2026, 11, 29)) == date(2026, 12, 21)
    assert drops_newest(date(2026, 11, 30)) == date(2027, 11, 1)
    assert drops_newest(date(2026, 5, 31)) == date(2027, 5, 1)  # a Sunday and the last of May


def test_a_backup_taken_after_the_leak_is_listed_with_the_day_its_retention_drops_it(
    govmail, submissions, alice, bob, mail_host
):
    """A backup of the mail host holds the leaked copy: the purge names that archive, the copy it
    holds, and the day the retention drops it, which depends on the calendar day the test runs on
    (:func:`drops_newest`)."""
    submissions.login(alice["address"], alice["password"])
    secret = make_message(alice["address"], bob["address"], SUBJECT, "Nội dung mật, bản sao lưu.\n")
    assert submissions.send_message(secret) == {}
    mid = secret["Message-ID"]
    clients.wait_for(
        lambda: mail_host.run(f"doveadm search -u {bob['address']} mailbox INBOX header Message-ID '{mid}'").stdout,
        what="the mail in bob's INBOX",
    )
    backed_up = ok_json(govmail("backup", "run", "--json"))
    taken = date.fromisoformat(backed_up["time"][:10])
    expected = {
        "archive": backed_up["archive"], "kind": "backup", "copies": [{"address": bob["address"], "folder": "INBOX"}],
        "kept_as": ["daily", "weekly", "monthly"], "ages_out": drops_newest(taken).isoformat(),
    }  # fmt: skip
    dry = ok_json(govmail("message", "purge", "--message-id", mid, "--dry-run", "--json"))
    [listed] = [item for item in dry["archives_still_holding"] if item["kind"] == "backup"]
    assert {key: listed[key] for key in expected} == expected
    report = ok_json(govmail("message", "purge", "--message-id", mid, "--json"))
    assert [item["archive"] for item in report["archives_still_holding"]] == [backed_up["archive"]]

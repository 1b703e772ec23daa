"""The lifecycle's decisions (pure), its configuration and its command line, without a directory."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from govmail import lifecycle, mailbox, policy
from govmail.lifecycle import LifecycleError, Mailbox

QT = policy.get_profile("quangtri-2026")
NB = policy.get_profile("ninhbinh-2020")
LC = policy.get_profile("laichau-2019")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday


def box(address="a@d", kind="personal", status="active", **times) -> Mailbox:
    return Mailbox(dn=f"uid={address.split('@')[0]},ou=x", address=address, kind=kind, status=status, **times)


def day(offset: int) -> date:
    return date.fromordinal(START.date().toordinal() + offset)


def actions(mailboxes, profile=QT, offset=0, holidays=()):
    return [(a.address, a.action) for a in lifecycle.plan(mailboxes, profile, day(offset), holidays)]


@pytest.mark.parametrize(
    ("profile", "offset", "expected"),
    [
        (QT, 89, []),
        (QT, 90, ["lock"]),
        (QT, 179, ["lock"]),
        (QT, 180, ["lock", "notify"]),
        (NB, 179, []),
        (NB, 180, ["lock", "notify"]),
        (LC, 180, ["lock", "notify"]),
    ],
)
def test_an_active_mailbox_is_locked_and_announced_at_the_profiles_thresholds(profile, offset, expected):
    assert [action for _, action in actions([box(last_login=START)], profile, offset)] == expected


def test_inactivity_counts_from_creation_when_there_was_never_a_login():
    never = box(created=START)
    assert actions([never], QT, 90) == [("a@d", "lock")]
    used = box(created=START, last_login=datetime(2026, 3, 1, tzinfo=UTC))
    assert actions([used], QT, 90) == []


def test_a_locked_mailbox_is_not_locked_again_but_still_announced():
    locked = box(status="locked", last_login=START)
    assert actions([locked], QT, 100) == []
    assert actions([locked], QT, 180) == [("a@d", "notify")]


@pytest.mark.parametrize(
    ("profile", "notice_offset", "due_offset"),
    [
        (QT, 180, 183),  # 3 days
        (LC, 180, 545),  # 365 days
        (NB, 180, 200),  # 15 working days after Saturday 2026-07-04: Friday 2026-07-24
    ],
)
def test_deletion_comes_when_the_grace_after_the_notice_has_passed(profile, notice_offset, due_offset):
    notice = datetime.combine(day(notice_offset), datetime.min.time(), UTC)
    announced = box(status="locked", last_login=START, notice=notice)
    due = profile.deletion_due(day(notice_offset))
    assert due == day(due_offset)
    assert actions([announced], profile, (due - START.date()).days - 1) == []
    planned = lifecycle.plan([announced], profile, due)
    assert [(a.action, a.deletion_due) for a in planned] == [("delete", due.isoformat())]


def test_working_day_grace_skips_weekends_and_holidays():
    notice = date(2026, 7, 3)  # a Friday
    assert NB.deletion_due(notice) == date(2026, 7, 24)
    assert NB.deletion_due(notice, holidays=[date(2026, 7, 6)]) == date(2026, 7, 27)


def test_a_notice_older_than_the_last_login_is_cleared_not_acted_on():
    notice = datetime(2026, 7, 1, tzinfo=UTC)
    reopened = box(last_login=datetime(2026, 7, 2, tzinfo=UTC), notice=notice)
    assert actions([reopened], QT, 200) == [("a@d", "clear-notice")]


def test_agency_mailboxes_are_never_locked_or_deleted_for_inactivity():
    agency = box(address="sokhcn@d", kind="agency", created=START)
    assert actions([agency], QT, 1000) == []


def test_a_terminated_mailbox_counts_from_its_termination():
    terminated = box(status="terminated", last_login=START, status_changed=datetime(2026, 6, 1, tzinfo=UTC))
    assert actions([terminated], QT, 200) == []
    assert actions([terminated], QT, (date(2026, 6, 1) - START.date()).days + 180) == [("a@d", "notify")]


def test_a_reopened_mailbox_counts_from_its_reopening_not_its_last_login():
    reopened = box(last_login=START, status_changed=datetime(2026, 6, 1, tzinfo=UTC))
    assert actions([reopened], QT, 200) == []
    locked = box(status="locked", last_login=START, status_changed=datetime(2026, 6, 1, tzinfo=UTC))
    assert actions([locked], QT, 180) == [("a@d", "notify")], "a lock does not restart the count"


def test_mailbox_from_ldap_attributes_reads_the_times():
    parsed = Mailbox.from_attributes(
        "uid=a,ou=x",
        {
            "mail": ["A@D"],
            "govmailKind": ["personal"],
            "govmailStatus": ["Locked"],
            "authTimestamp": ["20260301101500Z"],
            "pwdLastSuccess": ["20260302000000.123456Z"],
            "createTimestamp": ["20260101000000Z"],
            "pwdAccountLockedTime": [mailbox.PERMANENT_LOCKOUT],
        },
    )
    assert parsed.address == "a@d" and parsed.status == "locked"
    assert parsed.last_login == datetime(2026, 3, 2, tzinfo=UTC)
    assert parsed.created == datetime(2026, 1, 1, tzinfo=UTC)
    assert lifecycle.parse_time(mailbox.PERMANENT_LOCKOUT) is None


def test_notice_text_names_the_mailbox_and_the_date_in_vietnamese_and_english():
    action = lifecycle.Action(
        address="a@d", dn="x", action="notify", idle_days=181, last_activity="2026-01-05T09:00:00Z",
        status="locked", deletion_due="2026-07-08",
    )  # fmt: skip
    subject, body = lifecycle.notice_text(action, QT)
    assert "a@d" in subject and "xoá" in subject
    assert "2026-07-08" in body and "181" in body and "deleted" in body


def test_config_applies_the_profile_and_its_overrides(tmp_path):
    path = tmp_path / "lifecycle.json"
    path.write_text(json.dumps({
        "domain": "d", "base_dn": "dc=d", "profile": "ninhbinh-2020",
        "overrides": {"inactivity_lock_days": 150}, "holidays": ["2026-09-02"],
    }))  # fmt: skip
    config = lifecycle.Config.load(path)
    assert config.profile.inactivity_lock_days == 150 and config.sender == "postmaster@d"
    assert config.holidays == (date(2026, 9, 2),)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        ("{not json", "cannot be read"),
        (json.dumps({"base_dn": "dc=d"}), "lacks 'domain'"),
        (json.dumps({"domain": "d", "base_dn": "dc=d", "profile": "hanoi"}), "hanoi"),
        (json.dumps({"domain": "d", "base_dn": "dc=d", "holidays": ["2 Sept"]}), "2 Sept"),
    ],
)
def test_config_errors_name_the_file_and_the_problem(tmp_path, content, words):
    path = tmp_path / "lifecycle.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(lifecycle.GovmailError, match=words):
        lifecycle.Config.load(path)


def test_as_of_must_be_a_date():
    with pytest.raises(LifecycleError, match="YYYY-MM-DD"):
        lifecycle.parse_date("23/11/2026")


def test_main_reports_a_missing_configuration_in_one_line(tmp_path, capsys):
    assert lifecycle.main(["run", "--config", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("govmail-lifecycle: configuration")


def test_main_check_prints_the_thresholds(tmp_path, capsys):
    path = tmp_path / "lifecycle.json"
    path.write_text(json.dumps({"domain": "d", "base_dn": "dc=d"}))
    assert lifecycle.main(["check", "--config", str(path)]) == 0
    assert "lock after 90 idle days" in capsys.readouterr().out

"""The operators' daily mail without a host: failed-login counting from log lines as Dovecot 2.4 and
Postfix 3.10 write them, the accounts due in the next days, the Vietnamese mail and its config."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from govmail import daily, lifecycle, policy

DOVECOT = (
    "imap-login: Login aborted: Logged out (auth failed, 1 attempts in 2 secs) (auth_failed): "
    "user=<{user}>, method=PLAIN, rip={ip}, lip=172.29.51.2, TLS, session=<abc>"
)
POSTFIX = "warning: unknown[{ip}]: SASL PLAIN authentication failed: (reason unavailable), sasl_username={user}"

THRESHOLDS = {
    "certificate_warning_days": 30, "certificate_critical_days": 7, "queue_warning_messages": 100,
    "queue_critical_messages": 1000, "queue_warning_minutes": 60, "queue_critical_minutes": 240,
    "store_warning_free_percent": 20, "store_critical_free_percent": 10, "quota_warning_percent": 95,
}  # fmt: skip


def config(**changes) -> daily.Config:
    values = dict(
        host="mail1", groups=("ldap", "mx", "mailstore"), domain="quangtri.gov.vn", hostname="mail.quangtri.gov.vn",
        ca_file="/etc/ssl/govmail/ca.crt", vmail_dir="/var/vmail", thresholds=THRESHOLDS,
        operators="vanhanh@quangtri.gov.vn", sender="postmaster@quangtri.gov.vn",
    )  # fmt: skip
    values.update(changes)
    return daily.Config(**values)


def test_failed_logins_are_counted_per_address_and_per_client_from_dovecot_and_postfix():
    lines = [
        DOVECOT.format(user="a@quangtri.gov.vn", ip="10.1.1.1"),
        DOVECOT.format(user="A@quangtri.gov.vn", ip="10.1.1.1"),
        POSTFIX.format(user="a@quangtri.gov.vn", ip="10.1.1.1"),
        POSTFIX.format(user="b@quangtri.gov.vn", ip="10.2.2.2"),
        "imap-login: Login: user=<a@quangtri.gov.vn>, method=PLAIN, rip=10.1.1.1",  # a success
        "postfix/smtpd[1]: connect from unknown[10.3.3.3]",
    ]
    assert daily.failed_logins(lines, top=5) == {
        "total": 4,
        "by_address": [["a@quangtri.gov.vn", 3], ["b@quangtri.gov.vn", 1]],
        "by_client": [["10.1.1.1", 3], ["10.2.2.2", 1]],
    }
    assert daily.failed_logins(lines, top=1)["by_client"] == [["10.1.1.1", 3]]


def test_accounts_due_within_the_lookahead_get_the_day_their_threshold_is_reached(tmp_path, monkeypatch):
    profile = policy.get_profile("quangtri-2026")  # lock after 90 idle days, notice after 180
    (tmp_path / "lifecycle.json").write_text(json.dumps({"domain": "quangtri.gov.vn", "base_dn": "dc=x"}))
    seen = {}

    def fake_run(config, *, as_of, dry_run):
        seen.update(as_of=as_of, dry_run=dry_run)
        return {"profile": profile.name, "actions": [
            {"address": "a@q", "action": "lock", "idle_days": 92, "deletion_due": None},
            {"address": "b@q", "action": "notify", "idle_days": 187, "deletion_due": "2027-01-01"},
            {"address": "c@q", "action": "delete", "idle_days": 300, "deletion_due": "2026-12-03"},
            {"address": "d@q", "action": "clear-notice", "idle_days": 1, "deletion_due": None},
        ]}  # fmt: skip

    monkeypatch.setattr(lifecycle, "run", fake_run)
    found = daily.upcoming_accounts(date(2026, 11, 29), 7, str(tmp_path / "lifecycle.json"))
    assert seen == {"as_of": date(2026, 12, 6), "dry_run": True}
    assert found == {"profile": "quangtri-2026", "error": None, "accounts": [
        {"address": "a@q", "action": "lock", "due": "2026-12-04", "idle_days": 85},
        {"address": "b@q", "action": "notify", "due": "2026-11-29", "idle_days": 180},
        {"address": "c@q", "action": "delete", "due": "2026-12-03", "idle_days": 293},
    ]}  # fmt: skip


def test_the_mail_is_vietnamese_with_every_section():
    checks = [
        {"host": "mail1", "service": "dovecot", "check": "active", "status": "critical",
         "detail": "dovecot is inactive"},
        {"host": "mail1", "service": "postfix", "check": "queue", "status": "ok", "detail": "2 messages in the queue",
         "data": {"messages": 2}},
        {"host": "mail1", "service": "postfix", "check": "port 25 (smtp)", "status": "warning",
         "detail": "TLSv1.3, expires 2026-12-09 (10 days)", "data": {"certificate_days_left": 10}},
    ]  # fmt: skip
    accounts = {"profile": "quangtri-2026", "error": None,
                "accounts": [{"address": "a@q", "action": "lock", "due": "2026-12-04", "idle_days": 85}]}  # fmt: skip
    logins = {"total": 3, "by_address": [["a@q", 3]], "by_client": [["10.1.1.1", 3]]}
    status, subject, body = daily.compose(config(), checks, accounts, logins, date(2026, 11, 29))
    assert status == "critical"
    assert subject == "[govmail] Báo cáo vận hành mail.quangtri.gov.vn ngày 2026-11-29: NGHIÊM TRỌNG"
    for heading in ("1. Sự cố và cảnh báo", "2. Hàng đợi thư và dung lượng lưu trữ", "3. Chứng chỉ sắp hết hạn",
                    "4. Sao lưu", "5. Tài khoản sẽ bị khoá, thông báo hoặc xoá trong 7 ngày tới",
                    "6. Đăng nhập thất bại trong 24 giờ qua: 3 lần"):  # fmt: skip
        assert heading in body
    assert "- [NGHIÊM TRỌNG] dovecot / active: dovecot is inactive" in body
    assert "- 2 messages in the queue" in body
    assert "- port 25 (smtp): TLSv1.3, expires 2026-12-09 (10 days)" in body
    assert "- a@q: khoá từ ngày 2026-12-04 (không truy cập 85 ngày)" in body
    assert "- 10.1.1.1: 3 lần" in body


def test_the_mail_can_be_english():
    _, subject, body = daily.compose(config(language="en"), [], {"accounts": []}, daily.failed_logins([], 5),
                                     date(2026, 11, 29))  # fmt: skip
    assert subject == "[govmail] Operations report mail.quangtri.gov.vn 2026-11-29: OK"
    assert "None: every check passed (0 checks)." in body


@pytest.mark.parametrize(
    ("change", "message"),
    [({"language": "fr"}, "language 'fr' is not one of vi, en"),
     ({"thresholds": {}}, "lacks the threshold govmail_check_certificate_warning_days"),
     ({"operators": None}, None)],
)  # fmt: skip
def test_a_bad_configuration_is_named(tmp_path, change, message):
    data = {"host": "mail1", "groups": ["ldap"], "domain": "q", "hostname": "mail.q", "ca_file": "/c",
            "vmail_dir": "/v", "thresholds": {f"govmail_check_{k}": v for k, v in THRESHOLDS.items()},
            "operators": "o@q"} | change  # fmt: skip
    if change.get("operators", "") is None:
        del data["operators"]
        message = "lacks 'operators'"
    path = tmp_path / "daily-mail.json"
    path.write_text(json.dumps(data))
    with pytest.raises(daily.DailyMailError, match=message):
        daily.Config.load(path)


def fake_backup_program(tmp_path, monkeypatch, stdout: str, status: int = 0) -> None:
    """A ``govmail-backup`` on PATH that answers ``list --json`` with ``stdout``."""
    program = tmp_path / "govmail-backup"
    program.write_text(f"#!/bin/sh\ncat <<'JSON'\n{stdout}\nJSON\necho 'govmail-backup: rest-server refused' >&2\n"
                       f"exit {status}\n")  # fmt: skip
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")


BACKUP_LIMITS = {**THRESHOLDS, "backup_warning_hours": 26, "backup_critical_hours": 50}


def test_section_4_gives_the_age_of_this_hosts_newest_archive(tmp_path, monkeypatch):
    archives = [{"archive": "a1", "time": "2026-11-27T01:00:00Z", "mailboxes": 3, "messages": 9},
                {"archive": "a2", "time": "2026-11-28T01:00:00Z", "mailboxes": 3, "messages": 10}]  # fmt: skip
    fake_backup_program(tmp_path, monkeypatch, json.dumps(archives))
    rows = daily.backup_rows(config(thresholds=BACKUP_LIMITS), now=datetime(2026, 11, 29, 7, 0, tzinfo=UTC))
    assert [(row["status"], row["data"]["archive"]) for row in rows] == [("warning", "a2")]
    logins = daily.failed_logins([], 5)
    status, _, body = daily.compose(config(), [], {"accounts": []}, logins, date(2026, 11, 29), rows)
    assert status == "warning"
    section = body.split("4. Sao lưu\n", 1)[1].split("\n\n", 1)[0]
    assert section.startswith("- [CẢNH BÁO] mail1: latest archive a2 is 30.0 hours old")
    assert "- [CẢNH BÁO] backup / backup age: latest archive a2" in body  # also among the failures


def test_a_backup_list_that_fails_is_critical_and_a_host_without_backups_says_so(tmp_path, monkeypatch):
    fake_backup_program(tmp_path, monkeypatch, "", status=1)
    rows = daily.backup_rows(config(thresholds=BACKUP_LIMITS))
    assert rows[0]["status"] == "critical"
    assert rows[0]["detail"] == "the archives cannot be listed: rest-server refused"
    assert daily.backup_rows(config()) is None  # no thresholds: not a backup client
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert daily.backup_rows(config(thresholds=BACKUP_LIMITS)) is None  # no govmail-backup here
    _, _, body = daily.compose(config(), [], {"accounts": []}, daily.failed_logins([], 5), date(2026, 11, 29), None)
    assert "4. Sao lưu\nMáy này không được sao lưu (không có máy sao lưu trong inventory)." in body

"""The operators' daily mail: made on the directory host (its timer, or `govmail daily-mail`) and
delivered to the operators' mailbox (the lab's govmail_operators_address: the second demo person)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import clients
import pytest
from conftest import imap_fetch, imap_login_ok, ok_json, parse

SECTIONS = (
    "1. Sự cố và cảnh báo",
    "2. Hàng đợi thư và dung lượng lưu trữ",
    "3. Chứng chỉ sắp hết hạn (trong 30 ngày)",
    "4. Sao lưu",
    "5. Tài khoản sẽ bị khoá, thông báo hoặc xoá trong 7 ngày tới (quangtri-2026)",
)


@pytest.fixture(scope="module")
def sent(govmail, address, hostname, port, tls, domain, fresh_backup):
    """One failed login of an unknown user, then the daily mail sent now (after a backup); its JSON report."""
    stranger = f"khongco{uuid.uuid4().hex[:8]}@{domain}"
    assert not imap_login_ok(address, hostname, port, tls, stranger, "Sai-mat-khau-1!")
    return ok_json(govmail("daily-mail", "--send", "--json"))


def test_the_daily_mail_is_sent_to_the_operators_address(sent, bob):
    assert sent["sent_to"] == bob["address"]
    assert sent["status"] == "ok", [row for row in sent["checks"] if row["status"] != "ok"]


def test_the_daily_mail_arrives_in_vietnamese_with_its_sections(sent, imaps, bob, hostname):
    client = imaps(bob)
    raw = clients.wait_for(lambda: imap_fetch(client, sent["message_id"]), what="the daily mail")
    message = parse(raw)
    assert message["Subject"] == f"[govmail] Báo cáo vận hành {hostname} ngày {sent['date']}: BÌNH THƯỜNG"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    for section in SECTIONS:
        assert section in body
    assert "Không có: mọi kiểm tra đều đạt" in body
    assert re.search(r"- \d+ messages? in the queue", body)
    assert re.search(r"Không có\. Chứng chỉ gần hết hạn nhất còn \d+ ngày\.", body)


def test_section_4_gives_the_age_of_the_mail_hosts_newest_backup(sent, fresh_backup):
    host = sent["checks"][0]["host"]  # the inventory's name of the mail host
    [row] = sent["backups"]
    assert (row["host"], row["status"]) == (host, "ok")
    assert row["data"]["archive"] == fresh_backup["archive"]
    assert f"- [BÌNH THƯỜNG] {host}: latest archive {fresh_backup['archive']} is " in sent["body"]


def test_failed_logins_are_counted_with_the_client_address(sent):
    logins = sent["failed_logins"]
    assert logins["total"] >= 1
    assert logins["by_client"], logins
    match = re.search(r"6\. Đăng nhập thất bại trong 24 giờ qua: (\d+) lần", sent["body"])
    assert match and int(match.group(1)) == logins["total"]
    for client, count in logins["by_client"]:
        assert f"- {client}: {count} lần" in sent["body"]


def test_a_mailbox_idle_past_the_lock_threshold_within_7_days_is_listed_with_its_day(govmail, new_agency):
    unit = new_agency("Phòng Kiểm thử Thư hằng ngày", "th")
    today = datetime.now(UTC).date()  # the hosts count days in UTC
    person = unit.person("Đỗ Thị Sắp Khoá")
    as_of = today + timedelta(days=85)  # quangtri-2026 locks after 90 idle days
    report = ok_json(govmail("daily-mail", "--as-of", as_of.isoformat(), "--json"))
    due = (today + timedelta(days=90)).isoformat()
    assert {"address": person["address"], "action": "lock", "due": due, "idle_days": 85} in report["accounts"]
    assert f"- {person['address']}: khoá từ ngày {due} (không truy cập 85 ngày)" in report["body"]
    assert report["sent_to"] is None

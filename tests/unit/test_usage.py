"""The yearly usage report (issue 14, O5; QT §12, §13.1.b): a year of synthetic daily roll-ups
gives the expected figures per agency and unit, the twice-a-day rule on a calendar with
holidays, and the CSV / HTML renderings."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from govmail import policy, report, usage

QT = policy.get_profile("quangtri-2026")
YEAR = 2026
# The sample calendar: New Year, Tết (Mon-Fri 16-20/2), Hùng Kings (Mon 27/4), 30/4, 1/5, 1-2/9.
HOLIDAYS = usage.parse_holidays(
    ["2026-01-01", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20",
     "2026-04-27", "2026-04-30", "2026-05-01", "2026-09-01", "2026-09-02"]
)  # fmt: skip
NO_DATA = date(2026, 6, 15)  # a Monday on which the timer did not run
MORNING_ONLY = date(2026, 3, 10)  # Tuesday: sokhcn checked only in the morning
AFTERNOON_ONLY = date(2026, 3, 11)  # Wednesday: only in the afternoon
LAST = date(2026, 12, 31)
GIB = 1024**3


def box(address, kind, unit, status="active", activity=None, hours=(), sent=0, received=0, used=0):
    return {
        "address": address, "name": address.split("@")[0], "kind": kind, "status": status, "unit": unit,
        "agency": unit.rsplit(".", 1)[-1], "quota_bytes": (5 if kind == "agency" else 2) * GIB, "used_bytes": used,
        "activity": activity, "login_hours": sorted(hours), "logins": len(hours), "sent": sent, "received": received,
    }  # fmt: skip


def day_rollup(day: date) -> dict:
    working = day.weekday() < 5 and day not in HOLIDAYS
    if day == MORNING_ONLY:
        hours = [8]
    elif day == AFTERNOON_ONLY:
        hours = [14]
    elif working:
        hours = [7, 13]  # early morning, early afternoon
    else:
        hours = []
    return {
        "date": day.isoformat(),
        "timezone": "Asia/Ho_Chi_Minh",
        "units": {"sokhcn": "Sở Khoa học và Công nghệ", "vp.sokhcn": "Văn phòng Sở", "sotc": "Sở Tài chính"},
        "mailboxes": [
            box("sokhcn@qt.vn", "agency", "sokhcn", hours=hours, received=2 if working else 0, used=GIB),
            box(
                "nguyenvanlong@qt.vn", "personal", "vp.sokhcn", activity=f"{day}T09:00:00+00:00", sent=1, used=GIB // 2
            ),
            # locked, idle since 2026-06-01: past both thresholds of quangtri-2026 (90 and 180 days) at year end
            box("levanbinh@qt.vn", "personal", "sokhcn", status="locked", activity="2026-06-01T08:00:00+00:00"),
            # only mornings: every working day misses its afternoon check
            box("sotc@qt.vn", "agency", "sotc", hours=[8] if working else [], sent=1 if working else 0),
            # idle since 2026-09-01: past 90 days only
            box("tranthimai@qt.vn", "personal", "sotc", activity="2026-09-01T08:00:00+00:00"),
        ],
    }


@pytest.fixture(scope="module")
def rollups():
    day, days = date(YEAR, 1, 1), []
    while day <= LAST:
        if day != NO_DATA:
            days.append(day_rollup(day))
        day += timedelta(days=1)
    return days


@pytest.fixture(scope="module")
def year(rollups):
    return usage.year_report(rollups, YEAR, profile=QT, holidays=HOLIDAYS)


def by(rows, key, value):
    return next(row for row in rows if row[key] == value)


def test_working_days_of_2026_skip_weekends_and_the_holidays():
    # 2026: 261 weekdays; the 11 holidays above all fall on weekdays
    assert len(usage.working_days(YEAR, ())) == 261
    assert len(usage.working_days(YEAR, HOLIDAYS)) == 250


def test_mailboxes_are_counted_by_kind_and_status_per_agency_and_unit(year):
    sokhcn = by(year["agencies"], "agency", "sokhcn")
    assert sokhcn["mailboxes"] == {"personal": {"active": 1, "locked": 1}, "agency": {"active": 1}}
    assert sokhcn["name"] == "Sở Khoa học và Công nghệ"
    assert by(year["units"], "unit", "vp.sokhcn")["mailboxes"] == {"personal": {"active": 1}, "agency": {}}
    assert by(year["agencies"], "agency", "sotc")["total"] == 2


def test_quota_used_and_allocated_are_summed_per_agency(year):
    sokhcn = by(year["agencies"], "agency", "sokhcn")
    assert sokhcn["quota_used_bytes"] == GIB + GIB // 2
    assert sokhcn["quota_allocated_bytes"] == 5 * GIB + 2 * 2 * GIB


def test_inactive_mailboxes_are_counted_past_each_threshold_of_the_profile(year):
    assert year["thresholds"] == {"lock": 90, "delete_notice": 180}
    assert by(year["agencies"], "agency", "sokhcn")["inactive"] == {"lock": 1, "delete_notice": 1}
    assert by(year["agencies"], "agency", "sotc")["inactive"] == {"lock": 1, "delete_notice": 0}


def test_messages_are_summed_per_month(year):
    sent = by(year["units"], "unit", "vp.sokhcn")["sent"]
    assert sent == [31, 28, 31, 30, 31, 29, 31, 31, 30, 31, 30, 31]  # one a day; none on 15 June (no roll-up)
    received = by(year["agencies"], "agency", "sokhcn")["received"]
    assert received[1] == 2 * (20 - 5)  # February: 20 weekdays, 5 of them Tết
    assert sum(received) == 2 * 249


def test_an_agency_mailbox_checked_twice_every_working_day_but_two_misses_exactly_those(year):
    sokhcn = by(year["agency_mailboxes"], "address", "sokhcn@qt.vn")
    assert sokhcn["working_days"] == 249  # 250 working days, one without a roll-up
    assert (sokhcn["missed_morning"], sokhcn["missed_afternoon"], sokhcn["missed_days"]) == (1, 1, 2)
    assert sokhcn["missed"] == [
        {"date": "2026-03-10", "morning": False, "afternoon": True},
        {"date": "2026-03-11", "morning": True, "afternoon": False},
    ]
    assert year["working_days"] == 250 and year["working_days_without_data"] == 1


def test_an_agency_mailbox_checked_only_in_the_mornings_misses_every_afternoon(year):
    sotc = by(year["agency_mailboxes"], "address", "sotc@qt.vn")
    assert (sotc["missed_morning"], sotc["missed_afternoon"], sotc["missed_days"]) == (0, 249, 249)


def test_a_holiday_left_out_of_the_calendar_counts_as_a_missed_day(rollups):
    calendar = [day for day in HOLIDAYS if day != date(2026, 4, 30)]
    checks = usage.year_report(rollups, YEAR, profile=QT, holidays=calendar)["agency_mailboxes"]
    sokhcn = by(checks, "address", "sokhcn@qt.vn")
    assert sokhcn["missed_days"] == 3
    assert {"date": "2026-04-30", "morning": True, "afternoon": True} in sokhcn["missed"]


def test_one_agency_only(rollups):
    only = usage.year_report(rollups, YEAR, profile=QT, holidays=HOLIDAYS, agency="SOTC")
    assert [row["agency"] for row in only["agencies"]] == ["sotc"]
    assert [item["address"] for item in only["agency_mailboxes"]] == ["sotc@qt.vn"]


def test_an_unknown_agency_is_named_in_the_error(rollups):
    with pytest.raises(usage.UsageError, match="--agency soxyz"):
        usage.year_report(rollups, YEAR, profile=QT, agency="soxyz")


def test_the_afternoon_starts_at_the_configured_hour(rollups):
    late = usage.year_report(rollups, YEAR, profile=QT, holidays=HOLIDAYS, afternoon_from=14)
    sokhcn = by(late["agency_mailboxes"], "address", "sokhcn@qt.vn")
    assert sokhcn["missed_afternoon"] == 249 - 1  # 13:00 is still morning; 11 March's 14:00 counts


# --- the logs -------------------------------------------------------------------------------------

TZ = usage.zone("Asia/Ho_Chi_Minh")


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=UTC)


TAIL = "method=PLAIN, rip=172.29.44.1, lip=172.29.44.2"
SUBMITTED = "client=unknown[172.29.44.1], sasl_method=PLAIN, sasl_username="
LMTP = "relay=mail1[private/dovecot-lmtp], delay=0.1, delays=0/0/0/0.1"
LINES = [
    # Dovecot 2.4 and Postfix 3.10 as they reach the journal (usage.journal prefixes Postfix's program)
    (at(1, 5), f"imap-login: Logged in: user=<SoKHCN@qt.vn>, {TAIL}, mpid=812, TLS, session=<abc>"),
    (at(6, 30), f"pop3-login: Logged in: user=<sokhcn@qt.vn>, {TAIL}, mpid=813, TLS"),
    (at(6, 31), "imap-login: Login aborted: Logged out (auth failed, 1 attempts): user=<sokhcn@qt.vn>"),
    (at(6, 32), "managesieve-login: Logged in: user=<sokhcn@qt.vn>, method=PLAIN"),
    (at(2, 0), f"postfix/submission/smtpd[0]: 4dLxyz1Q2Bz9s: {SUBMITTED}nguyenvanlong@qt.vn"),
    (at(2, 0), "postfix/smtpd[0]: 4dLxyz1Q2Bz9t: client=unknown[172.29.44.1]"),
    (at(2, 1), f"postfix/lmtp[0]: 4dLxyz1Q2Bz9s: to=<sokhcn@qt.vn>, {LMTP}, dsn=2.0.0, status=sent (250 2.0.0 Saved)"),
    (at(2, 1), f"postfix/lmtp[0]: 4dLxyz1Q2Bz9u: to=<sokhcn@qt.vn>, {LMTP}, dsn=4.2.0, status=deferred (451 busy)"),
]  # fmt: skip


def test_logins_are_kept_as_local_hours_and_messages_are_counted_per_mailbox():
    found = usage.count_events(LINES, TZ)
    assert found["sokhcn@qt.vn"]["login_hours"] == {8, 13}  # 01:05 and 06:30 UTC in Vietnam (UTC+7)
    assert found["sokhcn@qt.vn"]["logins"] == 2  # a failed login and ManageSieve are not checks of the mailbox
    assert found["sokhcn@qt.vn"]["received"] == 1  # the deferred attempt is not a delivery
    assert found["nguyenvanlong@qt.vn"]["sent"] == 1  # the unauthenticated client sent nothing for a mailbox


def test_a_roll_up_is_written_and_read_back(tmp_path):
    path = usage.write(tmp_path, day_rollup(date(2026, 3, 10)))
    assert path == tmp_path / "2026" / "2026-03-10.json.gz"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert usage.read_year(tmp_path, 2026)[0]["mailboxes"][0]["login_hours"] == [8]
    assert usage.read_year(tmp_path, 2025) == []


def test_a_damaged_roll_up_is_named(tmp_path):
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "2026-01-02.json.gz").write_bytes(b"not gzip")
    with pytest.raises(usage.UsageError, match=re.escape("2026-01-02.json.gz")):
        usage.read_year(tmp_path, 2026)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"dir": "/x", "quota_personal": "2G", "quota_agency": "5G", "holidays": ["30/4"]}, "30/4"),
        ({"dir": "/x", "quota_personal": "2G", "quota_agency": "5G", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"dir": "/x", "quota_personal": "2G", "quota_agency": "5G", "afternoon_from": 25}, "afternoon_from 25"),
        ({"dir": "/x", "quota_personal": "2G"}, "quota_agency"),
    ],
    ids=["holiday", "timezone", "afternoon", "missing"],
)
def test_a_bad_configuration_is_named_in_one_line(tmp_path, data, named):
    path = tmp_path / "usage.json"
    path.write_text(json.dumps(data))
    with pytest.raises(usage.UsageError, match=re.escape(named)):
        usage.Config.load(path)


def test_the_default_holidays_are_dates_of_2026_and_the_lifecycle_reads_the_same_list():
    root = Path(__file__).resolve().parents[2]
    shared = yaml.safe_load((root / "roles/govmail/defaults/main.yml").read_text())["govmail_holidays"]
    assert {day.year for day in usage.parse_holidays(shared)} == {2026}
    assert "govmail_holidays" in (root / "roles/lifecycle/defaults/main.yml").read_text()
    assert len(usage.working_days(2026, usage.parse_holidays(shared))) == 250


# --- renderings -----------------------------------------------------------------------------------


def test_the_csv_starts_with_a_bom_and_keeps_vietnamese_names(year):
    text = report.to_csv(year)
    raw = text.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header = next(row for row in rows if row and row[0] == "Cơ quan")
    sokhcn = next(row for row in rows if row[:3] == ["sokhcn", "", "Sở Khoa học và Công nghệ"])
    assert sokhcn[header.index("Thư nhận T2")] == "30"
    assert sokhcn[header.index("Không truy cập từ 90 ngày")] == "1"
    check = next(row for row in rows if row and row[0] == "sokhcn@qt.vn")
    assert check[2:6] == ["249", "1", "1", "2"] and check[6] == "2026-03-10 2026-03-11"


def test_the_html_has_its_charts_inline_and_fetches_nothing(year):
    page = report.to_html(year)
    assert page.count("<svg") == 3
    assert "Thư gửi và nhận theo tháng năm 2026" in page and "Số hộp thư theo cơ quan" in page
    # pygal's inline configuration script stays; nothing refers to a script, style or image elsewhere
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|(?:xlink:)?href=\"(?:https?:)?//", page)
    assert "Sở Khoa học và Công nghệ" in page


def test_an_unknown_format_is_named():
    with pytest.raises(report.ReportError, match="--format 'pdf'"):
        report.check_format("pdf")


def test_the_gzip_roll_up_of_a_day_is_small(tmp_path):
    path = usage.write(tmp_path, day_rollup(date(2026, 3, 12)))
    assert len(gzip.decompress(path.read_bytes())) > path.stat().st_size


def test_the_page_lists_at_most_15_missed_days_and_the_csv_all(year):
    page = report.to_html(year)
    assert "(và 234 ngày khác)" in page  # sotc: 249 days without an afternoon check
    rows = list(csv.reader(io.StringIO(report.to_csv(year).lstrip("\ufeff"))))
    assert len(next(row for row in rows if row and row[0] == "sotc@qt.vn")[6].split()) == 249


def test_months_after_the_latest_roll_up_are_not_drawn_as_zero(rollups):
    november = usage.year_report(
        [item for item in rollups if item["date"] < "2026-12-01"], YEAR, profile=QT, holidays=HOLIDAYS
    )
    monthly = report.charts(november)["monthly"]
    assert november["as_of"] == "2026-11-30"
    # pygal draws one dot per value: 11 months for each of the two totals' lines, none for December
    assert monthly.count('class="dot ') == 2 * 11


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--year", "2026", "--format", "pdf"], "--format 'pdf' is not one of csv, html, json"),
     (["--year", "26"], "--year 26 is not a year: write it like 2026")],
    ids=["format", "year"],
)  # fmt: skip
def test_the_cli_refuses_bad_arguments_in_one_line_before_asking_any_host(args, named):
    from typer.testing import CliRunner

    from govmail.cli import app

    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 1
    assert result.output.strip() == f"govmail: {named}"

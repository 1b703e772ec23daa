"""The usage roll-up of the yearly report (O5; QT §12): real IMAP and POP3 logins and a message
sent through submission appear in the roll-up the timer's program (govmail-usage) writes on the
directory host, and `govmail report` reads them back."""

from __future__ import annotations

import contextlib
import csv
import imaplib
import io
import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import clients
import pytest
from conftest import imap_fetch, make_message, ok_json, one_line_error

PROGRAM = "/opt/govmail/venv/bin/govmail-usage"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # operations_usage_timezone


def roll_up(mail_host) -> dict:
    """Run the timer's program for the day so far; its roll-up, by address."""
    result = mail_host.run(f"{PROGRAM} roll-up --day today --json")
    assert result.rc == 0, result.stderr
    document = json.loads(result.stdout)
    return {"document": document, **{box["address"]: box for box in document["mailboxes"]}}


def imap_session(address, hostname, port, tls, account):
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    client.login(account["address"], account["password"])
    return client


@pytest.fixture(scope="module")
def used(mail_host, address, hostname, port, tls, alice, agency):
    """Roll-ups before and after: the agency mailbox logs in over IMAP and POP3, alice sends it one
    message over submission and the agency reads it over IMAP; the hours (site time zone) around."""
    before = roll_up(mail_host)
    hours = {datetime.now(ZONE).hour}
    imap_session(address, hostname, port, tls, agency).logout()
    pop = clients.POP3_SSL(address, hostname, port("pop3s"), tls)
    pop.user(agency["address"])
    pop.pass_(agency["password"])
    pop.quit()
    message = make_message(alice["address"], agency["address"], "Báo cáo sử dụng", "Kiểm tra số liệu.")
    with clients.SMTP(address, hostname, port("submission")) as submission:
        submission.starttls(context=tls)
        submission.login(alice["address"], alice["password"])
        submission.send_message(message)
    reader = imap_session(address, hostname, port, tls, agency)
    try:
        clients.wait_for(lambda: imap_fetch(reader, message["Message-ID"]), what="the message in the agency mailbox")
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            reader.logout()
    hours.add(datetime.now(ZONE).hour)
    address_of = agency["address"]
    after = clients.wait_for(
        lambda: (state := roll_up(mail_host))[address_of]["received"] > before[address_of]["received"] and state,
        what="the delivery in the journal",
    )
    return before, after, hours


def test_the_roll_up_is_written_beneath_the_usage_directory(used, mail_host):
    _, after, _ = used
    path = after["document"]["path"]
    assert path.startswith("/var/lib/govmail/usage/") and path.endswith(f"{after['document']['date']}.json.gz")
    written = mail_host.file(path)
    assert written.user == "root" and written.mode == 0o640


def test_imap_and_pop3_logins_of_the_agency_mailbox_are_counted_with_their_hour(used, agency):
    before, after, hours = used
    was, now = before[agency["address"]], after[agency["address"]]
    assert now["logins"] - was["logins"] == 3  # IMAP, POP3, and the IMAP session that read the message
    assert hours & set(now["login_hours"])


def test_the_message_sent_is_counted_for_its_sender_and_its_recipient(used, alice, agency):
    before, after, _ = used
    assert after[alice["address"]]["sent"] - before[alice["address"]]["sent"] == 1
    assert after[agency["address"]]["received"] - before[agency["address"]]["received"] == 1


def test_mailboxes_carry_their_agency_kind_and_quota(used, agency, alice):
    _, after, _ = used
    assert after[agency["address"]]["kind"] == "agency"
    assert after[agency["address"]]["agency"] == agency["address"].split("@")[0]
    assert after[alice["address"]]["kind"] == "personal"
    assert after[alice["address"]]["quota_bytes"] >= 2 * 1024**3  # M6
    assert after[agency["address"]]["used_bytes"] > 0  # it holds the message at least


def test_the_report_reads_the_roll_up_back(used, govmail, agency):
    _, after, _ = used
    year = after["document"]["date"][:4]
    month = int(after["document"]["date"][5:7])
    document = ok_json(govmail("report", "--year", year, "--json"))
    row = next(row for row in document["agencies"] if row["agency"] == after[agency["address"]]["agency"])
    assert row["received"][month - 1] >= 1
    assert document["days_with_data"] >= 1


def test_the_csv_report_opens_with_vietnamese_intact(used, govmail):
    _, after, _ = used
    result = govmail("report", "--year", after["document"]["date"][:4], "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(result.stdout.lstrip("\ufeff"))))
    assert rows[0][0].startswith("Báo cáo sử dụng hệ thống thư điện tử công vụ năm")


def test_an_unknown_agency_is_refused_in_one_line(used, govmail):
    _, after, _ = used
    result = govmail("report", "--year", after["document"]["date"][:4], "--agency", "khongco", "--json")
    line = one_line_error(result)
    assert line.startswith("govmail: usage report on ")
    assert line.endswith(
        f"failed: --agency khongco: no mailbox of that agency in the roll-ups of {after['document']['date'][:4]}"
    )


def test_the_timers_service_writes_the_roll_up_of_the_day_before(mail_host):
    assert mail_host.service("govmail-usage-rollup.timer").is_enabled
    result = mail_host.run("systemctl start govmail-usage-rollup.service")
    assert result.rc == 0, result.stderr
    assert mail_host.run("systemctl show -p Result --value govmail-usage-rollup.service").stdout.strip() == "success"
    yesterday = (datetime.now(ZONE) - timedelta(days=1)).date()
    assert mail_host.file(f"/var/lib/govmail/usage/{yesterday.year}/{yesterday}.json.gz").exists


def test_a_backup_holds_the_roll_ups(used, govmail, mail_host):
    _, after, _ = used
    archive = ok_json(govmail("backup", "run", "--json"))["archive"]
    listing = mail_host.run(
        f"{PROGRAM.replace('govmail-usage', 'python')} -c "
        f"\"from govmail import backup; print(backup.restic(backup.Config.load(), ['ls', '{archive}']).stdout)\""
    )
    assert listing.rc == 0, listing.stderr
    assert after["document"]["path"] in listing.stdout.splitlines()

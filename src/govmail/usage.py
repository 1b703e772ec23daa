"""Yearly usage report per agency (REQUIREMENTS O5; QT §13.1.b and the twice-a-day rule of QT §12).

Counting a year needs data kept longer than the logs (O2 keeps them 180 days by default), so the
directory host keeps a **daily roll-up**: ``govmail-usage roll-up`` (the systemd timer
``govmail-usage-rollup.timer`` of roles/operations, shortly after midnight, for the day before)
reads what the services already record and writes one small gzip'd JSON file per day,
``<dir>/<YYYY>/<YYYY-MM-DD>.json.gz`` (``govmail_usage_dir``, taken by every backup):

- the directory: every mailbox's kind, status, agency and unit, quota (``govmailQuota`` or the
  kind's default), and the moment its inactivity counts from (:meth:`govmail.lifecycle.Mailbox.activity`,
  the lifecycle's own rule);
- Dovecot's quota (``doveadm quota get``, through :func:`govmail.probe.quota`): bytes used;
- the journal of that day (Dovecot and Postfix): IMAP and POP3 logins (``imap-login: Logged in:
  user=<A>``, ``pop3-login: ...``) as the **hours** of the day (the site's time zone) in which the
  mailbox logged in; messages **sent** (Postfix's ``client=..., sasl_username=A``: one per message
  submitted on 587/465, the webmail's included) and **received** (``postfix/lmtp ... to=<A>, ...
  status=sent``: one per delivery into the mailbox).

One roll-up (a day)::

    {"date": "2026-11-30", "timezone": "Asia/Ho_Chi_Minh", "written": ISO-8601,
     "units": {"sokhcn": "Sở Khoa học và Công nghệ", "vp.sokhcn": "Văn phòng"},
     "mailboxes": [{"address": A, "name": TEXT, "kind": "personal"|"agency",
                    "status": "active"|"locked"|"terminated"|..., "unit": "vp.sokhcn", "agency": "sokhcn",
                    "quota_bytes": N, "used_bytes": N|null, "activity": ISO-8601|null,
                    "login_hours": [8, 13], "logins": N, "sent": N, "received": N}]}

``govmail-usage report --year Y [--agency ABBR]`` (what ``govmail report`` runs on the directory
host) reads a year of roll-ups and returns :func:`year_report`'s document; ``govmail report``
renders it as CSV (UTF-8 with BOM, so spreadsheets keep Vietnamese letters) or HTML with charts.

Working days (QT §12: an agency mailbox is checked at least twice per working day, "đầu buổi
sáng, đầu buổi chiều"): Monday to Friday except the public holidays ``govmail_holidays`` (the
inventory; the default is the official 2026 list, roles/govmail/defaults/main.yml). A morning is
any login before ``afternoon_from`` o'clock, an afternoon any login from then on, in the site's
time zone. A working day with no roll-up (the timer did not run) is counted apart
(``days_without_data``), never as a missed check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import hostconfig, policy
from .errors import GovmailError
from .sizes import parse_size

CONFIG_FILE = "/etc/govmail/usage.json"
LIFECYCLE_CONFIG = "/etc/govmail/lifecycle.json"
KINDS = ("personal", "agency")

# What the services log (Dovecot 2.4, Postfix 3.10), one match per event.
# Dovecot 2.4 says "Logged in:" (2.3 said "Login:")
LOGIN = re.compile(r"\b(?:imap|pop3)-login: (?:Logged in|Login): user=<([^>]+)>")
SENT = re.compile(r"\bpostfix/[\w/-]*smtpd\[\d+\]: [0-9A-Za-z]+: client=.*?\bsasl_username=([^\s,]+)")
RECEIVED = re.compile(r"\bpostfix/lmtp\[\d+\]: [0-9A-Za-z]+: to=<([^>]+)>.*?\bstatus=sent\b")

ATTRIBUTES = [
    "mail", "cn", "govmailKind", "govmailStatus", "govmailStatusChanged", "govmailQuota",
    "authTimestamp", "pwdLastSuccess", "createTimestamp",
]  # fmt: skip


class UsageError(GovmailError):
    """The usage roll-up or report cannot be made: configuration, arguments or data unreadable."""


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """``/etc/govmail/usage.json`` (roles/operations)::

    {"dir": "/var/lib/govmail/usage", "timezone": "Asia/Ho_Chi_Minh", "afternoon_from": 12,
     "quota_personal": "2G", "quota_agency": "5G", "holidays": ["2026-01-01", ...]}

    The directory, the domain and the policy profile come from the lifecycle's configuration
    (``/etc/govmail/lifecycle.json``, the same host).
    """

    dir: str
    timezone: str = "Asia/Ho_Chi_Minh"
    afternoon_from: int = 12
    quota_default: Mapping[str, int] | None = None
    holidays: tuple[date, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> Config:
        data = hostconfig.read(path, UsageError)
        try:
            config = cls(
                dir=str(data["dir"]),
                timezone=str(data.get("timezone", "Asia/Ho_Chi_Minh")),
                afternoon_from=int(data.get("afternoon_from", 12)),
                quota_default={kind: parse_size(data[f"quota_{kind}"]) for kind in KINDS},
                holidays=parse_holidays(data.get("holidays") or (), where=str(path)),
            )
        except KeyError as exc:
            raise UsageError(f"configuration {path} lacks {exc.args[0]!r}: re-run playbooks/site.yml") from None
        except (TypeError, ValueError, GovmailError) as exc:
            raise UsageError(f"configuration {path}: {exc}") from None
        zone(config.timezone)
        if not 0 < config.afternoon_from < 24:
            raise UsageError(f"configuration {path}: afternoon_from {config.afternoon_from} is not an hour (1-23)")
        return config


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"time zone {name!r} is unknown: give an IANA name such as Asia/Ho_Chi_Minh") from None


def parse_holidays(values: Iterable[str], where: str = "holidays") -> tuple[date, ...]:
    """``["2026-01-01", ...]`` -> dates; :class:`UsageError` naming the first that is not YYYY-MM-DD."""
    days = []
    for value in values:
        try:
            days.append(date.fromisoformat(str(value)))
        except ValueError:
            raise UsageError(f"{where}: holiday {value!r} is not a date: write it YYYY-MM-DD") from None
    return tuple(sorted(set(days)))


# --- reading what the services log ----------------------------------------------------------------


def count_events(entries: Iterable[tuple[datetime, str]], tz: ZoneInfo) -> dict[str, dict[str, Any]]:
    """Per address (lower case): ``{"login_hours": set of hours, "logins": N, "sent": N, "received": N}``
    from ``(moment, message)`` pairs of the journal; hours in ``tz``."""
    found: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"login_hours": set(), "logins": 0, "sent": 0, "received": 0}
    )
    for moment, message in entries:
        if match := LOGIN.search(message):
            item = found[match.group(1).lower()]
            item["logins"] += 1
            item["login_hours"].add(moment.astimezone(tz).hour)
        elif match := SENT.search(message):
            found[match.group(1).lower()]["sent"] += 1
        elif match := RECEIVED.search(message):
            found[match.group(1).lower()]["received"] += 1
    return found


def journal(day: date, tz: ZoneInfo) -> list[tuple[datetime, str]]:
    """Dovecot's and Postfix's journal entries of ``day`` (midnight to midnight in ``tz``)."""
    start = datetime.combine(day, time(0), tz)
    end = start + timedelta(days=1)
    completed = subprocess.run(
        ["journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE,SYSLOG_IDENTIFIER",
         f"--since=@{int(start.timestamp())}", f"--until=@{int(end.timestamp())}",
         "-u", "dovecot", "-u", "postfix*"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    entries = []
    for line in completed.stdout.splitlines():
        try:
            record = json.loads(line)
            moment = datetime.fromtimestamp(int(record["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
        except (ValueError, KeyError, TypeError):
            continue
        message = record.get("MESSAGE")
        if isinstance(message, str):
            # Postfix's lines carry their program in SYSLOG_IDENTIFIER (postfix/lmtp, postfix/submission/smtpd)
            ident = record.get("SYSLOG_IDENTIFIER") or ""
            entries.append((moment, f"{ident}[0]: {message}" if ident.startswith("postfix/") else message))
    return entries


# --- the roll-up --------------------------------------------------------------------------------


def roll_up(day: date, config: Config, lifecycle_config: str = LIFECYCLE_CONFIG) -> dict[str, Any]:
    """Make the roll-up of ``day`` on this host (directory, quota, journal); not written."""
    from . import lifecycle, probe  # the host's modules (ldap3): not needed to read a report

    try:
        site = lifecycle.Config.load(lifecycle_config)
        host = lifecycle.Host(site)
        directory = host.directory
        try:
            entries = directory.search(host.agencies_dn, "(objectClass=govmailMailbox)", ATTRIBUTES)
            ous = directory.search(host.agencies_dn, "(objectClass=organizationalUnit)", ["ou", "description"])
        finally:
            directory.close()
    except GovmailError as exc:
        raise UsageError(f"the directory cannot be read: {exc}") from None
    units = {
        directory.agency_of(entry.dn): entry.first("description") or ""
        for entry in ous
        if directory.agency_of(entry.dn)
    }
    tz = zone(config.timezone)
    events = count_events(journal(day, tz), tz)
    used = {
        item["address"].lower(): item["used_kib"] * 1024
        for item in probe.quota(site.vmail_dir, site.domain)["mailboxes"]
    }
    mailboxes = []
    for entry in entries:
        box = lifecycle.Mailbox.from_attributes(entry.dn, entry.attributes)
        if not box.address:
            continue
        unit = directory.agency_of(entry.dn) or ""
        quota = entry.first("govmailQuota")
        default_quota = (config.quota_default or {}).get(box.kind, 0)
        seen = events.get(box.address, {})
        activity = box.activity()
        mailboxes.append(
            {
                "address": box.address,
                "name": entry.first("cn") or "",
                "kind": box.kind,
                "status": box.status,
                "unit": unit,
                "agency": unit.rsplit(".", 1)[-1],
                "quota_bytes": int(quota) if quota and quota.isdigit() else default_quota,
                "used_bytes": used.get(box.address),
                "activity": activity.isoformat() if activity else None,
                "login_hours": sorted(seen.get("login_hours", ())),
                "logins": seen.get("logins", 0),
                "sent": seen.get("sent", 0),
                "received": seen.get("received", 0),
            }
        )
    return {
        "date": day.isoformat(),
        "timezone": config.timezone,
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "units": units,
        "mailboxes": sorted(mailboxes, key=lambda item: item["address"]),
    }


def path_of(root: str | Path, day: date) -> Path:
    return Path(root) / f"{day.year:04d}" / f"{day.isoformat()}.json.gz"


def write(root: str | Path, rollup: Mapping[str, Any]) -> Path:
    """Write one roll-up (root only, 0640), replacing that day's if there is one; its path."""
    target = path_of(root, date.fromisoformat(rollup["date"]))
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    temporary = target.with_suffix(".tmp")
    with gzip.open(temporary, "wt", encoding="utf-8") as handle:
        json.dump(rollup, handle, ensure_ascii=False, separators=(",", ":"))
    os.chmod(temporary, 0o640)
    os.replace(temporary, target)
    return target


def read_year(root: str | Path, year: int) -> list[dict[str, Any]]:
    """Every roll-up of ``year``, oldest first; :class:`UsageError` naming a file that cannot be read."""
    rollups = []
    for path in sorted((Path(root) / f"{year:04d}").glob(f"{year:04d}-??-??.json.gz")):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                rollups.append(json.load(handle))
        except (OSError, ValueError, EOFError) as exc:
            raise UsageError(f"roll-up {path} cannot be read: {exc}") from None
    return rollups


# --- the year -----------------------------------------------------------------------------------


def working_days(year: int, holidays: Iterable[date]) -> list[date]:
    """Monday to Friday of ``year`` that are not in ``holidays``."""
    off = set(holidays)
    day, end, days = date(year, 1, 1), date(year, 12, 31), []
    while day <= end:
        if day.weekday() < 5 and day not in off:
            days.append(day)
        day += timedelta(days=1)
    return days


def _blank_unit(agency: str, unit: str, name: str) -> dict[str, Any]:
    return {
        "agency": agency, "unit": unit, "name": name,
        "mailboxes": {kind: {} for kind in KINDS}, "total": 0,
        "quota_used_bytes": 0, "quota_allocated_bytes": 0, "inactive": {},
        "sent": [0] * 12, "received": [0] * 12,
    }  # fmt: skip


def _add(into: dict[str, Any], unit: Mapping[str, Any]) -> None:
    for kind in KINDS:
        for status, count in unit["mailboxes"][kind].items():
            into["mailboxes"][kind][status] = into["mailboxes"][kind].get(status, 0) + count
    into["total"] += unit["total"]
    for key in ("quota_used_bytes", "quota_allocated_bytes"):
        into[key] += unit[key]
    for key, count in unit["inactive"].items():
        into["inactive"][key] = into["inactive"].get(key, 0) + count
    for key in ("sent", "received"):
        into[key] = [a + b for a, b in zip(into[key], unit[key], strict=True)]


def year_report(
    rollups: Sequence[Mapping[str, Any]],
    year: int,
    *,
    profile: policy.PolicyProfile,
    holidays: Iterable[date] = (),
    afternoon_from: int = 12,
    agency: str | None = None,
) -> dict[str, Any]:
    """The yearly report from that year's roll-ups (oldest first).

    The snapshot figures (mailboxes by kind and status, quota used and allocated, mailboxes
    inactive past the profile's lock and deletion-notice thresholds) are those of the **latest**
    roll-up of the year; messages are summed per month over every roll-up; the twice-a-day rule
    is judged for each agency mailbox on every working day that has a roll-up listing it active.
    Returns::

        {"year": Y, "agency": ABBR|null, "as_of": DATE|null, "profile": NAME,
         "thresholds": {"lock": DAYS, "delete_notice": DAYS}, "afternoon_from": H,
         "holidays": [DATE, ...], "working_days": N, "days_with_data": N, "working_days_without_data": N,
         "agencies": [UNIT, ...], "units": [UNIT, ...],
         "agency_mailboxes": [{"address", "agency", "unit", "working_days": N, "missed_morning": N,
                               "missed_afternoon": N, "missed_days": N,
                               "missed": [{"date": DATE, "morning": bool, "afternoon": bool}, ...]}, ...]}

    where UNIT is ``{"agency", "unit", "name", "mailboxes": {"personal": {STATUS: N}, "agency": {...}},
    "total": N, "quota_used_bytes": N, "quota_allocated_bytes": N,
    "inactive": {"lock": N, "delete_notice": N}, "sent": [12 months], "received": [12 months]}``
    (an agency's row sums its units; ``unit`` equals ``agency`` there).
    Raises :class:`UsageError` when ``agency`` appears in none of the roll-ups.
    """
    wanted = agency.lower() if agency else None
    selected = [item for item in rollups if str(item.get("date", "")).startswith(f"{year:04d}-")]
    holidays = sorted(set(holidays))
    workdays = working_days(year, holidays)
    thresholds = {"lock": profile.inactivity_lock_days, "delete_notice": profile.inactivity_delete_notice_days}
    units: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    seen_agencies: set[str] = set()
    by_date: dict[date, Mapping[str, Any]] = {}
    for rollup in selected:
        day = date.fromisoformat(rollup["date"])
        by_date[day] = rollup
        names.update(rollup.get("units") or {})
        for box in rollup["mailboxes"]:
            seen_agencies.add(box["agency"])
            if wanted and box["agency"] != wanted:
                continue
            unit = units.setdefault(box["unit"], _blank_unit(box["agency"], box["unit"], ""))
            unit["sent"][day.month - 1] += box.get("sent", 0)
            unit["received"][day.month - 1] += box.get("received", 0)
    if wanted and wanted not in seen_agencies and selected:
        raise UsageError(f"--agency {agency}: no mailbox of that agency in the roll-ups of {year}")
    as_of = max(by_date) if by_date else None
    if as_of:
        end_of_day = datetime.combine(as_of, time(23, 59, 59), UTC)
        for box in by_date[as_of]["mailboxes"]:
            if wanted and box["agency"] != wanted:
                continue
            unit = units.setdefault(box["unit"], _blank_unit(box["agency"], box["unit"], ""))
            statuses = unit["mailboxes"][box["kind"] if box["kind"] in KINDS else "personal"]
            statuses[box["status"]] = statuses.get(box["status"], 0) + 1
            unit["total"] += 1
            unit["quota_used_bytes"] += box.get("used_bytes") or 0
            unit["quota_allocated_bytes"] += box.get("quota_bytes") or 0
            if box["kind"] == "personal" and box.get("activity"):
                idle = (end_of_day - datetime.fromisoformat(box["activity"])).days
                for key, days in thresholds.items():
                    if idle >= days:
                        unit["inactive"][key] = unit["inactive"].get(key, 0) + 1
    for key, unit in units.items():
        unit["name"] = names.get(key, "")
        for name in thresholds:
            unit["inactive"].setdefault(name, 0)
    agencies: dict[str, dict[str, Any]] = {}
    for unit in units.values():
        _add(agencies.setdefault(unit["agency"], _blank_unit(unit["agency"], unit["agency"], "")), unit)
    for key, row in agencies.items():
        row["name"] = names.get(key, "")
    # QT §12: twice per working day, morning and afternoon, for every agency mailbox
    checks: dict[str, dict[str, Any]] = {}
    without_data = 0
    for day in workdays:
        rollup = by_date.get(day)
        if rollup is None:
            if (not by_date) or day < min(by_date) or day > max(by_date):
                continue
            without_data += 1
            continue
        for box in rollup["mailboxes"]:
            if box["kind"] != "agency" or box["status"] != "active" or (wanted and box["agency"] != wanted):
                continue
            item = checks.setdefault(
                box["address"],
                {"address": box["address"], "agency": box["agency"], "unit": box["unit"], "working_days": 0,
                 "missed_morning": 0, "missed_afternoon": 0, "missed_days": 0, "missed": []},
            )  # fmt: skip
            item["working_days"] += 1
            hours = box.get("login_hours") or []
            morning = any(hour < afternoon_from for hour in hours)
            afternoon = any(hour >= afternoon_from for hour in hours)
            item["missed_morning"] += not morning
            item["missed_afternoon"] += not afternoon
            if not (morning and afternoon):
                item["missed_days"] += 1
                item["missed"].append({"date": day.isoformat(), "morning": not morning, "afternoon": not afternoon})
    return {
        "year": year,
        "agency": wanted,
        "as_of": as_of.isoformat() if as_of else None,
        "profile": profile.name,
        "thresholds": thresholds,
        "afternoon_from": afternoon_from,
        "holidays": [day.isoformat() for day in holidays if day.year == year],
        "working_days": len(workdays),
        "days_with_data": len(by_date),
        "working_days_without_data": without_data,
        "agencies": [agencies[key] for key in sorted(agencies)],
        # each agency's own level first, then its units
        "units": sorted(units.values(), key=lambda row: (row["agency"], row["unit"] != row["agency"], row["unit"])),
        "agency_mailboxes": [checks[key] for key in sorted(checks)],
    }


# --- the host program -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-usage", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    parser.add_argument("--lifecycle-config", default=LIFECYCLE_CONFIG, help="the lifecycle's configuration")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("roll-up", help="write the roll-up of one day (default: yesterday)")
    up.add_argument("--day", help="YYYY-MM-DD, or 'today' (the day so far)")
    up.add_argument("--json", action="store_true", help="print the roll-up written")
    report = commands.add_parser("report", help="the yearly report (JSON) from the roll-ups")
    report.add_argument("--year", type=int, required=True)
    report.add_argument("--agency")
    report.add_argument("--json", action="store_true", help="JSON (the only output)")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
        tz = zone(config.timezone)
        today = datetime.now(tz).date()
        if args.command == "roll-up":
            if args.day in (None, "yesterday"):
                day = today - timedelta(days=1)
            elif args.day == "today":
                day = today
            else:
                try:
                    day = date.fromisoformat(args.day)
                except ValueError:
                    raise UsageError(f"--day {args.day!r} is not a date: write it YYYY-MM-DD or 'today'") from None
            rollup = roll_up(day, config, args.lifecycle_config)
            path = write(config.dir, rollup)
            if args.json:
                print(json.dumps({**rollup, "path": str(path)}, ensure_ascii=False, indent=2))
            else:
                print(f"{path}: {len(rollup['mailboxes'])} mailboxes")
            return 0
        from . import lifecycle

        if not 2000 <= args.year <= 2999:
            raise UsageError(f"--year {args.year} is not a year: write it like 2026")
        profile = lifecycle.Config.load(args.lifecycle_config).profile
        document = year_report(
            read_year(config.dir, args.year), args.year, profile=profile, holidays=config.holidays,
            afternoon_from=config.afternoon_from, agency=args.agency,
        )  # fmt: skip
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    except GovmailError as exc:
        print(f"govmail-usage: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

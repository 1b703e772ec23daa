"""The operators' daily mail (issue 14; REQUIREMENTS O3): one short report a day, Vietnamese by default.

Runs **on the directory host** (which also carries Postfix and the mail store: roles/lifecycle
checks it), as ``govmail-daily-mail`` from the systemd timer ``govmail-daily-mail.timer``
(roles/operations) or from ``govmail daily-mail`` on the controller. It reuses ``govmail check``
for the host it runs on (:func:`govmail.probe.probe` judged by :func:`govmail.health.judge`
with the inventory's thresholds), the lifecycle's own plan for the accounts due in the next
days (:func:`govmail.lifecycle.run` with ``dry_run``), and the journal of Dovecot and Postfix
for failed logins. The mail goes to the operators' address through the host's ``sendmail``.

Configuration: ``/etc/govmail/daily-mail.json`` (written by roles/operations)::

    {"host": "mail1", "groups": ["ldap", "mx", "mailstore"], "domain": "quangtri.gov.vn",
     "hostname": "mail.quangtri.gov.vn", "ca_file": "/etc/ssl/govmail/ca.crt", "vmail_dir": "/var/vmail",
     "thresholds": {"certificate_warning_days": 30, ...},   # govmail.health.THRESHOLDS without the prefix
     "operators": "vanhanh@quangtri.gov.vn", "sender": "postmaster@quangtri.gov.vn",
     "language": "vi", "lookahead_days": 7, "failed_login_hours": 24, "failed_login_top": 5}

Report (``--json``)::

    {"date": "2026-11-29", "status": "ok"|"warning"|"critical", "subject": TEXT, "body": TEXT,
     "sent_to": ADDRESS|null, "message_id": ID|null, "checks": [...],             # the rows of govmail check
     "accounts": [{"address", "action": "lock"|"notify"|"delete", "due": DATE}], "accounts_error": TEXT|null,
     "failed_logins": {"total": N, "by_address": [[ADDR, N], ...], "by_client": [[IP, N], ...]},
     "backups": [{"host", "status", "detail", ...}] | null}   # the `backup age` row of this host, or null

Backups: when this host is a backup client (roles/backup installed ``govmail-backup`` and the
configuration carries ``backup_warning_hours`` / ``backup_critical_hours``, the inventory's
``govmail_check_backup_*``), section 4 gives the age of its newest archive as ``govmail check``
judges it (:func:`govmail.health.judge_backup`), and a stale or missing backup is also listed
among the failures.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from . import health, hostconfig, lifecycle, probe
from .errors import GovmailError

CONFIG_FILE = "/etc/govmail/daily-mail.json"
LIFECYCLE_CONFIG = "/etc/govmail/lifecycle.json"
LANGUAGES = ("vi", "en")

# Failed logins as Dovecot 2.4 and Postfix log them (the address and the client's IP).
DOVECOT_FAILED = re.compile(r"-login: .*\bauth failed\b.*?user=<([^>]*)>.*?\brip=([0-9A-Fa-f:.]+)")
POSTFIX_FAILED = re.compile(r"\[([0-9A-Fa-f:.]+)\]: SASL \S+ authentication failed(?:.*?sasl_username=(\S+))?")


class DailyMailError(GovmailError):
    """The daily mail's configuration is missing or wrong, or sendmail refused the mail."""


TEXTS = {
    "vi": {
        "status": {"ok": "BÌNH THƯỜNG", "warning": "CẢNH BÁO", "critical": "NGHIÊM TRỌNG"},
        "subject": "[govmail] Báo cáo vận hành {hostname} ngày {day}: {status}",
        "intro": "Báo cáo tự động hằng ngày của hệ thống thư điện tử công vụ, máy chủ {host} ({hostname}).",
        "failed": "1. Sự cố và cảnh báo",
        "none_failed": "Không có: mọi kiểm tra đều đạt ({count} mục).",
        "queue": "2. Hàng đợi thư và dung lượng lưu trữ",
        "certs": "3. Chứng chỉ sắp hết hạn (trong {days} ngày)",
        "no_certs": "Không có. Chứng chỉ gần hết hạn nhất còn {least} ngày.",
        "backups": "4. Sao lưu",
        "no_backups": "Máy này không được sao lưu (không có máy sao lưu trong inventory).",
        "accounts": "5. Tài khoản sẽ bị khoá, thông báo hoặc xoá trong {days} ngày tới ({profile})",
        "no_accounts": "Không có.",
        "accounts_error": "Không đọc được danh bạ: {error}",
        "actions": {"lock": "khoá", "notify": "gửi thông báo xoá", "delete": "xoá", "clear-notice": "huỷ thông báo"},
        "account_line": "- {address}: {action} từ ngày {due} (không truy cập {idle} ngày)",
        "logins": "6. Đăng nhập thất bại trong {hours} giờ qua: {total} lần",
        "by_address": "Theo tài khoản:",
        "by_client": "Theo địa chỉ máy trạm:",
        "times": "{count} lần",
        "footer": "Chi tiết: chạy `govmail check` trên máy điều khiển. Thư này được gửi tự động, không trả lời.",
    },
    "en": {
        "status": {"ok": "OK", "warning": "WARNING", "critical": "CRITICAL"},
        "subject": "[govmail] Operations report {hostname} {day}: {status}",
        "intro": "Daily report of the official-duty mail system, host {host} ({hostname}).",
        "failed": "1. Failures and warnings",
        "none_failed": "None: every check passed ({count} checks).",
        "queue": "2. Mail queue and storage",
        "certs": "3. Certificates expiring within {days} days",
        "no_certs": "None. The nearest expiry is in {least} days.",
        "backups": "4. Backups",
        "no_backups": "This host is not backed up (the inventory has no backup host).",
        "accounts": "5. Accounts to be locked, noticed or deleted in the next {days} days ({profile})",
        "no_accounts": "None.",
        "accounts_error": "The directory could not be read: {error}",
        "actions": {"lock": "lock", "notify": "deletion notice", "delete": "delete", "clear-notice": "clear notice"},
        "account_line": "- {address}: {action} on {due} (idle {idle} days)",
        "logins": "6. Failed logins in the last {hours} hours: {total}",
        "by_address": "By account:",
        "by_client": "By client address:",
        "times": "{count} times",
        "footer": "Details: run `govmail check` on the controller. This mail is automatic; do not reply.",
    },
}


@dataclass(frozen=True)
class Config:
    """``/etc/govmail/daily-mail.json`` (module docstring)."""

    host: str
    groups: tuple[str, ...]
    domain: str
    hostname: str
    ca_file: str
    vmail_dir: str
    thresholds: dict[str, int]
    operators: str
    sender: str
    language: str = "vi"
    lookahead_days: int = 7
    failed_login_hours: int = 24
    failed_login_top: int = 5

    @classmethod
    def load(cls, path: str | Path) -> Config:
        data = hostconfig.read(path, DailyMailError)
        try:
            config = cls(
                host=str(data["host"]),
                groups=tuple(data["groups"]),
                domain=str(data["domain"]),
                hostname=str(data["hostname"]),
                ca_file=str(data["ca_file"]),
                vmail_dir=str(data["vmail_dir"]),
                thresholds={
                    key.removeprefix("govmail_check_"): int(value) for key, value in data["thresholds"].items()
                },
                operators=str(data["operators"]),
                sender=str(data.get("sender") or f"postmaster@{data['domain']}"),
                language=str(data.get("language", "vi")),
                lookahead_days=int(data.get("lookahead_days", 7)),
                failed_login_hours=int(data.get("failed_login_hours", 24)),
                failed_login_top=int(data.get("failed_login_top", 5)),
            )
        except KeyError as exc:
            raise DailyMailError(f"configuration {path} lacks {exc.args[0]!r}: re-run playbooks/site.yml") from None
        except (TypeError, ValueError) as exc:
            raise DailyMailError(f"configuration {path}: {exc}") from None
        if config.language not in LANGUAGES:
            raise DailyMailError(
                f"configuration {path}: language {config.language!r} is not one of {', '.join(LANGUAGES)}"
            )
        missing = [name for name in health.THRESHOLDS if name.removeprefix("govmail_check_") not in config.thresholds]
        if missing:
            raise DailyMailError(f"configuration {path} lacks the threshold {missing[0]}: re-run playbooks/site.yml")
        return config


# --- the parts ------------------------------------------------------------------------------------


def failed_logins(lines: Sequence[str], top: int) -> dict[str, Any]:
    """Failed logins in log ``lines`` (Dovecot's ``auth failed`` and Postfix's ``SASL ... authentication
    failed``), counted per address and per client IP, the ``top`` of each."""
    by_address: Counter[str] = Counter()
    by_client: Counter[str] = Counter()
    total = 0
    for line in lines:
        if match := DOVECOT_FAILED.search(line):
            user, client = match.groups()
        elif match := POSTFIX_FAILED.search(line):
            client, user = match.groups()
        else:
            continue
        total += 1
        by_client[client] += 1
        if user:
            by_address[user.lower()] += 1
    return {
        "total": total,
        "by_address": [list(item) for item in by_address.most_common(top)],
        "by_client": [list(item) for item in by_client.most_common(top)],
    }


def journal_lines(hours: int) -> list[str]:
    """Dovecot's and Postfix's journal of the last ``hours`` hours (message text only)."""
    completed = subprocess.run(
        ["journalctl", "--no-pager", "-o", "cat", f"--since=-{hours}h", "-u", "dovecot", "-u", "postfix*"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    return completed.stdout.splitlines()


def upcoming_accounts(today: date, days: int, lifecycle_config: str = LIFECYCLE_CONFIG) -> dict[str, Any]:
    """What the lifecycle would do by ``today + days`` (its dry run on that date, nothing changed)."""
    try:
        config = lifecycle.Config.load(lifecycle_config)
        report = lifecycle.run(config, as_of=today + timedelta(days=days), dry_run=True)
    except GovmailError as exc:
        return {"profile": None, "accounts": [], "error": str(exc)}
    thresholds = {
        "lock": config.profile.inactivity_lock_days,
        "notify": config.profile.inactivity_delete_notice_days,
    }
    end = today + timedelta(days=days)
    accounts = []
    for action in report["actions"]:
        if action["action"] == "delete":
            due = max(today, date.fromisoformat(action["deletion_due"]))
        elif action["action"] in thresholds:
            # the plan counts idle days as of ``end``: the threshold is reached that many days earlier
            due = max(today, end - timedelta(days=action["idle_days"] - thresholds[action["action"]]))
        else:
            continue
        accounts.append(
            {"address": action["address"], "action": action["action"], "due": due.isoformat(),
             "idle_days": action["idle_days"] - days}
        )  # fmt: skip
    return {"profile": report["profile"], "accounts": accounts, "error": None}


# --- the mail -------------------------------------------------------------------------------------


def backup_rows(config: Config, now: datetime | None = None) -> list[dict[str, Any]] | None:
    """The ``backup age`` row of this host (``govmail-backup list --json`` judged with the
    configuration's ``backup_*_hours``), a critical row when the list fails, or None when this host
    is not a backup client (no thresholds in the configuration or no ``govmail-backup``)."""
    limits = (config.thresholds.get("backup_warning_hours"), config.thresholds.get("backup_critical_hours"))
    program = shutil.which(health.BACKUP_PROGRAM)
    if None in limits or program is None:
        return None
    try:
        completed = subprocess.run(
            [program, "list", "--json"], capture_output=True, text=True, check=False, timeout=300
        )
        archives = json.loads(completed.stdout) if completed.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        archives, completed = None, None
    if not isinstance(archives, list):
        lines = (completed.stderr.strip().splitlines() if completed else []) or ["no answer"]
        detail = f"the archives cannot be listed: {lines[-1].removeprefix(health.BACKUP_PROGRAM + ': ')}"
        return [health.check("critical", config.host, "backup", "backup age", detail)]
    return [health.judge_backup(config.host, archives, limits, now or datetime.now(UTC))]


def compose(
    config: Config, checks: list[dict], accounts: dict, logins: dict, today: date, backups: list[dict] | None = None
) -> tuple[str, str, str]:
    """(status, subject, body) in the configured language; ``backups`` as :func:`backup_rows`."""
    text = TEXTS[config.language]
    checks = [*checks, *(backups or [])]
    status = health.worst(row["status"] for row in checks)
    subject = text["subject"].format(hostname=config.hostname, day=today.isoformat(), status=text["status"][status])
    lines = [text["intro"].format(host=config.host, hostname=config.hostname), ""]
    lines.append(text["failed"])
    failed = [row for row in checks if row["status"] != "ok"]
    for row in failed:
        lines.append(f"- [{text['status'][row['status']]}] {row['service']} / {row['check']}: {row['detail']}")
    if not failed:
        lines.append(text["none_failed"].format(count=len(checks)))
    lines += ["", text["queue"]]
    for row in checks:
        if row["check"] == "queue" or row["check"].startswith("mail store") or row["check"] == "quota":
            lines.append(f"- {row['detail']}")
    bound = config.thresholds["certificate_warning_days"]
    lines += ["", text["certs"].format(days=bound)]
    expiring = [row for row in checks if (row.get("data") or {}).get("certificate_days_left") is not None]
    near = [row for row in expiring if row["data"]["certificate_days_left"] < bound]
    for row in near:
        lines.append(f"- {row['check']}: {row['detail']}")
    if not near:
        least = min((row["data"]["certificate_days_left"] for row in expiring), default="?")
        lines.append(text["no_certs"].format(least=least))
    lines += ["", text["backups"]]
    if backups is None:
        lines.append(text["no_backups"])
    for row in backups or []:
        lines.append(f"- [{text['status'][row['status']]}] {row['host']}: {row['detail']}")
    lines += ["", text["accounts"].format(days=config.lookahead_days, profile=accounts.get("profile") or "?")]
    if accounts.get("error"):
        lines.append(text["accounts_error"].format(error=accounts["error"]))
    for item in accounts.get("accounts", []):
        action = text["actions"].get(item["action"], item["action"])
        lines.append(
            text["account_line"].format(address=item["address"], action=action, due=item["due"], idle=item["idle_days"])
        )
    if not accounts.get("accounts") and not accounts.get("error"):
        lines.append(text["no_accounts"])
    lines += ["", text["logins"].format(hours=config.failed_login_hours, total=logins["total"])]
    for title, key in (("by_address", "by_address"), ("by_client", "by_client")):
        if logins[key]:
            lines.append(text[title])
            lines += [f"- {name}: {text['times'].format(count=count)}" for name, count in logins[key]]
    lines += ["", "--", text["footer"]]
    return status, subject, "\n".join(lines) + "\n"


def send(config: Config, subject: str, body: str, sendmail: str = "/usr/sbin/sendmail") -> str:
    """Hand the mail to Postfix (``sendmail -i``); its Message-ID. :class:`DailyMailError` when
    sendmail refuses it."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = config.operators
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config.domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)  # UTF-8, quoted-printable or base64 as the text needs
    completed = subprocess.run(
        [sendmail, "-i", "-f", config.sender, "--", config.operators],
        input=message.as_bytes(), capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip().splitlines()
        raise DailyMailError(f"sendmail to {config.operators} failed: {detail[-1] if detail else completed.returncode}")
    return str(message["Message-ID"])


def report(config: Config, *, today: date | None = None, send_mail: bool = False) -> dict[str, Any]:
    """Gather, compose and (with ``send_mail``) send the daily mail; the report (module docstring)."""
    today = today or datetime.now(UTC).date()
    spec = health.spec_for(
        config.groups, hostname=config.hostname, ca_file=config.ca_file, domain=config.domain, store=config.vmail_dir
    )
    checks = health.judge(config.host, spec, probe.probe(spec), config.thresholds)
    accounts = upcoming_accounts(today, config.lookahead_days) if "ldap" in config.groups else {"accounts": []}
    logins = failed_logins(journal_lines(config.failed_login_hours), config.failed_login_top)
    backups = backup_rows(config)
    status, subject, body = compose(config, checks, accounts, logins, today, backups)
    message_id = send(config, subject, body) if send_mail else None
    return {
        "date": today.isoformat(),
        "status": status,
        "subject": subject,
        "body": body,
        "sent_to": config.operators if send_mail else None,
        "message_id": message_id,
        "checks": checks,
        "accounts": accounts.get("accounts", []),
        "accounts_error": accounts.get("error"),
        "failed_logins": logins,
        "backups": backups,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-daily-mail", description=__doc__.splitlines()[0])
    parser.add_argument("--send", action="store_true", help="send the mail to the operators (else only print it)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--as-of", help="list the accounts due as if today were this date (YYYY-MM-DD)")
    parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    args = parser.parse_args(argv)
    try:
        today = lifecycle.parse_date(args.as_of) if args.as_of else None
        result = report(Config.load(args.config), today=today, send_mail=args.send)
    except GovmailError as exc:
        print(f"govmail-daily-mail: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(f"Subject: {result['subject']}\n\n{result['body']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

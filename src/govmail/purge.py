"""Purging a leaked secret document from every mailbox (QT §10.4, §11.3; LC §17.3): ``govmail-purge``.

Runs **on the mail store host** (the directory host, beside Dovecot: roles/lifecycle installs the
package there) as root, from ``govmail message purge`` on the controller. It finds every copy of
one message (by its ``Message-ID``; optionally also its sender and the day it was sent) in every
mailbox and every folder (INBOX, Sent, Trash, the user's own folders), with Dovecot's own search
(``doveadm fetch``; RFC 3501 SEARCH keys ``HEADER``, ``FROM``, ``SENTON``), keeps only exact
``Message-ID`` matches, removes them (``doveadm expunge`` by folder and UID), appends an audit
record, and lists the archives that still hold a copy: the lifecycle's archives (``.tar.gz`` of
deleted mailboxes, kept until removed by hand) and the **backups** (restic snapshots of this
host, :mod:`govmail.backup`): each snapshot's manifest lists the SHA-256 of every Maildir file it
holds, so a snapshot holds the message when its manifest has the digest of one of the copies'
files (computed before they are removed). For each such snapshot the retention of the backup
host (restic ``forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12``, roles/backup's
``backup_retention_*``) says from which day it is no longer kept, if a backup keeps running every
day (:func:`ages_out`); the next prune of the backup host then removes it. A message that is in
no mailbox any more cannot be matched to a manifest (manifests hold digests, not Message-IDs).

Mailboxes are found as their homes (``<vmail_dir>/<domain>/<local part>``, the dovecot role's
``mail_home``), as ``govmail check`` counts quotas: a mailbox that never received mail has none.

Report (JSON)::

    {"message_id": "<id@host>", "dry_run": false,
     "removed": [{"address": "a@d", "folder": "INBOX", "uid": 7, "sha256": "…"}, ...],
     "archives_still_holding": [{"archive": "/var/backups/govmail/archive/x@d-2026-01-02.tar.gz",
                                 "kind": "lifecycle archive", "ages_out": "never: remove it by hand"},
                                {"archive": "1a2b3c4d", "kind": "backup", "time": ISO-8601,
                                 "copies": [{"address": "a@d", "folder": "INBOX"}], "kept_as": ["daily", "monthly"],
                                 "ages_out": "2027-11-01"}, ...],
     "audit": "/var/log/govmail/purge.log"}

The audit record (one JSON line, file mode 0600): when, who (``--operator``, else the invoking
user), the message id and criteria, dry run or not, each mailbox and folder, and the SHA-256 of
each removed copy as Dovecot returned it — never a subject, an address of the message or its content.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import backup, daily
from .errors import BackupError, GovmailError

AUDIT_LOG = "/var/log/govmail/purge.log"
ARCHIVE_DIR = "/var/backups/govmail/archive"  # lifecycle_archive_dir (roles/lifecycle)
_MESSAGE_ID = re.compile(r"^<[^<>\s]+@[^<>\s]+>$")


class PurgeError(GovmailError):
    """The purge cannot run: a bad message id, sender or date, or Dovecot refused an operation."""


def check_message_id(value: str) -> str:
    """``<left@right>`` (RFC 5322 §3.6.4 msg-id); the angle brackets are added when missing."""
    text = value.strip()
    if not text.startswith("<"):
        text = f"<{text}>"
    if not _MESSAGE_ID.match(text):
        raise PurgeError(f"--message-id {value!r} is not a Message-ID: write it as <left@right>, as in the header")
    return text


def _doveadm(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["doveadm", *argv], capture_output=True, text=True, timeout=600, check=False)


def mailbox_users(vmail_dir: str, domain: str) -> list[str]:
    """Every mailbox with a home on this host, as ``local@domain``."""
    base = Path(vmail_dir) / domain
    if not base.is_dir():
        return []
    return sorted(f"{entry.name}@{domain}" for entry in base.iterdir() if entry.is_dir())


def find(
    message_id: str, users: list[str], sender: str | None = None, sent_on: date | None = None
) -> list[dict[str, Any]]:
    """Every copy of the message: ``[{"address", "folder", "uid", "sha256"}]``."""
    if not users:
        return []
    query = ["mailbox", "*", "header", "Message-ID", message_id]
    if sender:
        query += ["from", sender]
    if sent_on:
        query += ["senton", sent_on.strftime("%d-%b-%Y")]
    with tempfile.NamedTemporaryFile("w", suffix=".users") as listing:
        listing.write("".join(f"{user}\n" for user in users))
        listing.flush()
        completed = _doveadm(
            "-f", "json", "fetch", "-F", listing.name, "mailbox uid guid hdr.message-id text", *query
        )  # fmt: skip
    if completed.returncode not in (0, 68):  # 68: EX_NOUSER for a home without a directory entry
        raise PurgeError(f"doveadm fetch failed: {(completed.stderr.strip().splitlines() or ['?'])[-1]}")
    try:
        rows = json.loads(completed.stdout or "[]")
    except ValueError:
        raise PurgeError(f"doveadm fetch answered {completed.stdout[:80]!r}") from None
    found = []
    for row in rows:
        if row.get("hdr.message-id", "").strip() != message_id:
            continue  # HEADER searches substrings: keep only the exact id
        digest = hashlib.sha256(row.get("text", "").encode("utf-8", "surrogateescape")).hexdigest()
        found.append(
            {"address": row["username"], "folder": row["mailbox"], "uid": int(row["uid"]), "sha256": digest,
             "guid": row.get("guid", "")}
        )  # fmt: skip
    return sorted(found, key=lambda item: (item["address"], item["folder"], item["uid"]))


# Passes of find + expunge: the first removes what users see, the second what lazy_expunge kept.
PURGE_PASSES = 3


def expunge(copies: list[dict[str, Any]]) -> None:
    """Remove each copy (its folder and UID only)."""
    for copy in copies:
        completed = _doveadm("expunge", "-u", copy["address"], "mailbox", copy["folder"], "uid", str(copy["uid"]))
        if completed.returncode != 0:
            detail = (completed.stderr.strip().splitlines() or ["?"])[-1]
            raise PurgeError(
                f"doveadm expunge of {copy['address']} {copy['folder']} uid {copy['uid']} failed: {detail}"
            )


def archives_holding(message_id: str, archive_dir: str = ARCHIVE_DIR) -> list[dict[str, Any]]:
    """Lifecycle archives (``.tar.gz`` of deleted mailboxes) with a file holding this Message-ID header."""
    needle = f"message-id: {message_id}".lower().encode()
    found = []
    for path in sorted(Path(archive_dir).glob("*.tar.gz")) if Path(archive_dir).is_dir() else []:
        try:
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile():
                        handle = archive.extractfile(member)
                        if handle is not None and needle in handle.read().lower():
                            found.append(
                                {
                                    "archive": str(path),
                                    "kind": "lifecycle archive",
                                    "ages_out": "never: remove it by hand",
                                }
                            )
                            break
        except (OSError, tarfile.TarError):
            continue
    return found


def file_digests(vmail_dir: str, copies: list[dict[str, Any]]) -> set[str]:
    """SHA-256 of the Maildir file of each copy, as a backup manifest records it
    (:func:`govmail.backup.mailbox_manifest`). A Maildir message's Dovecot GUID is its file's base
    name (``<time>.M<n>P<pid>.<host>,S=<size>``), :func:`govmail.backup.message_key`."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for copy in copies:
        if copy.get("guid"):
            wanted.setdefault((copy["address"], copy["folder"]), set()).add(copy["guid"])
    digests = set()
    for address in sorted({address for address, _ in wanted}):
        local, _, domain = address.partition("@")
        for name, folder in backup._folders(Path(vmail_dir) / domain / local / "Maildir"):
            bases = wanted.get((address, name))
            for message in backup._messages(folder) if bases else ():
                if backup.message_key(message.name)[0] in bases:
                    digests.add(backup._file_sha256(message))
    return digests


RETENTION = {"daily": 7, "weekly": 4, "monthly": 12}  # roles/backup's backup_retention_* defaults
_BUCKETS = {
    "daily": lambda moment: moment.date(),
    "weekly": lambda moment: moment.isocalendar()[:2],
    "monthly": lambda moment: (moment.year, moment.month),
}


def kept(times: Sequence[datetime], retention: dict[str, int]) -> dict[datetime, list[str]]:
    """restic's ``forget --keep-daily/--keep-weekly/--keep-monthly`` over snapshot ``times``: the
    times kept and by which rules. For each rule, newest first, the newest snapshot of each of the
    last N days (ISO weeks, months) that have one is kept (restic docs, "Removing snapshots
    according to a policy")."""
    result: dict[datetime, list[str]] = {}
    for rule, key in _BUCKETS.items():
        seen: list[Any] = []
        for moment in sorted(times, reverse=True):
            bucket = key(moment)
            if bucket in seen:
                continue
            if len(seen) >= retention.get(rule, 0):
                break
            seen.append(bucket)
            result.setdefault(moment, []).append(rule)
    return result


def ages_out(snapshot: datetime, times: Sequence[datetime], retention: dict[str, int]) -> tuple[list[str], date | None]:
    """(the rules that keep ``snapshot`` today, the first day it is no longer kept), when one backup
    follows each day after the newest of ``times`` (the backup timer's daily run); ``None`` when the
    retention would keep it for more than two years (a policy with yearly rules)."""
    times = sorted(times)
    rules = kept(times, retention).get(snapshot, [])
    if not rules:
        return [], (times[-1].date() if times else snapshot.date())

    def still_kept(days: int) -> bool:
        future = times + [times[-1] + timedelta(days=day) for day in range(1, days + 1)]
        return snapshot in kept(future, retention)

    # once no rule keeps it, no later backup brings it back: search the first day it is dropped
    low, high = 0, 800
    if still_kept(high):
        return rules, None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if still_kept(middle) else (low, middle)
    return rules, (times[-1] + timedelta(days=high)).date()
    return rules, None


def backups_holding(
    digests: set[str], copies: list[dict[str, Any]], config_file: str = backup.CONFIG_FILE
) -> list[dict[str, Any]]:
    """The backup snapshots of this host whose manifest holds one of the files ``digests``, each
    with the copies it holds and when the retention ages it out. ``[]`` where the host has no backup
    client (no ``/etc/govmail/backup.json``); :class:`PurgeError` when the repository cannot be read."""
    if not digests or not Path(config_file).is_file():
        return []
    try:
        config = backup.Config.load(config_file)
        completed = backup.restic(config, ["snapshots", "--json", "--tag", backup.TAG])
        snapshots = sorted(json.loads(completed.stdout or "[]"), key=lambda item: item["time"])
    except (BackupError, ValueError) as exc:
        raise PurgeError(f"the backups cannot be listed: {exc}") from None
    retention = RETENTION | {
        rule: int(days) for rule, days in (config.data.get("retention") or {}).items() if rule in RETENTION
    }
    times = [backup_time(item["time"]) for item in snapshots]
    manifest_path = f"{config['staging_dir'].rstrip('/')}/{backup.MANIFEST}"
    held = []
    for snapshot, moment in zip(snapshots, times, strict=True):
        dumped = backup.restic(config, ["dump", snapshot["id"], manifest_path], check=False)
        try:
            manifest = json.loads(dumped.stdout) if dumped.returncode == 0 else {}
        except ValueError:
            manifest = {}
        inside = [
            {"address": address, "folder": folder}
            for address, mailbox in (manifest.get("mailboxes") or {}).items()
            for folder, content in mailbox["folders"].items()
            if any(item["sha256"] in digests for item in content["files"].values())
        ]
        if inside:
            rules, day = ages_out(moment, times, retention)
            held.append(
                {"archive": snapshot["short_id"], "kind": "backup", "time": snapshot["time"], "copies": inside,
                 "kept_as": rules, "ages_out": day.isoformat() if day else "kept for more than two years"}
            )  # fmt: skip
    return held


def backup_time(text: str) -> datetime:
    """restic's snapshot time (RFC 3339, nanoseconds) as an aware datetime."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")))


def audit(path: str, record: dict[str, Any]) -> None:
    """Append one JSON line to the audit log (created 0600, root only)."""
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def purge(
    config: daily.Config,
    message_id: str,
    *,
    sender: str | None = None,
    sent_on: date | None = None,
    dry_run: bool = False,
    operator: str | None = None,
    audit_log: str = AUDIT_LOG,
    archive_dir: str = ARCHIVE_DIR,
) -> dict[str, Any]:
    """Find, remove (unless ``dry_run``) and audit every copy; the report (module docstring)."""
    message_id = check_message_id(message_id)
    users = mailbox_users(config.vmail_dir, config.domain)
    copies = find(message_id, users, sender, sent_on)
    digests = file_digests(config.vmail_dir, copies)  # before the files go
    if not dry_run:
        expunge(copies)
        # Expunging keeps the last copy of each mailbox in the deleted-mail folder (Dovecot's
        # lazy_expunge, `govmail mailbox undelete`); expunging it there is final. Search again.
        for _ in range(PURGE_PASSES - 1):
            kept = find(message_id, users, sender, sent_on)
            if not kept:
                break
            digests |= file_digests(config.vmail_dir, kept)
            expunge(kept)
            copies += kept
        else:
            raise PurgeError(f"copies of {message_id} remain after {PURGE_PASSES} passes: run the purge again")
        try:  # the backup's staging mirror must not keep the removed files' bytes until its next run
            backup.refresh_staging()
        except (BackupError, OSError) as exc:
            raise PurgeError(
                f"removed from the mailboxes, but the backup's staging area was not updated: {exc}"
            ) from None
    record = {
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "operator": operator or os.environ.get("SUDO_USER") or getpass.getuser(),
        "message_id": message_id,
        "sender": sender,
        "date": sent_on.isoformat() if sent_on else None,
        "dry_run": dry_run,
        "copies": [{"address": c["address"], "folder": c["folder"], "sha256": c["sha256"]} for c in copies],
    }
    audit(audit_log, record)
    return {
        "message_id": message_id,
        "dry_run": dry_run,
        "removed": copies,
        "archives_still_holding": archives_holding(message_id, archive_dir) + backups_holding(digests, copies),
        "audit": audit_log,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-purge", description=__doc__.splitlines()[0])
    parser.add_argument("--message-id", required=True, help="the Message-ID of the document's mail, <left@right>")
    parser.add_argument("--sender", help="only copies from this sender address")
    parser.add_argument("--date", help="only copies sent on this day (YYYY-MM-DD)")
    parser.add_argument("--dry-run", action="store_true", help="list the copies, remove nothing")
    parser.add_argument("--operator", help="who runs the purge, for the audit record")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--config", default=daily.CONFIG_FILE, help=f"configuration (default {daily.CONFIG_FILE})")
    args = parser.parse_args(argv)
    try:
        sent_on = None
        if args.date:
            try:
                sent_on = date.fromisoformat(args.date)
            except ValueError:
                raise PurgeError(f"--date {args.date!r} is not a date: write YYYY-MM-DD") from None
        report = purge(
            daily.Config.load(args.config), args.message_id, sender=args.sender, sent_on=sent_on,
            dry_run=args.dry_run, operator=args.operator,
        )  # fmt: skip
    except GovmailError as exc:
        print(f"govmail-purge: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        verb = "would remove" if report["dry_run"] else "removed"
        for copy in report["removed"]:
            print(f"{verb} {copy['address']} {copy['folder']} uid {copy['uid']}")
        print(f"{len(report['removed'])} copies of {report['message_id']}; audit: {report['audit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

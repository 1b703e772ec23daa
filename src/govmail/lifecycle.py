"""Inactivity lifecycle of mailboxes (REQUIREMENTS P6-P8): lock, notify, archive and delete.

This module runs **on the directory host** (installed there by ``roles/lifecycle``, started
daily by a systemd timer and by ``govmail lifecycle run`` from the controller), because every
action it takes is local there: the directory over ``ldapi://`` as root (SASL EXTERNAL, the
database's root identity), the mail store's Maildirs, Postfix's ``sendmail`` for the notice,
and the archive area. It is the govmail package itself, installed by the role as a wheel into
``/opt/govmail`` (with Debian's python3-ldap3); mailbox state changes (lock, delete, ending
delegations) go through :mod:`govmail.mailbox`, the same code ``govmail account`` uses.

What one run decides for each *personal* mailbox, with ``as_of`` as today (``--as-of``
simulates another date):

- **activity** is the last successful login (the directory's ``authTimestamp`` or
  ``pwdLastSuccess``), or the creation for a mailbox never used ("kể từ lúc được cấp phát hoặc
  lần truy cập cuối cùng", LC §8.1); for a terminated mailbox the termination, and for an active
  one its reopening (``govmail account unlock``), if later;
- idle ``inactivity_lock_days`` or more and still active: **lock** (status ``locked`` and
  ppolicy's permanent lockout, exactly like ``govmail account lock``);
- idle ``inactivity_delete_notice_days`` or more and no notice yet: **notify** the agency
  mailbox of the mailbox's unit by mail and record the date in ``govmailDeletionNotice``;
- a notice whose grace has run out (``PolicyProfile.deletion_due``): **delete**: archive the
  Maildir and the entry (``<archive_dir>/<address>-<date>.tar.gz``, read back and counted
  before anything is removed), end open sessions, delete the entry, remove the Maildir;
- a notice older than the latest activity (the mailbox was reopened and used): **clear** it.

Agency mailboxes are never locked or deleted for inactivity: their clerks use them through
their own logins (delegation), so no login of the agency mailbox itself is ever recorded.

Nothing is half-done for one mailbox: a failed archive leaves the entry and the Maildir in
place and is reported; the run goes on with the others and exits non-zero.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

from . import hostconfig, mailbox, policy
from .directory import Directory, Entry, generalized_time, parse_generalized_time
from .errors import AccountError, DirectoryError, GovmailError, LifecycleError

CONFIG_FILE = "/etc/govmail/lifecycle.json"

ATTRIBUTES = [
    "mail",
    "cn",
    "govmailKind",
    "govmailStatus",
    "govmailStatusChanged",
    "govmailDeletionNotice",
    "govmailAlias",
    "govmailQuota",
    "govmailDelegateFor",
    "authTimestamp",
    "pwdLastSuccess",
    "pwdAccountLockedTime",
    "createTimestamp",
]


# --- dates -----------------------------------------------------------------------------------


parse_time = parse_generalized_time  # one GeneralizedTime parser (govmail.directory)
generalized = generalized_time


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise LifecycleError(f"--as-of {text!r} is not a date: write it as YYYY-MM-DD") from None


# --- the plan ----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the lifecycle needs to know about one mailbox entry."""

    dn: str
    address: str
    kind: str
    status: str
    created: datetime | None = None
    last_login: datetime | None = None
    status_changed: datetime | None = None
    notice: datetime | None = None
    locked_out: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_attributes(cls, dn: str, attributes: Mapping[str, Sequence[str]]) -> Mailbox:
        def first(name: str) -> str | None:
            values = attributes.get(name) or []
            return str(values[0]) if values else None

        entry = Entry(dn, {name: [str(value) for value in values] for name, values in attributes.items()})
        return cls(
            dn=dn,
            address=(first("mail") or "").lower(),
            kind=(first("govmailKind") or "personal").lower(),
            status=(first("govmailStatus") or "active").lower(),
            created=parse_time(first("createTimestamp")),
            last_login=mailbox.last_login_time(entry),
            status_changed=parse_time(first("govmailStatusChanged")),
            notice=parse_time(first("govmailDeletionNotice")),
            locked_out=first("pwdAccountLockedTime"),
            attributes={name: [str(value) for value in values] for name, values in attributes.items()},
        )

    def activity(self) -> datetime | None:
        """The moment inactivity counts from (see the module docstring)."""
        moments = [moment for moment in (self.last_login, self.created) if moment]
        # a reopened mailbox (unlock: status active again) starts afresh, or the next night's run
        # would lock it again before its owner could log in; a terminated one counts from then
        if self.status in ("active", "terminated") and self.status_changed:
            moments.append(self.status_changed)
        return max(moments) if moments else None


@dataclass
class Action:
    """One thing the run does (or, with --dry-run, would do) to one mailbox."""

    address: str
    dn: str
    action: str  # lock | notify | delete | clear-notice
    idle_days: int
    last_activity: str | None
    status: str
    deletion_due: str | None = None
    agency_mailbox: str | None = None
    archive: str | None = None
    done: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan(
    mailboxes: Iterable[Mailbox],
    profile: policy.PolicyProfile,
    as_of: date,
    holidays: Sequence[date] = (),
) -> list[Action]:
    """The actions due on ``as_of`` (pure: no directory, no clock)."""
    actions: list[Action] = []
    for box in sorted(mailboxes, key=lambda item: item.address):
        if box.kind != "personal":
            continue
        since = box.activity()
        if since is None:
            continue
        idle = (as_of - since.date()).days
        base = {
            "address": box.address,
            "dn": box.dn,
            "idle_days": idle,
            "last_activity": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": box.status,
        }
        if box.notice is not None and box.notice < since:
            actions.append(Action(action="clear-notice", **base))
            notice = None
        else:
            notice = box.notice
        if notice is not None:
            due = profile.deletion_due(notice.date(), holidays)
            if as_of >= due:
                actions.append(Action(action="delete", deletion_due=due.isoformat(), **base))
                continue
        if box.status == "active" and idle >= profile.inactivity_lock_days:
            actions.append(Action(action="lock", **base))
        if notice is None and idle >= profile.inactivity_delete_notice_days:
            due = profile.deletion_due(as_of, holidays)
            actions.append(Action(action="notify", deletion_due=due.isoformat(), **base))
    return actions


# --- the host: directory, mail, archive --------------------------------------------------------


@dataclass
class Config:
    """``/etc/govmail/lifecycle.json``, written by roles/lifecycle."""

    domain: str
    base_dn: str
    profile: policy.PolicyProfile
    ldap_uri: str = "ldapi:///var/run/slapd/ldapi"
    vmail_dir: str = "/var/vmail"
    # Folder layout of the Maildirs (govmail_mailbox_layout), written into each archive so a
    # restore knows how to read it.
    mailbox_layout: str = "fs"
    archive_dir: str = "/var/backups/govmail/archive"
    sender: str = ""
    sendmail: str = "/usr/sbin/sendmail"
    doveadm: str = "/usr/bin/doveadm"
    holidays: tuple[date, ...] = ()
    # Roundcube's bin/deluser.sh when the webmail runs on this host ("" otherwise): a deleted
    # mailbox's webmail settings, identities and contacts go with it.
    roundcube_deluser: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Config:
        data = hostconfig.read(path, LifecycleError)
        try:
            profile = policy.get_profile(data.get("profile") or policy.DEFAULT_PROFILE, data.get("overrides") or None)
            return cls(
                domain=data["domain"],
                base_dn=data["base_dn"],
                profile=profile,
                ldap_uri=data.get("ldap_uri", "ldapi:///var/run/slapd/ldapi"),
                vmail_dir=data.get("vmail_dir", "/var/vmail"),
                mailbox_layout=data.get("mailbox_layout", "fs"),
                archive_dir=data.get("archive_dir", "/var/backups/govmail/archive"),
                sender=data.get("sender") or f"postmaster@{data['domain']}",
                sendmail=data.get("sendmail", "/usr/sbin/sendmail"),
                doveadm=data.get("doveadm", "/usr/bin/doveadm"),
                holidays=tuple(date.fromisoformat(day) for day in data.get("holidays") or ()),
                roundcube_deluser=data.get("roundcube_deluser") or "",
            )
        except KeyError as exc:
            raise LifecycleError(f"configuration {path} lacks {exc.args[0]!r}: re-run playbooks/site.yml") from None
        except ValueError as exc:
            raise LifecycleError(f"configuration {path}: {exc}") from None


class Host:
    """The directory host's own services, as root: the directory through :class:`Directory`
    (ldapi, SASL EXTERNAL), Maildirs, sendmail and doveadm."""

    def __init__(self, config: Config) -> None:
        self.config = config
        try:
            self.directory = Directory.open_local(config.ldap_uri, domain=config.domain, base_dn=config.base_dn)
        except DirectoryError as exc:
            raise LifecycleError(str(exc)) from None

    @property
    def agencies_dn(self) -> str:
        return self.directory.agencies_dn

    def agency_dn(self, agency: str) -> str:
        """``sokhcn`` -> ``ou=sokhcn,ou=agencies,...``; ``vp.sokhcn`` -> ``ou=vp,ou=sokhcn,...``."""
        units = [part for part in agency.lower().split(".") if part]
        if not units or not all(unit.isalnum() and unit.isascii() for unit in units):
            raise LifecycleError(f"--agency {agency!r} is not an abbreviation: write it like sokhcn or vp.sokhcn")
        return self.directory.agency_dn(".".join(units))

    def mailboxes(self, agency: str | None = None) -> list[Mailbox]:
        base = self.agency_dn(agency) if agency else self.agencies_dn
        if agency and not self.directory.exists(base):
            raise LifecycleError(f"agency {agency} does not exist in the directory: check the abbreviation")
        entries = self.directory.search(base, "(objectClass=govmailMailbox)", ATTRIBUTES)
        return [Mailbox.from_attributes(entry.dn, entry.attributes) for entry in entries]

    def agency_mailbox(self, dn: str) -> str | None:
        """The agency mailbox of the unit ``dn`` belongs to, or of the nearest unit above it."""
        parts = dn.split(",")[1:]
        while parts and parts[0].lower().startswith("ou=") and ",".join(parts).lower() != self.agencies_dn.lower():
            unit = ",".join(parts)
            found = self.directory.search(
                unit, "(&(objectClass=govmailMailbox)(govmailKind=agency))", ["mail"], scope="LEVEL"
            )
            for entry in found:
                if entry.first("mail"):
                    return entry.first("mail").lower()
            parts = parts[1:]
        return None

    def modify(self, dn: str, changes: dict[str, Any], what: str) -> None:
        try:
            self.directory.modify(dn, changes)
        except DirectoryError as exc:
            raise LifecycleError(f"{what}: {exc}") from None

    def lock(self, action: Action, now: datetime) -> None:
        """Lock as ``govmail account lock`` does (:func:`govmail.mailbox.lock`)."""
        try:
            mailbox.lock(self.directory, action.address)
        except GovmailError as exc:
            raise LifecycleError(f"lock {action.address}: {exc}") from None

    def notify(self, action: Action, as_of: date, now: datetime) -> None:
        recipient = action.agency_mailbox
        if not recipient:
            raise LifecycleError(
                f"no agency mailbox above {action.dn} to notify: the notice is not recorded, so nothing is deleted; "
                "add the agency's mailbox (govmail account add ... --kind agency)"
            )
        self.send(recipient, *notice_text(action, self.config.profile))
        notice = datetime(as_of.year, as_of.month, as_of.day, now.hour, now.minute, now.second, tzinfo=UTC)
        self.modify(
            action.dn,
            {"govmailDeletionNotice": [(MODIFY_REPLACE, [generalized(notice)])]},
            f"record the deletion notice of {action.address}",
        )

    def clear_notice(self, action: Action) -> None:
        self.modify(
            action.dn,
            {"govmailDeletionNotice": [(MODIFY_DELETE, [])]},
            f"clear the deletion notice of {action.address}",
        )

    def send(self, recipient: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.config.domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        completed = subprocess.run(
            [self.config.sendmail, "-i", "-f", self.config.sender, "--", recipient],
            input=message.as_bytes(),
            capture_output=True,
            check=False,
        )
        if completed.returncode != 0:
            detail = completed.stderr.decode(errors="replace").strip().splitlines()
            raise LifecycleError(f"sendmail to {recipient} failed: {detail[-1] if detail else completed.returncode}")

    def maildir(self, address: str) -> Path:
        local, _, domain = address.partition("@")
        return Path(self.config.vmail_dir) / domain / local

    def archive(self, action: Action, box: Mailbox, as_of: date) -> Path:
        """Write ``<address>-<date>.tar.gz`` (entry.json + the mailbox's home) and read it back."""
        target_dir = Path(self.config.archive_dir)
        target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = target_dir / f"{action.address}-{as_of.isoformat()}.tar.gz"
        serial = 1
        while target.exists():  # deleted again the same day (a reused address): never overwrite
            serial += 1
            target = target_dir / f"{action.address}-{as_of.isoformat()}-{serial}.tar.gz"
        home = self.maildir(action.address)
        entry = {
            "dn": box.dn,
            "attributes": box.attributes,
            "archived": generalized(datetime.now(UTC)),
            "mailbox_layout": self.config.mailbox_layout,
        }
        files = 0
        handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=".archive-")
        os.close(handle)
        try:
            with tarfile.open(temporary, "w:gz") as tar:
                data = json.dumps(entry, ensure_ascii=False, indent=2).encode("utf-8")
                info = tarfile.TarInfo("entry.json")
                info.size = len(data)
                info.mtime = int(datetime.now(UTC).timestamp())
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(data))
                if home.is_dir():
                    tar.add(home, arcname="home")
                    files = sum(len(names) for _, _, names in os.walk(home))
            with tarfile.open(temporary, "r:gz") as tar:
                members = [member for member in tar.getmembers() if member.isfile()]
            if len(members) != files + 1:
                raise LifecycleError(
                    f"archive of {action.address} holds {len(members) - 1} files, the mailbox {files}: nothing deleted"
                )
            os.chmod(temporary, 0o600)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def delete(self, action: Action, box: Mailbox, as_of: date) -> dict[str, Any]:
        """Archive the entry and the Maildir (:meth:`archive`), then remove both; returns
        :func:`govmail.mailbox.delete`'s document. Nothing is removed when the archive fails."""
        archive = self.archive(action, box, as_of)
        action.archive = str(archive)
        # delegations to it end, the entry goes (the address may be given to someone else later)
        try:
            removed = mailbox.delete(self.directory, action.address, force=True)
        except GovmailError as exc:
            raise LifecycleError(f"delete the entry of {action.address}: {exc}") from None
        subprocess.run([self.config.doveadm, "kick", action.address], capture_output=True, check=False)
        home = self.maildir(action.address)
        if home.exists():
            shutil.rmtree(home)
        return {**removed, "webmail": self.forget_in_webmail(action.address)}

    def forget_in_webmail(self, address: str) -> str | None:
        """Remove the address's Roundcube user (settings, identities, contacts) with Roundcube's
        ``bin/deluser.sh``, as the web server's user (it owns the database). ``None`` when the
        webmail is not on this host; else ``"removed"``, ``"none"`` (never logged in to the
        webmail) or ``"failed: <reason>"`` (the mailbox is deleted all the same)."""
        if not self.config.roundcube_deluser:
            return None
        completed = subprocess.run(
            ["runuser", "-u", "www-data", "--", self.config.roundcube_deluser, address],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        said = (completed.stdout + completed.stderr).strip().splitlines()
        if completed.returncode != 0:
            return f"failed: {said[-1] if said else f'exit {completed.returncode}'}"
        return "none" if said and said[-1].strip() == "User not found." else "removed"


def notice_text(action: Action, profile: policy.PolicyProfile) -> tuple[str, str]:
    """Subject and body of the deletion notice to the agency (Vietnamese, then English)."""
    subject = f"Thông báo xoá hộp thư không sử dụng: {action.address}"
    body = (
        f"Hộp thư {action.address} không được truy cập trong {action.idle_days} ngày "
        f"(lần cuối: {action.last_activity}).\n"
        f"Theo quy định ({profile.name}), hộp thư sẽ bị xoá từ ngày {action.deletion_due}; dữ liệu được "
        "lưu trữ vào khu vực sao lưu trước khi xoá.\n"
        "Nếu cần tiếp tục sử dụng, đề nghị cơ quan gửi yêu cầu mở lại hộp thư trước ngày đó.\n\n"
        f"The mailbox {action.address} has not been used for {action.idle_days} days "
        f"(last activity {action.last_activity}). Under {profile.name} it will be deleted on or after "
        f"{action.deletion_due}, after its data is archived. Ask the mail administrators to reopen it "
        "before that date if it is still needed.\n"
    )
    return subject, body


# --- the run -------------------------------------------------------------------------------------


def run(
    config: Config,
    *,
    as_of: date | None = None,
    dry_run: bool = False,
    agency: str | None = None,
    host: Host | None = None,
) -> dict:
    """Plan and (unless ``dry_run``) carry out the lifecycle on ``as_of``; the JSON report.

    ``agency`` limits the run to one agency's mailboxes (with its sub-units).
    """
    now = datetime.now(UTC)
    today = as_of or now.date()
    host = host or Host(config)
    boxes = {box.dn.lower(): box for box in host.mailboxes(agency)}
    actions = plan(boxes.values(), config.profile, today, config.holidays)
    for action in actions:
        if action.action == "notify":
            action.agency_mailbox = host.agency_mailbox(action.dn)
        if dry_run:
            continue
        try:
            if action.action == "lock":
                host.lock(action, now)
            elif action.action == "notify":
                host.notify(action, today, now)
            elif action.action == "clear-notice":
                host.clear_notice(action)
            elif action.action == "delete":
                host.delete(action, boxes[action.dn.lower()], today)
            action.done = True
        except (LifecycleError, OSError, tarfile.TarError) as exc:
            action.error = str(exc)
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.action] = counts.get(action.action, 0) + 1
    errors = [f"{action.address}: {action.action}: {action.error}" for action in actions if action.error]
    return {
        "as_of": today.isoformat(),
        "profile": config.profile.name,
        "dry_run": dry_run,
        "agency": agency,
        "mailboxes": len(boxes),
        "actions": [action.as_dict() for action in actions],
        "counts": counts,
        "errors": errors,
    }


def delete_now(config: Config, address: str, *, force: bool = False, as_of: date | None = None) -> dict[str, Any]:
    """Delete one mailbox now, as the lifecycle's own deletion does: the entry and the Maildir go
    into ``<archive_dir>/<address>-<date>[-N].tar.gz`` (read back and counted), then both are
    removed, so an address given to someone else later starts empty (``govmail account delete``).

    Only terminated mailboxes unless ``force``. Returns ``{"address", "dn", "deleted": true,
    "previous_status", "agency_unit_removed", "webmail": see :meth:`Host.forget_in_webmail`,
    "archive": path}``. Raises :class:`AccountError`
    (unknown address, not terminated) or :class:`LifecycleError` (the archive failed: nothing removed).
    """
    host = Host(config)
    entry = mailbox.find_mailbox(host.directory, address)
    full = host.directory.get(entry.dn, ATTRIBUTES) or entry
    box = Mailbox.from_attributes(entry.dn, full.attributes)
    if box.status != "terminated" and not force:
        raise AccountError(
            f"mailbox {box.address} is {box.status}: only terminated mailboxes are deleted; "
            f"run `govmail account terminate {box.address}` first, or add --force"
        )
    action = Action(box.address, box.dn, "delete", 0, None, box.status)
    removed = host.delete(action, box, as_of or datetime.now(UTC).date())
    return {**removed, "archive": action.archive}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-lifecycle", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="lock, notify and delete idle mailboxes")
    run_parser.add_argument("--as-of", help="act as if today were this date (YYYY-MM-DD)")
    run_parser.add_argument("--dry-run", action="store_true", help="plan without changing anything")
    run_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    run_parser.add_argument("--agency", help="only this agency's mailboxes (abbreviation, or unit.parent)")
    run_parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    delete_parser = commands.add_parser("delete", help="archive one mailbox's entry and Maildir, then remove both")
    delete_parser.add_argument("address", help="the mailbox's address")
    delete_parser.add_argument("--force", action="store_true", help="delete even if the mailbox is not terminated")
    delete_parser.add_argument("--json", action="store_true", help="print the result as JSON")
    delete_parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    check_parser = commands.add_parser("check", help="check the configuration and print the thresholds")
    check_parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
        if args.command == "check":
            profile = config.profile
            print(
                f"{profile.name}: lock after {profile.inactivity_lock_days} idle days, notice after "
                f"{profile.inactivity_delete_notice_days}, delete {profile.deletion_grace} "
                f"{profile.deletion_grace_unit} after the notice"
            )
            return 0
        if args.command == "delete":
            result = delete_now(config, args.address, force=args.force)
            print(json.dumps(result, ensure_ascii=False) if args.json else f"{result['address']}: {result['archive']}")
            return 0
        report = run(
            config,
            as_of=parse_date(args.as_of) if args.as_of else None,
            dry_run=args.dry_run,
            agency=args.agency,
        )
    except (GovmailError, OSError, tarfile.TarError) as exc:
        print(f"govmail-lifecycle: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for action in report["actions"]:
            state = "planned" if report["dry_run"] else ("FAILED: " + action["error"] if action["error"] else "done")
            print(f"{action['action']:13} {action['address']} (idle {action['idle_days']} days): {state}")
        print(f"{report['mailboxes']} mailboxes, as of {report['as_of']} ({report['profile']})")
    for error in report["errors"]:
        print(f"govmail-lifecycle: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

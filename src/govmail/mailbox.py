"""A mailbox's state and its changes: the one implementation the CLI and the host programs share.

``govmail account lock|unlock|terminate|delete`` (through :mod:`govmail.accounts`) and the daily
lifecycle on the directory host (:mod:`govmail.lifecycle`) change a mailbox only through these
functions, so a rule (what locking writes, which delegations end with a deletion, what counts
as the last login) is written once. Each takes a :class:`~govmail.directory.Directory` (an
administrator's connection, or root's SASL EXTERNAL connection on the host) and an address,
and returns a JSON-ready document; bad input raises :class:`~govmail.errors.AccountError`.

Statuses (REQUIREMENTS P5-P8): ``active``; ``locked`` (no login, mail still delivered, data
kept); ``terminated`` (logins refused, mail refused with 5xx, data kept until deleted).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import ldap3

from .directory import Directory, Entry, escape, generalized_time, parse_generalized_time
from .errors import AccountError

# ppolicy's pwdAccountLockedTime for "locked by an administrator until unlocked" (the
# draft-behera ppolicy value 000001010000Z): the directory itself then refuses the owner's binds
# too (address book, password change), not only the mail services.
PERMANENT_LOCKOUT = "000001010000Z"

MAILBOX_CLASSES = ["inetOrgPerson", "govmailMailbox"]
MAILBOX_ATTRIBUTES = [
    "uid",
    "cn",
    "mail",
    "govmailKind",
    "govmailStatus",
    "govmailStatusChanged",
    "govmailQuota",
    "govmailAlias",
    "govmailDelegateFor",
    "govmailDeletionNotice",
    # operational attributes: only returned when asked for by name
    "authTimestamp",
    "pwdLastSuccess",
    "pwdChangedTime",
    "pwdReset",
    "pwdAccountLockedTime",
    "createTimestamp",
]


def normalise_address(directory: Directory, address: str) -> str:
    """``NguyenVanLong@Quangtri.gov.vn`` or ``nguyenvanlong`` -> ``nguyenvanlong@quangtri.gov.vn``."""
    text = (address or "").strip().lower()
    if not text:
        raise AccountError("address is empty: give the mailbox's address, e.g. nguyenvanlong@" + directory.domain)
    local, at, domain = text.rpartition("@")
    if not at:
        local, domain = text, directory.domain
    if domain != directory.domain:
        raise AccountError(f"address {address!r} is not in the mail domain {directory.domain}: check the address")
    if not re.match(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$", local) or ".." in local:
        raise AccountError(f"address {address!r} is not a valid mailbox address: check the spelling")
    return f"{local}@{domain}"


def find_mailbox(directory: Directory, address: str) -> Entry:
    """The mailbox entry whose ``mail`` is ``address`` (aliases are named, not followed)."""
    address = normalise_address(directory, address)
    wanted = escape(address)
    found = directory.search(directory.base_dn, f"(&(objectClass=govmailMailbox)(mail={wanted}))", MAILBOX_ATTRIBUTES)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        dns = "; ".join(entry.dn for entry in found)
        raise AccountError(f"address {address} belongs to {len(found)} entries ({dns}): remove the duplicate by hand")
    owners = directory.search(directory.base_dn, f"(&(objectClass=govmailMailbox)(govmailAlias={wanted}))", ["mail"])
    if owners:
        raise AccountError(f"{address} is an alias of {owners[0].first('mail')}: give the mailbox's own address")
    raise AccountError(
        f"no mailbox {address} in the directory at {directory.uri}: check the address (govmail account list)"
    )


def last_login_time(entry: Entry) -> datetime | None:
    """The last successful login of a mailbox: the later of slapd's ``authTimestamp`` (lastbind)
    and ppolicy's ``pwdLastSuccess``, as an aware UTC datetime; None if it never logged in."""
    known = [
        moment for name in ("authTimestamp", "pwdLastSuccess") if (moment := parse_generalized_time(entry.first(name)))
    ]
    return max(known) if known else None


def last_login(entry: Entry) -> str | None:
    """:func:`last_login_time` as ISO 8601 UTC (``2026-11-23T20:35:36Z``), or None."""
    moment = last_login_time(entry)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def status_of(entry: Entry) -> str | None:
    """``active``, ``locked`` or ``terminated`` (lower case), or None for an entry without one."""
    value = entry.first("govmailStatus")
    return value.lower() if value else None


def _set_status(directory: Directory, entry: Entry, status: str, extra: dict[str, Any] | None = None) -> bool:
    previous = status_of(entry)
    changes: dict[str, Any] = dict(extra or {})
    if previous != status:
        changes["govmailStatus"] = [(ldap3.MODIFY_REPLACE, [status])]
        changes["govmailStatusChanged"] = [(ldap3.MODIFY_REPLACE, [generalized_time()])]
    if not changes:
        return False
    directory.modify(entry.dn, changes)
    return True


def _result(entry: Entry, status: str | None, previous: str | None, changed: bool) -> dict[str, Any]:
    return {
        "address": (entry.first("mail") or "").lower(),
        "dn": entry.dn,
        "status": status,
        "previous_status": previous,
        "changed": changed,
    }


def _permanent_lockout(entry: Entry) -> dict[str, Any]:
    if entry.first("pwdAccountLockedTime") == PERMANENT_LOCKOUT:
        return {}
    return {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [PERMANENT_LOCKOUT])]}


def lock(directory: Directory, address: str) -> dict[str, Any]:
    """Lock a mailbox (P5, P7): no login (IMAP, POP3, SMTP AUTH), mail still delivered, data kept."""
    entry = find_mailbox(directory, address)
    previous = status_of(entry)
    if previous == "terminated":
        raise AccountError(f"mailbox {entry.first('mail')} is terminated: there is nothing to lock")
    changed = _set_status(directory, entry, "locked", _permanent_lockout(entry))
    return _result(entry, "locked", previous, changed)


def unlock(directory: Directory, address: str, *, force: bool = False) -> dict[str, Any]:
    """Make a locked mailbox active again (P8), and end a lockout after failed logins (ppolicy)."""
    entry = find_mailbox(directory, address)
    previous = status_of(entry)
    if previous == "terminated" and not force:
        raise AccountError(
            f"mailbox {entry.first('mail')} is terminated: unlock reopens it only with --force "
            "(for an account closed by mistake)"
        )
    extra = {}
    locked_out = bool(entry.first("pwdAccountLockedTime"))
    if locked_out:  # ppolicy removes pwdFailureTime with it
        extra["pwdAccountLockedTime"] = [(ldap3.MODIFY_DELETE, [])]
    if entry.first("govmailDeletionNotice"):  # reopened on request (P8): the deletion is called off
        extra["govmailDeletionNotice"] = [(ldap3.MODIFY_DELETE, [])]
    changed = _set_status(directory, entry, "active", extra)
    return {**_result(entry, "active", previous, changed), "lockout_ended": locked_out}


def terminate(directory: Directory, address: str) -> dict[str, Any]:
    """Close a mailbox (P6): logins refused, mail to it and its aliases refused with 5xx, data kept."""
    entry = find_mailbox(directory, address)
    previous = status_of(entry)
    changed = _set_status(directory, entry, "terminated", _permanent_lockout(entry))
    return _result(entry, "terminated", previous, changed)


def delete(directory: Directory, address: str, *, force: bool = False) -> dict[str, Any]:
    """Remove a mailbox's entry (terminated ones only, unless ``force``). Mail data is not touched.

    An agency mailbox takes its agency's unit with it when the unit holds nothing else.
    """
    entry = find_mailbox(directory, address)
    mail = (entry.first("mail") or "").lower()
    status = status_of(entry)
    if status != "terminated" and not force:
        raise AccountError(
            f"mailbox {mail} is {status or 'without a status'}: only terminated mailboxes are deleted; "
            f"run `govmail account terminate {mail}` first, or add --force"
        )
    # no clerk may keep a delegation to a deleted agency mailbox (a new one may reuse the address)
    end_delegations(directory, mail)
    directory.delete(entry.dn)
    unit_removed = False
    if (entry.first("govmailKind") or "").lower() == "agency":
        # the agency's unit goes with its mailbox when nothing else is left in it
        unit = entry.dn.split(",", 1)[1]
        children = directory.search(unit, "(objectClass=*)", ["ou"], scope=ldap3.LEVEL)
        if directory.agency_of(unit) and not [child for child in children if child.dn.lower() != unit.lower()]:
            directory.delete(unit)
            unit_removed = True
    document = {"address": mail, "dn": entry.dn, "deleted": True, "previous_status": status}
    return {**document, "agency_unit_removed": unit_removed}


def end_delegations(directory: Directory, agency_mail: str, keep: str | None = None) -> list[str]:
    """Remove ``agency_mail`` from every clerk's govmailDelegateFor except ``keep``'s; their addresses."""
    holders = directory.search(
        directory.agencies_dn,
        f"(&(objectClass=govmailMailbox)(govmailDelegateFor={escape(agency_mail)}))",
        ["mail", "govmailDelegateFor"],
    )
    ended = []
    for holder in holders:
        mail = (holder.first("mail") or holder.dn).lower()
        if keep is not None and mail == keep:
            continue
        values = [value for value in holder.all("govmailDelegateFor") if value.lower() == agency_mail]
        directory.modify(holder.dn, {"govmailDelegateFor": [(ldap3.MODIFY_DELETE, values)]})
        ended.append(mail)
    return sorted(ended)

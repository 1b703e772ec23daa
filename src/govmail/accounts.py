"""Mailbox accounts in the directory: create, import, show, list, lifecycle, passwords, quotas.

The functions here take an open :class:`govmail.directory.Directory` and return plain
JSON-ready dictionaries; they never print. Every refusal is an :class:`AccountError` (or a
:class:`~govmail.errors.NamingError`, ``PasswordError``, ``PolicyError``) whose message
names the bad input; nothing is left half-done.

What an account is in the directory (``roles/openldap/README.md``):

- an agency is ``ou=<abbr>,ou=agencies,<base>`` (a sub-unit nests under its parent's OU), its
  ``description`` the full name; it is named here by its mailbox's local part: ``sokhcn``,
  or ``vp.sokhcn`` for the sub-unit ``vp`` of ``sokhcn``;
- a mailbox is ``uid=<local part>,<agency DN>`` with the classes ``inetOrgPerson`` and
  ``govmailMailbox``: ``cn``/``displayName`` (full name), ``govmailAsciiName`` (the full name
  folded to lower-case ASCII: searches without diacritics, M9), ``sn`` (family name, or the agency's
  name), ``givenName`` (people), ``mail``, ``govmailKind``, ``govmailStatus`` and
  ``govmailStatusChanged``, optional ``govmailQuota`` (bytes), ``govmailAlias``,
  ``govmailDelegateFor`` (on a clerk's entry: the agency mailboxes the clerk uses, see
  :func:`handover`), ``govmailDeletionNotice`` (``govmail lifecycle``);
- a password set by an administrator (new account, reset) is stored as an ``{ARGON2}`` hash
  (:func:`govmail.passwords.hash_password`) together with ``pwdReset: TRUE``: the ppolicy
  overlay then lets the owner do nothing but change it, and Dovecot refuses the login until
  the owner has (REQUIREMENTS P2). The owner's own change (:func:`change_password`) goes
  through the RFC 3062 Password Modify operation bound as the owner, so slapd hashes it,
  enforces history and quality, and clears ``pwdReset``.

Dates in documents are ISO 8601 UTC (``2026-11-23T20:35:36Z``) or ``None``. The last login is
the lastbind overlay's ``authTimestamp`` (or OpenLDAP's own ``pwdLastSuccess`` if that is what
the server keeps), the later of the two.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3

from . import naming, passwords, policy
from .directory import (
    CONSTRAINT_VIOLATION,
    Directory,
    DirectoryError,
    Entry,
    InvalidCredentialsError,
    escape,
    generalized_time,
    iso_time,
)
from .errors import AccountError, NamingError, PasswordError, PolicyError
from .inventory import Site
from .mailbox import (  # the one implementation of the state changes, shared with the lifecycle
    MAILBOX_ATTRIBUTES,
    MAILBOX_CLASSES,
    find_mailbox,
    last_login,
    status_of,
)
from .sizes import format_size, parse_size

KINDS = ("personal", "agency")
STATUSES = ("active", "locked", "terminated")

# The smallest quota an operator may give (REQUIREMENTS M6); the quota of a mailbox without
# govmailQuota is the site's default for its kind (the shared facts govmail_quota_personal and
# govmail_quota_agency, :meth:`Directory.default_quota`).
MINIMUM_QUOTA = policy.MINIMUM_QUOTA


# --- profile, sizes, addresses -----------------------------------------------------------------


def profile_for(inventory_dir: Path | str, name: str | None = None) -> policy.PolicyProfile:
    """``name``, else the inventory's ``govmail_policy_profile`` (default ``quangtri-2026``).

    The inventory is read through Ansible (:class:`govmail.inventory.Site`), so the profile and
    its ``govmail_policy_overrides`` (field: value) are those the roles apply, at whatever level
    of the inventory they are set; a profile named on the command line is taken as it is.
    Raises :class:`PolicyError` for an unknown profile or a bad override.
    """
    if name:
        return policy.get_profile(str(name))
    site = Site(inventory_dir)
    overrides = site.value("govmail_policy_overrides") or None
    if overrides is not None and not isinstance(overrides, dict):
        raise PolicyError(
            f"govmail_policy_overrides in {inventory_dir} must be a mapping of field: value, "
            f"not {policy.kind_of(overrides)}"
        )
    return policy.get_profile(str(site.value("govmail_policy_profile") or policy.DEFAULT_PROFILE), overrides)


def _check_quota(size: int, kind: str, text: str | int, who: str) -> int:
    minimum = MINIMUM_QUOTA[kind]
    if size < minimum:
        raise AccountError(
            f"quota {text} for {who} is below the minimum for {kind} mailboxes ({format_size(minimum)}, "
            f"REQUIREMENTS M6): give at least {format_size(minimum)}"
        )
    return size


def _clean_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str):
        raise AccountError(f"{what} {name!r} is not text")
    text = unicodedata.normalize("NFC", name)
    text = "".join(char for char in text if unicodedata.category(char) != "Cf")
    text = " ".join(text.split())
    if not text:
        raise AccountError(f"{what} {name!r} is empty: give the full name")
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise AccountError(f"{what} {name!r} contains control characters: type it again")
    return text


def agency_local(agency: str) -> str:
    """An agency as its mailbox's local part, checked: ``SOKHCN`` -> ``sokhcn``, ``vp.sokhcn``."""
    if not isinstance(agency, str) or not agency.strip():
        raise NamingError(f"agency {agency!r} is empty: give the agency's abbreviation, e.g. sokhcn")
    value = agency.strip().lower()
    domain_suffix = value.rpartition("@")
    if domain_suffix[1]:  # an agency given as its address: sokhcn@quangtri.gov.vn
        value = domain_suffix[0]
    return ".".join(naming.normalise_abbreviation(part, "agency") for part in value.split("."))


# --- reading mailboxes -----------------------------------------------------------------------


def _document(directory: Directory, entry: Entry, delegates: Callable[[str], list[str]]) -> dict[str, Any]:
    kind = (entry.first("govmailKind") or "personal").lower()
    quota = entry.first("govmailQuota")
    status = entry.first("govmailStatus")
    return {
        "address": (entry.first("mail") or "").lower(),
        "dn": entry.dn,
        "name": entry.first("cn"),
        "kind": kind,
        "agency": directory.agency_of(entry.dn),
        "quota_bytes": int(quota) if quota and quota.strip().isdigit() else directory.default_quota(kind),
        "status": status.lower() if status else None,
        "last_login": last_login(entry),
        "password_changed": iso_time(entry.first("pwdChangedTime")),
        "must_change_password": (entry.first("pwdReset") or "").upper() == "TRUE",
        "delegates": delegates((entry.first("mail") or "").lower()) if kind == "agency" else [],
        # beyond the documented fields: what an operator asks next
        "aliases": sorted(alias.lower() for alias in entry.all("govmailAlias")),
        "delegate_for": sorted(value.lower() for value in entry.all("govmailDelegateFor")),
        "deletion_notice": iso_time(entry.first("govmailDeletionNotice")),
        "status_changed": iso_time(entry.first("govmailStatusChanged")),
        "locked_out_since": iso_time(entry.first("pwdAccountLockedTime")),
        "created": iso_time(entry.first("createTimestamp")),
    }


def _delegates_of(directory: Directory, agency_mail: str) -> list[str]:
    """Addresses of the mailboxes whose entries name ``agency_mail`` in govmailDelegateFor."""
    holders = directory.search(
        directory.agencies_dn, f"(&(objectClass=govmailMailbox)(govmailDelegateFor={escape(agency_mail)}))", ["mail"]
    )
    return sorted((holder.first("mail") or holder.dn).lower() for holder in holders)


def _delegation_map(directory: Directory) -> Callable[[str], list[str]]:
    """One search for every delegation in the directory: agency address -> delegates' addresses."""
    holders = directory.search(
        directory.agencies_dn, "(&(objectClass=govmailMailbox)(govmailDelegateFor=*))", ["mail", "govmailDelegateFor"]
    )
    table: dict[str, list[str]] = {}
    for holder in holders:
        for agency in holder.all("govmailDelegateFor"):
            table.setdefault(agency.lower(), []).append((holder.first("mail") or holder.dn).lower())
    return lambda mail: sorted(table.get(mail, []))


def show(directory: Directory, address: str) -> dict[str, Any]:
    """The account document of one mailbox (see the module docstring for the fields)."""
    entry = find_mailbox(directory, address)
    return _document(directory, entry, lambda mail: _delegates_of(directory, mail))


def list_mailboxes(
    directory: Directory, *, agency: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """Account documents of every mailbox, or of one agency (with its sub-units), by address."""
    base = directory.agencies_dn
    if agency:
        local = agency_local(agency)
        base = directory.agency_dn(local)
        if not directory.exists(base):
            raise AccountError(
                f"agency {agency} does not exist in the directory: check the abbreviation (govmail account list)"
            )
    parts = ["(objectClass=govmailMailbox)"]
    if status:
        if status not in STATUSES:
            raise AccountError(f"status {status!r} is unknown: use one of {', '.join(STATUSES)}")
        parts.append(f"(govmailStatus={status})")
    entries = directory.search(base, f"(&{''.join(parts)})", MAILBOX_ATTRIBUTES)
    delegates = _delegation_map(directory)
    return sorted((_document(directory, entry, delegates) for entry in entries), key=lambda doc: doc["address"])


# --- addresses in use ------------------------------------------------------------------------


def _variant_key(address: str) -> tuple[str, str]:
    """``nguyenvanlong@d`` -> ``("nguyenvanlong", "")``; ``longnv.sokhcn@d`` -> ``("longnv", ".sokhcn")``."""
    head, dot, tail = address.rpartition("@")[0].partition(".")
    return head, dot + tail


class _Taken:
    """Addresses in use in the domain, asked of the directory only as far as needed.

    A new person's address needs the addresses that look like its numbered variants
    (``nguyenvanlong*@``): one indexed substring search on ``mail`` per name, plus every alias
    (read once; there are few). Addresses handed out earlier in the same run are added: a
    person's under the name it was numbered from, so a bulk import stays linear.
    """

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.assigned: set[str] = set()
        self._assigned_like: dict[tuple[str, str], set[str]] = {}
        self._assigned_other: set[str] = set()
        self._aliases: set[str] | None = None
        self._like: dict[str, set[str]] = {}

    def aliases(self) -> set[str]:
        if self._aliases is None:
            found = self.directory.search(self.directory.base_dn, "(govmailAlias=*)", ["govmailAlias"])
            self._aliases = {alias.lower() for entry in found for alias in entry.all("govmailAlias")}
        return self._aliases

    def like(self, address: str) -> set[str]:
        """Addresses in use that could be numbered variants of ``address`` (the un-numbered form)."""
        head, tail = _variant_key(address)
        pattern = f"{escape(head)}*{escape(tail)}@{escape(self.directory.domain)}"
        if pattern not in self._like:
            found = self.directory.search(self.directory.base_dn, f"(mail={pattern})", ["mail"])
            self._like[pattern] = {mail.lower() for entry in found for mail in entry.all("mail")}
        assigned = self._assigned_like.get((head, tail), set())
        return self._like[pattern] | self.aliases() | assigned | self._assigned_other

    def assign(self, address: str, numbered_from: str | None = None) -> None:
        """Record ``address`` as handed out (``numbered_from``: the un-numbered form it came from)."""
        self.assigned.add(address)
        if numbered_from:
            self._assigned_like.setdefault(_variant_key(numbered_from), set()).add(address)
        else:
            self._assigned_other.add(address)

    def used(self, address: str) -> bool:
        """Whether ``address`` is some mailbox's address or alias now (asked of the directory)."""
        if address in self.assigned:
            return True
        value = escape(address)
        found = self.directory.search(self.directory.base_dn, f"(|(mail={value})(govmailAlias={value}))", ["mail"])
        return bool(found)


# --- planning new mailboxes ------------------------------------------------------------------


@dataclass
class Plan:
    """One mailbox (and, for an agency, its organisational unit) to create."""

    kind: str
    name: str
    agency: str
    address: str
    dn: str
    quota: int | None = None
    row: int | None = None
    ou_dn: str | None = None  # agency only: the OU to create (None when it exists already)
    family: str | None = None
    given: str | None = None
    base_address: str | None = None  # person: the address before numbering (nguyenvanlong@)
    default_quota: int = 0  # bytes: the site's default for the kind (used when ``quota`` is None)

    @property
    def uid(self) -> str:
        return self.address.rpartition("@")[0]

    def as_dict(self, initial_password: str | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.row is not None:
            document["row"] = self.row
        document.update(
            {
                "kind": self.kind,
                "name": self.name,
                "agency": self.agency,
                "address": self.address,
                "dn": self.dn,
                "quota_bytes": self.quota if self.quota is not None else self.default_quota,
                "initial_password": initial_password,
            }
        )
        return document


def _plan_person(
    directory: Directory,
    name: str,
    agency: str,
    profile: policy.PolicyProfile,
    taken: _Taken,
    *,
    quota: int | str | None = None,
    agencies: Callable[[str], bool] | None = None,
) -> Plan:
    family, middle, given = naming.split_name(name)
    full = " ".join([family, *middle, given])
    local = agency_local(agency)
    agency_dn = directory.agency_dn(local)
    exists = agencies(local) if agencies else directory.exists(agency_dn)
    if not exists:
        raise AccountError(
            f"agency {agency} does not exist in the directory: create it first "
            f'(govmail account add "<full name>" --kind agency --abbreviation {local.split(".")[0]})'
        )
    first = naming.personal_address(full, local, directory.domain, profile)
    address = naming.personal_address(full, local, directory.domain, profile, taken=taken.like(first))
    size = None
    if quota is not None and quota != "":
        size = _check_quota(parse_size(quota), "personal", quota, address)
    uid = address.rpartition("@")[0]
    return Plan(
        kind="personal", name=full, agency=local, address=address, dn=f"uid={uid},{agency_dn}",
        quota=size, family=family, given=given, base_address=first,
        default_quota=directory.default_quota("personal"),
    )  # fmt: skip


def _plan_agency(
    directory: Directory,
    name: str,
    abbreviation: str,
    taken: _Taken,
    *,
    parent: str | None = None,
    quota: int | str | None = None,
    agencies: Callable[[str], bool] | None = None,
) -> Plan:
    full = _clean_name(name, "agency name")
    address = naming.agency_address(abbreviation, directory.domain, parent=parent or None)
    local = address.rpartition("@")[0]
    exists = agencies or (lambda value: directory.exists(directory.agency_dn(value)))
    if parent:
        parent_local = local.partition(".")[2]
        if not exists(parent_local):
            raise AccountError(
                f"parent agency {parent} does not exist in the directory: create it first, or check the abbreviation"
            )
    ou_dn = directory.agency_dn(local)
    dn = f"uid={local},{ou_dn}"
    ou_exists = exists(local)
    if ou_exists and directory.exists(dn):
        raise AccountError(f"agency {local} already exists with its mailbox {address}: nothing to create")
    if taken.used(address):
        raise AccountError(f"address {address} for agency {local} is already in use: choose another abbreviation")
    size = None
    if quota is not None and quota != "":
        size = _check_quota(parse_size(quota), "agency", quota, address)
    return Plan(
        kind="agency", name=full, agency=local, address=address, dn=dn, quota=size,
        ou_dn=None if ou_exists else ou_dn, default_quota=directory.default_quota("agency"),
    )  # fmt: skip


def _mailbox_attributes(plan: Plan, password_hash: str, now: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "uid": plan.uid,
        "cn": plan.name,
        "displayName": plan.name,
        # the name without diacritics, for searches typed without them (address book, M9)
        "govmailAsciiName": naming.fold(plan.name),
        "sn": plan.family if plan.kind == "personal" else plan.name,
        "mail": plan.address,
        "govmailKind": plan.kind,
        "govmailStatus": "active",
        "govmailStatusChanged": now,
        "userPassword": password_hash,
        "pwdReset": "TRUE",
    }
    if plan.kind == "personal":
        attributes["givenName"] = plan.given
    if plan.quota is not None:
        attributes["govmailQuota"] = str(plan.quota)
    return attributes


def _create(directory: Directory, plan: Plan, password_hash: str) -> None:
    """Create the OU (agency) and the mailbox; an OU created here is removed again on failure."""
    if plan.ou_dn:
        directory.add(plan.ou_dn, ["organizationalUnit"], {"ou": plan.agency.split(".")[0], "description": plan.name})
    try:
        directory.add(plan.dn, MAILBOX_CLASSES, _mailbox_attributes(plan, password_hash, generalized_time()))
    except DirectoryError:
        if plan.ou_dn:
            try:
                directory.delete(plan.ou_dn)
            except DirectoryError as exc:
                raise DirectoryError(
                    f"creating {plan.dn} failed and the agency unit {plan.ou_dn} created just before could not be "
                    f"removed ({exc}): delete it by hand"
                ) from None
        raise


def _initial_password(profile: policy.PolicyProfile, password: str | None) -> str:
    if password is None:
        return passwords.generate(profile=profile)
    passwords.check(password, profile=profile)
    return password


def add_person(
    directory: Directory,
    name: str,
    agency: str,
    *,
    profile: policy.PolicyProfile,
    quota: int | str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """Create a person's mailbox; returns ``{"address", "dn", "initial_password", ...}``."""
    plan = _plan_person(directory, name, agency, profile, _Taken(directory), quota=quota)
    initial = _initial_password(profile, password)
    _create(directory, plan, passwords.hash_password(initial))
    return plan.as_dict(initial)


def add_agency(
    directory: Directory,
    name: str,
    abbreviation: str,
    *,
    profile: policy.PolicyProfile,
    parent: str | None = None,
    quota: int | str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """Create an agency (or sub-unit): its OU and its agency mailbox ``<abbr>[.<parent>]@domain``."""
    plan = _plan_agency(directory, name, abbreviation, _Taken(directory), parent=parent, quota=quota)
    initial = _initial_password(profile, password)
    _create(directory, plan, passwords.hash_password(initial))
    document = plan.as_dict(initial)
    document["agency_created"] = plan.ou_dn is not None
    return document


# --- passwords and quota ---------------------------------------------------------------------


def reset_password(
    directory: Directory, address: str, *, profile: policy.PolicyProfile, password: str | None = None
) -> dict[str, Any]:
    """Set a new initial password (generated, or ``password`` if it meets the policy) + pwdReset."""
    entry = find_mailbox(directory, address)
    mail = (entry.first("mail") or "").lower()
    if status_of(entry) == "terminated":
        raise AccountError(f"mailbox {mail} is terminated: its password is not reset")
    initial = _initial_password(profile, password)
    directory.modify(
        entry.dn,
        {
            "userPassword": [(ldap3.MODIFY_REPLACE, [passwords.hash_password(initial)])],
            "pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])],
        },
    )
    return {"address": mail, "dn": entry.dn, "initial_password": initial}


def change_password(
    directory: Directory, address: str, *, old: str, new: str, profile: policy.PolicyProfile
) -> dict[str, Any]:
    """The owner's own change: policy check, bind as the owner with ``old``, Password Modify."""
    passwords.check(new, profile=profile)
    entry = find_mailbox(directory, address)
    mail = (entry.first("mail") or "").lower()
    if status_of(entry) == "terminated":
        raise AccountError(f"mailbox {mail} is terminated: its password cannot be changed")
    if new == old:
        raise PasswordError(f"the new password for {mail} is the old one: choose a different password")
    try:
        directory.change_own_password(entry.dn, old, new)
    except InvalidCredentialsError:
        locked = iso_time(entry.first("pwdAccountLockedTime"))
        if locked:
            raise AccountError(
                f"old password is wrong for {mail}, or the mailbox is locked after repeated failed logins "
                f"(since {locked}): wait for the lockout to end or ask an operator (govmail account unlock {mail})"
            ) from None
        raise AccountError(f"old password is wrong for {mail}: nothing was changed") from None
    except DirectoryError as exc:
        if exc.detail is None:  # no answer from the server: a connection problem, not a refusal
            raise
        reason = exc.detail
        if exc.code == CONSTRAINT_VIOLATION or "password" in reason.lower():
            raise PasswordError(f"the directory refused the new password for {mail}: {reason}") from None
        raise
    return {"address": mail, "dn": entry.dn, "changed": True}


def set_quota(directory: Directory, address: str, size: str | int) -> dict[str, Any]:
    """Give a mailbox its own quota (bytes in govmailQuota), at least its kind's minimum (M6)."""
    entry = find_mailbox(directory, address)
    mail = (entry.first("mail") or "").lower()
    kind = (entry.first("govmailKind") or "personal").lower()
    value = _check_quota(parse_size(size), kind if kind in KINDS else "personal", size, mail)
    current = entry.first("govmailQuota")
    previous = int(current) if current and current.isdigit() else directory.default_quota(kind)
    if current != str(value):
        directory.modify(entry.dn, {"govmailQuota": [(ldap3.MODIFY_REPLACE, [str(value)])]})
    return {"address": mail, "dn": entry.dn, "quota_bytes": value, "previous_quota_bytes": previous}

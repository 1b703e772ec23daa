"""Agency mailboxes and their clerk (REQUIREMENTS M8): the clerk's delegated login, and handover.

A clerk uses the agency mailbox with the clerk's own password, logging in as
``<agency address>*<own address>`` (Dovecot's master-user login, roles/dovecot); the directory
records the right as ``govmailDelegateFor`` on the clerk's entry. :func:`handover` moves it.
"""

from __future__ import annotations

from typing import Any

import ldap3

from . import passwords, policy
from .accounts import _delegates_of, _initial_password
from .directory import Directory
from .errors import AccountError
from .mailbox import end_delegations, find_mailbox, status_of

# Dovecot's auth_master_user_separator (roles/dovecot): a clerk logs in to the agency mailbox as
# "<agency address>*<own address>" with the clerk's own password.
MASTER_USER_SEPARATOR = "*"


def _top_agency(directory: Directory, dn: str) -> str | None:
    agency = directory.agency_of(dn)
    return agency.rsplit(".", 1)[-1] if agency else None


def handover(directory: Directory, agency_address: str, *, to: str, profile: policy.PolicyProfile) -> dict[str, Any]:
    """Give an agency mailbox to a new clerk (M8): only ``to`` has delegated access afterwards.

    The previous clerks lose their delegation, and the agency mailbox gets a new generated
    password that must be changed at first direct use (pwdReset); the new clerk, and the
    agency's head, receive it. The clerk's own login ("<agency>*<clerk>") is not affected by
    that pending change. Sessions already open are not ended here (``govmail lifecycle`` and
    ``doveadm kick`` run on the mail host); the CLI ends them where it can reach the host.
    """
    agency = find_mailbox(directory, agency_address)
    agency_mail = (agency.first("mail") or "").lower()
    if (agency.first("govmailKind") or "").lower() != "agency":
        raise AccountError(
            f"{agency_mail} is a personal mailbox: handover moves an agency mailbox (govmail account list --agency ...)"
        )
    if status_of(agency) == "terminated":
        raise AccountError(f"agency mailbox {agency_mail} is terminated: reopen it before handing it over")
    clerk = find_mailbox(directory, to)
    clerk_mail = (clerk.first("mail") or "").lower()
    if (clerk.first("govmailKind") or "").lower() != "personal":
        raise AccountError(f"{clerk_mail} is an agency mailbox: hand {agency_mail} over to a person's mailbox")
    if status_of(clerk) != "active":
        raise AccountError(
            f"{clerk_mail} is {status_of(clerk) or 'without a status'}: only an active mailbox can take over "
            f"{agency_mail} (govmail account unlock {clerk_mail})"
        )
    if _top_agency(directory, clerk.dn) != _top_agency(directory, agency.dn):
        raise AccountError(
            f"{clerk_mail} works for {directory.agency_of(clerk.dn)}, not for {directory.agency_of(agency.dn)}: "
            f"the clerk of {agency_mail} must be a member of that agency"
        )
    previous = _delegates_of(directory, agency_mail)
    ended = end_delegations(directory, agency_mail, keep=clerk_mail)
    if clerk_mail not in previous:
        directory.modify(clerk.dn, {"govmailDelegateFor": [(ldap3.MODIFY_ADD, [agency_mail])]})
    password = _initial_password(profile, None)
    directory.modify(
        agency.dn,
        {
            "userPassword": [(ldap3.MODIFY_REPLACE, [passwords.hash_password(password)])],
            "pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])],
        },
    )
    return {
        "address": agency_mail,
        "dn": agency.dn,
        "delegate": clerk_mail,
        "previous_delegates": previous,
        "removed_delegates": ended,
        "login": f"{agency_mail}{MASTER_USER_SEPARATOR}{clerk_mail}",
        "agency_password": password,
    }

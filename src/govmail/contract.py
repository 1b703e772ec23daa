"""The two JSON documents promised by DESIGN.md ("The lab"): status and credentials.

Both are plain dictionaries built from the inventory (read through Ansible), the generated secrets
and, for the host states, what the caller passes in. Nothing here talks to Docker or prints:
``govmail lab status|credentials`` and the appliance tests (``tests/appliance/conftest.py``,
with ``offset=MOLECULE_PORT_OFFSET`` and Molecule's secrets) call the same functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ContractError
from .inventory import Site
from .project import default_secrets_dir, find_project_dir

LOCALHOST = "127.0.0.1"
LAB_PORT_OFFSET = 10000
MOLECULE_PORT_OFFSET = 20000

# Service name -> standard port; published on 127.0.0.1 at standard port + offset.
SERVICE_PORTS: dict[str, int] = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "pop3": 110,
    "pop3s": 995,
    "imap": 143,
    "imaps": 993,
    "managesieve": 4190,
    "ldap": 389,
    "ldaps": 636,
    "http": 80,
    "https": 443,
}

HOST_STATES = ("running", "stopped", "absent")
ACCOUNT_KINDS = ("personal", "agency")
_UID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


# --- ports -----------------------------------------------------------------------------------


def published_port(service: str, offset: int = LAB_PORT_OFFSET) -> int:
    """Host port on which ``service`` is published: its standard port plus ``offset``."""
    try:
        return SERVICE_PORTS[service] + offset
    except KeyError:
        known = ", ".join(SERVICE_PORTS)
        raise ContractError(f"unknown service {service!r}: use one of {known}") from None


def endpoints(offset: int = LAB_PORT_OFFSET, host: str = LOCALHOST) -> dict[str, dict[str, Any]]:
    """``{service: {"host": host, "port": standard + offset}}`` for all twelve services."""
    return {name: {"host": host, "port": port + offset} for name, port in SERVICE_PORTS.items()}


# --- inventory data --------------------------------------------------------------------------


def site_values(inventory_dir: Path | str, project_dir: Path | str | None = None) -> dict[str, str]:
    """``domain``, ``mail_hostname`` and ``base_dn`` of the site an inventory describes.

    Read through Ansible (:class:`govmail.inventory.Site`): any inventory level, vault and the
    project's shared defaults apply as in ``ansible-playbook``. Raises :class:`ContractError`.
    """
    site = Site(inventory_dir, project_dir)
    domain = str(site.required("govmail_domain")).lower()
    return {
        "domain": domain,
        "mail_hostname": str(site.required("govmail_mail_hostname")).lower(),
        "base_dn": str(site.required("govmail_ldap_base_dn")),
    }


def seed_mailboxes(inventory_dir: Path | str, project_dir: Path | str | None = None) -> list[dict[str, Any]]:
    """The validated ``govmail_seed_mailboxes`` list of an inventory (may be empty)."""
    mailboxes = Site(inventory_dir, project_dir).value("govmail_seed_mailboxes") or []
    where = f"govmail_seed_mailboxes in {inventory_dir}"
    if not isinstance(mailboxes, list):
        raise ContractError(f"{where} must be a list of {{uid, name, kind, agency}} entries")
    seen: set[str] = set()
    for index, entry in enumerate(mailboxes):
        if not isinstance(entry, dict):
            raise ContractError(f"{where}: entry {index} is not a mapping: write it as {{uid: ..., kind: ...}}")
        uid = entry.get("uid")
        if not isinstance(uid, str) or not _UID_RE.match(uid):
            raise ContractError(f"{where}: entry {index} has uid {uid!r}: use a lower-case local part")
        if entry.get("kind") not in ACCOUNT_KINDS:
            raise ContractError(f"{where}: {uid} has kind {entry.get('kind')!r}: use one of {', '.join(ACCOUNT_KINDS)}")
        if uid in seen:
            raise ContractError(f"{where}: uid {uid} appears twice: give each mailbox its own uid")
        seen.add(uid)
    return mailboxes


# --- secrets ---------------------------------------------------------------------------------


def read_secret(secrets_dir: Path | str, name: str) -> str:
    """One generated secret (``<secrets_dir>/<name>``, written by the govmail_secret lookup)."""
    path = Path(secrets_dir) / name
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ContractError(
            f"secret {path} does not exist yet: provision the stack first (govmail lab up) so that "
            "the playbook generates it"
        ) from None
    except PermissionError:
        raise ContractError(f"secret {path} is not readable by this user: run as root (sudo)") from None
    if not value:
        raise ContractError(f"secret {path} is empty: delete it and provision again to generate a new one")
    return value


# --- the two documents -----------------------------------------------------------------------


def _defaults(project_dir: Path | str | None) -> Path:
    return Path(project_dir) if project_dir is not None else find_project_dir()


def status(
    *,
    offset: int = LAB_PORT_OFFSET,
    inventory_dir: Path | str | None = None,
    hosts: Mapping[str, str] | None = None,
    host: str = LOCALHOST,
    project_dir: Path | str | None = None,
) -> dict[str, Any]:
    """The status document: domain, mail_hostname, endpoints (12 services), hosts.

    ``inventory_dir`` defaults to ``<project>/inventories/lab``. ``hosts`` maps a host name to
    ``running``, ``stopped`` or ``absent`` (see :func:`govmail.lab.host_states`); ``None`` gives
    ``{}``.
    """
    if inventory_dir is None:
        inventory_dir = _defaults(project_dir) / "inventories" / "lab"
    site = site_values(inventory_dir, project_dir)
    states: dict[str, str] = {}
    for name, state in (hosts or {}).items():
        if state not in HOST_STATES:
            raise ContractError(f"host {name} has state {state!r}: use one of {', '.join(HOST_STATES)}")
        states[name] = state
    return {
        "domain": site["domain"],
        "mail_hostname": site["mail_hostname"],
        "base_dn": site["base_dn"],
        "endpoints": endpoints(offset, host),
        "hosts": states,
    }


def credentials(
    *,
    secrets_dir: Path | str | None = None,
    inventory_dir: Path | str | None = None,
    project_dir: Path | str | None = None,
) -> dict[str, Any]:
    """The credentials document: CA certificate path, LDAP admin, seeded accounts with passwords.

    ``secrets_dir`` defaults to ``$GOVMAIL_SECRETS_DIR`` or ``<project>/.lab/secrets`` (as in the lab
    inventory), ``inventory_dir`` to
    ``<project>/inventories/lab``. A missing secret or CA raises :class:`ContractError`.
    """
    if secrets_dir is None or inventory_dir is None:
        root = _defaults(project_dir)
        secrets_dir = default_secrets_dir(root) if secrets_dir is None else secrets_dir
        inventory_dir = root / "inventories" / "lab" if inventory_dir is None else inventory_dir
    secrets_dir = Path(secrets_dir).resolve()
    site = site_values(inventory_dir, project_dir)
    ca = secrets_dir / "pki" / "ca.crt"
    if not ca.is_file():
        raise ContractError(f"lab CA certificate {ca} does not exist yet: provision the stack first (govmail lab up)")
    accounts = []
    for mailbox in seed_mailboxes(inventory_dir, project_dir):
        account: dict[str, Any] = {
            "address": f"{mailbox['uid']}@{site['domain']}",
            "password": read_secret(secrets_dir, f"mailbox-{mailbox['uid']}"),
            "kind": mailbox["kind"],
            "uid": mailbox["uid"],
        }
        if mailbox.get("name"):
            account["name"] = str(mailbox["name"])
        if mailbox.get("agency"):
            account["agency"] = str(mailbox["agency"])
        accounts.append(account)
    return {
        "ca_certificate": str(ca),
        "ldap_admin": {"dn": f"cn=admin,{site['base_dn']}", "password": read_secret(secrets_dir, "ldap-admin")},
        "accounts": accounts,
    }

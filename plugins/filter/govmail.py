"""Filter plugins: the project's rules, from the govmail package, for the roles.

    govmail_ldap_base_dn: "{{ govmail_domain | govmail_base_dn }}"
    govmail_policy: "{{ govmail_policy_profile | govmail_policy(govmail_policy_overrides) }}"

The regulation profiles live once, in :mod:`govmail.policy`; the roles read their numbers through
``govmail_policy`` instead of keeping a second table in YAML (issue 9, DESIGN.md "One fact in one
place"). Ansible runs these on the controller, where the govmail package is installed
(``scripts/setup.sh``); from a bare checkout the package is imported from ``src/``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from ansible.errors import AnsibleFilterError

try:
    from govmail import bans, naming, pki, policy, recovery, sizes
    from govmail.errors import GovmailError
except ImportError:  # ansible-playbook from a Python without the package: use the checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from govmail import bans, naming, pki, policy, recovery, sizes
    from govmail.errors import GovmailError


def govmail_fold(text: str) -> str:
    """A name without diacritics, lower case (``"Đặng Thị Hạnh"`` -> ``"dang thi hanh"``): govmail.naming.fold.

    What the directory keeps in ``govmailAsciiName`` so that a search typed without diacritics finds
    the entry (REQUIREMENTS M9; OpenLDAP's substring match ignores case, not accents).
    """
    return naming.fold(str(text))


def govmail_base_dn(domain: str) -> str:
    """``quangtri.gov.vn`` -> ``dc=quangtri,dc=gov,dc=vn`` (one ``dc`` per label)."""
    try:
        return naming.base_dn(str(domain))
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


def govmail_policy(name: str, overrides: dict | None = None) -> dict:
    """The policy profile ``name`` with ``overrides`` applied, as a dict of its fields.

    Raises AnsibleFilterError (with govmail.policy's one-line message) for an unknown profile or a
    bad override, so a converge stops before anything is configured.
    """
    if isinstance(overrides, Mapping):
        overrides = dict(overrides)
    try:
        return policy.get_profile(str(name), overrides or None).as_dict()
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


def govmail_bytes(size: str | int, name: str = "size") -> int:
    """``2G`` -> 2147483648 (Dovecot's binary units, govmail.sizes); AnsibleFilterError naming ``name``."""
    try:
        return sizes.parse_size(size if isinstance(size, int) else str(size))
    except GovmailError:
        raise AnsibleFilterError(f"{name} is {size!r}: write a size like 2G, 5G or 500M (binary units)") from None


def govmail_minimum_quota(kind: str) -> int:
    """The regulation's smallest quota for a mailbox ``kind`` (personal|agency), in bytes (M6)."""
    if kind not in policy.MINIMUM_QUOTA:
        raise AnsibleFilterError(f"mailbox kind {kind!r} is unknown: use one of {', '.join(policy.MINIMUM_QUOTA)}")
    return policy.MINIMUM_QUOTA[kind]


def govmail_management_address(addresses: list, network: str, host: str = "this host") -> str:
    """The first of a host's ``addresses`` (``ansible_facts.all_ipv4_addresses``) inside
    ``network`` (CIDR, ``govmail_management_network``): where exporters and Dovecot's metrics listen.

    Raises AnsibleFilterError naming the host, the network and the addresses it has when none fits.
    """
    import ipaddress

    try:
        net = ipaddress.ip_network(str(network), strict=False)
    except ValueError:
        raise AnsibleFilterError(
            f"govmail_management_network {network!r} is not a network: write it as 10.0.9.0/24"
        ) from None
    found = [str(a) for a in addresses or [] if ipaddress.ip_address(str(a)) in net]
    if not found:
        have = ", ".join(str(a) for a in addresses or []) or "none"
        raise AnsibleFilterError(
            f"{host} has no address in govmail_management_network {network} (its addresses: {have}): "
            "give the host an interface there or correct the network"
        )
    return found[0]


def govmail_ip_networks(values: list, name: str = "addresses") -> list[str]:
    """Addresses or CIDR networks in normal form (govmail.bans.parse_networks), e.g. fail2ban's
    ignore list; AnsibleFilterError naming ``name`` and the first value that is neither."""
    try:
        return bans.parse_networks(values or [], name)
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


def govmail_revocations(ca_dir: str) -> list[dict]:
    """The internal CA's recorded revocations (``govmail cert revoke``) as x509_crl's
    ``revoked_certificates``: ``[{serial_number, revocation_date, reason}]`` (govmail.pki)."""
    try:
        return pki.crl_entries(str(ca_dir))
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


def govmail_issued_path(ca_dir: str, host: str) -> str:
    """Where the internal CA keeps the certificate it last issued to ``host`` (govmail.pki)."""
    return str(pki.issued_path(str(ca_dir), str(host)))


def govmail_secrets_bundle(secrets_dir: str) -> str:
    """The controller's secrets directory as a deterministic tar.gz in base64 (govmail.recovery.pack).

    Encrypted with ``ansible.builtin.vault`` by roles/backup and archived with each backup.
    """
    try:
        return recovery.pack(secrets_dir)
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """govmail_base_dn, govmail_policy, govmail_bytes, govmail_minimum_quota, govmail_revocations,
    govmail_issued_path, govmail_secrets_bundle, govmail_ip_networks."""

    def filters(self) -> dict:
        return {
            "govmail_management_address": govmail_management_address,
            "govmail_base_dn": govmail_base_dn,
            "govmail_policy": govmail_policy,
            "govmail_bytes": govmail_bytes,
            "govmail_minimum_quota": govmail_minimum_quota,
            "govmail_revocations": govmail_revocations,
            "govmail_issued_path": govmail_issued_path,
            "govmail_secrets_bundle": govmail_secrets_bundle,
            "govmail_fold": govmail_fold,
            "govmail_ip_networks": govmail_ip_networks,
        }

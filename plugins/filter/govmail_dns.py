"""Filter plugins: the DNS records of the site, from :mod:`govmail.dns` (the one function).

    govmail_dns_records: "{{ govmail_domain | govmail_dns_records(govmail_mail_hostname, govmail_dns_addresses, ...) }}"
    local-data: "{{ record | govmail_dns_zone_line }}"

``roles/govmail/defaults/main.yml`` defines the shared fact ``govmail_dns_records`` with the first;
roles/dns serves it with the second; ``govmail dns`` and ``govmail check`` read the same fact through
:class:`govmail.inventory.Site`. Ansible runs these on the controller (see ``govmail.py`` beside).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError

try:
    from govmail import dns
    from govmail.errors import GovmailError
except ImportError:  # ansible-playbook from a Python without the package: use the checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from govmail import dns
    from govmail.errors import GovmailError


def govmail_dns_records(
    domain: str,
    mail_hostname: str,
    addresses: list,
    spf: str = "v=spf1 mx -all",
    dmarc_policy: str = "quarantine",
    dmarc_rua: str = "",
    dkim_selector: str = "",
    dkim_record: str = "",
) -> list[dict]:
    """The records the site publishes (govmail.dns.records): ``[{"name", "type", "value"}, ...]``.

    Raises AnsibleFilterError with govmail.dns's one-line message naming the malformed fact.
    """
    try:
        return dns.records(
            str(domain), str(mail_hostname), list(addresses or []), spf=str(spf),
            dmarc_policy=str(dmarc_policy), dmarc_rua=str(dmarc_rua or ""),
            dkim_selector=str(dkim_selector or ""), dkim_record=str(dkim_record or ""),
        )  # fmt: skip
    except GovmailError as exc:
        raise AnsibleFilterError(str(exc)) from None


def govmail_dns_zone_line(record: dict, ttl: int = 3600) -> str:
    """One record as a zone-file line (govmail.dns.zone_line): TXT quoted and cut at 255 bytes."""
    return dns.zone_line(dict(record), int(ttl))


class FilterModule:
    """govmail_dns_records, govmail_dns_zone_line."""

    def filters(self) -> dict:
        return {"govmail_dns_records": govmail_dns_records, "govmail_dns_zone_line": govmail_dns_zone_line}

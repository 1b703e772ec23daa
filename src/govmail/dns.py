"""The DNS records a site must publish for its mail: one list, computed once.

:func:`records` is the one fact (DESIGN.md "One fact in one place"): ``govmail dns`` prints it,
``govmail check`` asks each host's resolver for it (:mod:`govmail.health`), and roles/dns serves it
(through the ``govmail_dns_records`` filter, which ``roles/govmail/defaults/main.yml`` uses to
define the shared fact ``govmail_dns_records``). Nothing here sends a query.

A record (the JSON of ``govmail dns --json``, ``{"records": [...]}``)::

    {"name": "quangtri.gov.vn.", "type": "MX", "value": "10 mail.quangtri.gov.vn."}

Names are absolute (trailing dot), lower case. ``value`` is the record's data in zone-file
presentation, except TXT, whose value is the text itself (unquoted, unsplit; :func:`zone_line`
quotes it and cuts it into strings of at most 255 bytes, RFC 1035 §3.3.14).

The records, from the shared facts:

- ``MX`` of ``govmail_domain`` -> ``govmail_mail_hostname`` (preference :data:`MX_PREFERENCE`);
- ``A``/``AAAA`` of ``govmail_mail_hostname`` -> each of ``govmail_dns_addresses`` (the public
  addresses the mail host name is reached at);
- ``PTR`` of each such address -> ``govmail_mail_hostname`` (receivers check forward-confirmed
  reverse DNS of the sending address);
- SPF ``TXT`` of the domain: ``govmail_dns_spf`` (default ``v=spf1 mx -all``: only the domain's MX
  hosts send for it; RFC 7208);
- DMARC ``TXT`` of ``_dmarc.<domain>``: ``v=DMARC1; p=<govmail_dns_dmarc_policy>`` and, when
  ``govmail_dns_dmarc_rua`` names a mailbox, ``rua=mailto:<it>`` (RFC 7489 §6.3);
- DKIM ``TXT`` of ``<govmail_dkim_selector>._domainkey.<domain>``: the public half of the site's
  key (govmail.dkim; RFC 6376 §3.6.2), with which roles/filter signs the domain's outbound mail.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from .errors import GovmailError

MX_PREFERENCE = 10
DMARC_POLICIES = ("none", "quarantine", "reject")  # RFC 7489 §6.3 "p"
TYPES = ("MX", "A", "AAAA", "PTR", "TXT")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DnsError(GovmailError):
    """A shared fact the records are made from is missing or malformed."""


def _host_name(value: Any, variable: str) -> str:
    name = str(value or "").strip().lower().rstrip(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")) or "." not in name:
        raise DnsError(f"{variable} is {value!r}: give a host name such as mail.quangtri.gov.vn")
    return name


def _addresses(values: Any) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if isinstance(values, str) or not isinstance(values, Iterable) or not values:
        raise DnsError(
            f"govmail_dns_addresses is {values!r}: list the public addresses of the mail host name, e.g. [203.0.113.25]"
        )
    found = []
    for value in values:
        try:
            found.append(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise DnsError(f"govmail_dns_addresses has {value!r}, which is not an IPv4 or IPv6 address") from None
    return found


def records(
    domain: str,
    mail_hostname: str,
    addresses: Iterable[str],
    *,
    spf: str = "v=spf1 mx -all",
    dmarc_policy: str = "quarantine",
    dmarc_rua: str = "",
    dkim_selector: str = "",
    dkim_record: str = "",
) -> list[dict[str, str]]:
    """Every record the site must publish (module docstring), in a stable order.

    Arguments are the shared facts of the same names (``govmail_domain``, ``govmail_mail_hostname``,
    ``govmail_dns_addresses``, ``govmail_dns_spf``, ``govmail_dns_dmarc_policy``,
    ``govmail_dns_dmarc_rua``, ``govmail_dkim_selector``, ``govmail_dkim_record``: the TXT value of
    the site's DKIM key, govmail.dkim.txt_value; no DKIM record when either is empty). Raises
    :class:`DnsError` naming the fact that is malformed.
    """
    zone = _host_name(domain, "govmail_domain")
    host = _host_name(mail_hostname, "govmail_mail_hostname")
    found = _addresses(addresses)
    spf = str(spf or "").strip()
    if not spf.startswith("v=spf1"):
        raise DnsError(f"govmail_dns_spf is {spf!r}: an SPF record starts with v=spf1 (RFC 7208 §4.5)")
    if dmarc_policy not in DMARC_POLICIES:
        raise DnsError(f"govmail_dns_dmarc_policy is {dmarc_policy!r}: give one of {', '.join(DMARC_POLICIES)}")
    dmarc = f"v=DMARC1; p={dmarc_policy}"
    if dmarc_rua:
        if "@" not in str(dmarc_rua):
            raise DnsError(f"govmail_dns_dmarc_rua is {dmarc_rua!r}: give a mailbox address or leave it empty")
        dmarc += f"; rua=mailto:{dmarc_rua}"
    rows = [{"name": f"{zone}.", "type": "MX", "value": f"{MX_PREFERENCE} {host}."}]
    rows += [{"name": f"{host}.", "type": "A" if a.version == 4 else "AAAA", "value": str(a)} for a in found]
    rows += [{"name": f"{a.reverse_pointer}.", "type": "PTR", "value": f"{host}."} for a in found]
    rows.append({"name": f"{zone}.", "type": "TXT", "value": spf})
    rows.append({"name": f"_dmarc.{zone}.", "type": "TXT", "value": dmarc})
    if dkim_selector and dkim_record:
        if not str(dkim_record).startswith("v=DKIM1;"):
            raise DnsError(f"govmail_dkim_record is {str(dkim_record)[:40]!r}...: a DKIM record starts with v=DKIM1;")
        rows.append({"name": f"{dkim_selector}._domainkey.{zone}.", "type": "TXT", "value": str(dkim_record)})
    return rows


def txt_strings(text: str) -> list[str]:
    """``text`` cut into character-strings of at most 255 bytes (RFC 1035 §3.3.14), ASCII only."""
    data = text.encode("ascii")
    return [data[i : i + 255].decode("ascii") for i in range(0, len(data), 255)] or [""]


def zone_line(record: dict[str, str], ttl: int = 3600) -> str:
    """``record`` as one zone-file line (what unbound's ``local-data`` takes): TXT quoted and cut."""
    value = record["value"]
    if record["type"] == "TXT":
        value = " ".join(f'"{part}"' for part in txt_strings(value))
    return f"{record['name']} {ttl} IN {record['type']} {value}"


def normalise(record_type: str, value: str) -> str:
    """An answer or an expected value in one comparable form: lower-case names with the trailing
    dot, TXT strings joined (a resolver shows ``"v=DKIM1; ..." "...rest"``), addresses canonical."""
    text = value.strip()
    if record_type == "TXT":
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
        return "".join(parts) if parts else text
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    text = " ".join(text.lower().split())
    return text if text.endswith(".") else text + "."


def site_records(site: Any) -> list[dict[str, str]]:
    """The shared fact ``govmail_dns_records`` of a site (a :class:`govmail.inventory.Site`), as
    Ansible templates it: the same list roles/dns serves. Raises :class:`DnsError` (one line naming
    the malformed fact) or :class:`govmail.errors.InventoryError`."""
    from .errors import InventoryError

    marker = "The filter plugin 'govmail_dns_records' failed: "
    try:
        found = site.value("govmail_dns_records")
    except InventoryError as exc:
        if marker not in str(exc):
            raise
        # the filter's own message names the malformed fact: keep it, drop Ansible's wrapping
        reason = str(exc).split(marker, 1)[1].splitlines()[0]
        raise DnsError(f"{reason} (inventory {site.inventory_dir})") from None
    if not isinstance(found, list):
        raise DnsError(f"govmail_dns_records is {found!r} in inventory {site.inventory_dir}: leave it to its default")
    return [{"name": str(r["name"]), "type": str(r["type"]), "value": str(r["value"])} for r in found]

"""`govmail dns`: the DNS records the site must publish (the one list of govmail.dns)."""

from __future__ import annotations

from rich.table import Table

from .. import dns
from ..inventory import Site
from .common import InventoryOption, JsonOption, _inventory, _out, _print_json, app, handle_errors


@app.command("dns")
@handle_errors
def dns_records(inventory: InventoryOption = None, json_output: JsonOption = False) -> None:
    """The DNS records to publish for the site: MX, A/AAAA and PTR of the mail host name, SPF, DMARC.

    The same list roles/dns serves and `govmail check` asks each host's resolver for
    (govmail_dns_records, roles/govmail/defaults/main.yml). JSON: {"records": [{"name", "type", "value"}]}.
    """
    _, inventory_dir = _inventory(inventory)
    found = dns.site_records(Site(inventory_dir))
    if json_output:
        _print_json({"records": found})
        return
    table = Table(show_edge=False)
    for column in ("name", "type", "value"):
        table.add_column(column, no_wrap=column != "value")
    for record in found:
        table.add_row(record["name"], record["type"], record["value"])
    _out().print(table)

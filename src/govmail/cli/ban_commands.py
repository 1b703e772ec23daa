"""`govmail unban ADDRESS`: lift fail2ban's brute-force block of an address on every host running it."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import bans
from ..inventory import Site
from .common import InventoryOption, JsonOption, _inventory, _print_json, app, handle_errors


@app.command("unban")
@handle_errors
def unban(
    address: Annotated[str, typer.Argument(help="The banned client's IP address, e.g. 192.0.2.10.")],
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Lift the brute-force ban of ADDRESS on every host that runs fail2ban (the mx, mailstore and
    webmail hosts: govmail.bans.GROUPS; roles/fail2ban), from every jail that holds it.

    --json prints {"address": A, "unbanned": [{"host": H, "jails": [...]}]}; a host whose jails
    list is empty had not banned the address.
    """
    address = bans.parse_address(address)  # a malformed address is refused before any host is asked
    _, inventory_dir = _inventory(inventory)
    report = bans.unban(Site(inventory_dir), address)
    if json_output:
        _print_json(report)
        return
    for entry in report["unbanned"]:
        jails = ", ".join(entry["jails"]) or "not banned there"
        typer.echo(f"{entry['host']}: {jails}")
    lifted = sum(1 for entry in report["unbanned"] if entry["jails"])
    typer.echo(f"{report['address']}: ban lifted on {lifted} of {len(report['unbanned'])} hosts running fail2ban")

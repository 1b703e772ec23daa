"""`govmail check`: the health of every host of a site, for people and for monitoring."""

from __future__ import annotations

import typer
from rich.table import Table

from .. import health
from ..errors import GovmailError
from .common import InventoryOption, JsonOption, _inventory, _out, _print_json, app

STATUS_STYLES = {"ok": "green", "warning": "yellow", "critical": "red"}
UNKNOWN_EXIT = 3  # the check itself could not run (Nagios' UNKNOWN): never mistaken for a warning


@app.command("check")
def check(
    inventory: InventoryOption = None,
    show_all: bool = typer.Option(False, "--all", help="List the checks that are ok too."),
    json_output: JsonOption = False,
) -> None:
    """Check every host: services, ports and TLS, certificates, queue, mail store, quotas, directory.

    Exit status: 0 ok, 1 warning, 2 critical (what a monitoring system reads); 3 when the check
    cannot run at all (the inventory is unreadable or a threshold is not a number). Thresholds are
    the inventory's govmail_check_* variables (roles/govmail/defaults/main.yml).
    """
    try:
        _, inventory_dir = _inventory(inventory)
        report = health.run(inventory_dir)
    except GovmailError as exc:
        typer.echo(f"govmail: {exc}", err=True)
        raise typer.Exit(UNKNOWN_EXIT) from None
    if json_output:
        _print_json(report)
    else:
        rows = [row for row in report["checks"] if show_all or row["status"] != "ok"]
        if rows:
            table = Table(show_edge=False)
            for column in ("status", "host", "service", "check", "detail"):
                table.add_column(column, no_wrap=column != "detail")
            for row in rows:
                style = STATUS_STYLES[row["status"]]
                table.add_row(
                    f"[{style}]{row['status']}[/{style}]", row["host"], row["service"], row["check"], row["detail"]
                )
            _out().print(table)
        typer.echo(health.summary(report))
    raise typer.Exit(health.EXIT_CODES[report["status"]])

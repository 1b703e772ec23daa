"""`govmail lifecycle run`: the inactivity lifecycle on the directory host."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import accounts, lifecycle, remote
from .common import (
    InventoryOption,
    JsonOption,
    _fail,
    _inventory,
    _out,
    _print_json,
    app,
    handle_errors,
)

# --- lifecycle -------------------------------------------------------------------------------

lifecycle_app = typer.Typer(
    help="Inactivity lifecycle (P6-P8): lock idle mailboxes, notify agencies, archive and delete.",
    no_args_is_help=True,
)
app.add_typer(lifecycle_app, name="lifecycle")


@lifecycle_app.command("run")
@handle_errors
def lifecycle_run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Act as if today were this date (YYYY-MM-DD).", show_default=False)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: change nothing, send nothing.")] = False,
    agency: Annotated[
        str | None,
        typer.Option(
            "--agency", help="Only this agency's mailboxes (abbreviation or unit.parent).", show_default=False
        ),
    ] = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Run the lifecycle now on the directory host (the daily timer runs the same program there).

    Idle personal mailboxes are locked after the profile's lock threshold; after the notice
    threshold the agency mailbox is told by mail; once the grace has passed the mailbox is archived
    (entry and Maildir) into the host's archive area and deleted.
    """
    command = ["govmail-lifecycle", "run", "--json"]
    if as_of:
        command += ["--as-of", lifecycle.parse_date(as_of).isoformat()]
    if dry_run:
        command.append("--dry-run")
    if agency:
        command += ["--agency", accounts.agency_local(agency)]
    _, inventory_dir = _inventory(inventory)
    runner = remote.directory_host(inventory_dir)
    completed = runner.run(command)
    try:
        report = json.loads(completed.stdout) if completed.stdout.strip() else None
    except ValueError:
        report = None
    if report is None:
        lines = completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"]
        detail = lines[-1].removeprefix("govmail-lifecycle: ")
        if completed.returncode == 127 or "not found" in detail:
            detail = f"govmail-lifecycle is not installed on {runner.description}: run playbooks/site.yml"
        raise lifecycle.LifecycleError(f"lifecycle run on {runner.description} failed: {detail}")
    if json_output:
        _print_json(report)
    else:
        _print_lifecycle(report)
    if report.get("errors"):
        first = report["errors"][0]
        more = f" (and {len(report['errors']) - 1} more)" if len(report["errors"]) > 1 else ""
        _fail(f"lifecycle run on {runner.description}: {first}{more}")


def _print_lifecycle(report: dict[str, Any]) -> None:
    table = Table(show_edge=False)
    for column in ("action", "address", "idle days", "deletion due", "agency notified", "result"):
        table.add_column(column, no_wrap=column == "address")
    for action in report["actions"]:
        if report["dry_run"]:
            result = "planned"
        else:
            result = f"failed: {action['error']}" if action["error"] else (action.get("archive") or "done")
        table.add_row(
            action["action"],
            action["address"],
            str(action["idle_days"]),
            action.get("deletion_due") or "",
            action.get("agency_mailbox") or "",
            result,
        )
    if report["actions"]:
        _out().print(table)
    mode = " (dry run: nothing changed)" if report["dry_run"] else ""
    typer.echo(f"{report['mailboxes']} mailboxes as of {report['as_of']} under {report['profile']}{mode}")


if __name__ == "__main__":
    app()

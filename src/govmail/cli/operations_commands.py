"""`govmail check` (the health of every host, for people and monitoring), `govmail daily-mail`,
`govmail report` (the yearly usage report) and `govmail message purge`."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import health, lifecycle, purge
from .. import report as usage_report
from ..errors import GovmailError
from .common import (
    InventoryOption,
    JsonOption,
    _inventory,
    _out,
    _print_json,
    app,
    directory_host_program,
    handle_errors,
)

STATUS_STYLES = {"ok": "green", "warning": "yellow", "critical": "red"}
UNKNOWN_EXIT = 3  # the check itself could not run (Nagios' UNKNOWN): never mistaken for a warning


@app.command("check")
def check(
    inventory: InventoryOption = None,
    show_all: Annotated[bool, typer.Option("--all", help="List the checks that are ok too.")] = False,
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


@app.command("daily-mail")
@handle_errors
def daily_mail(
    send: Annotated[bool, typer.Option("--send", help="Send it to the operators (else only show it).")] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="List the accounts due as if today were this date (YYYY-MM-DD).", show_default=False
        ),
    ] = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """The operators' daily mail, made now on the directory host (its timer sends it every morning).

    Sections: what failed, queue and disk, certificates near expiry, backups, accounts due to be
    locked, noticed or deleted in the next 7 days, failed-login hot spots. Vietnamese by default
    (operations_daily_mail_language).
    """
    arguments = ["--json", *(["--send"] if send else [])]
    if as_of:
        arguments += ["--as-of", lifecycle.parse_date(as_of).isoformat()]
    report = directory_host_program(inventory, "govmail-daily-mail", arguments, health.CheckError, "daily mail")
    if json_output:
        _print_json(report)
    else:
        typer.echo(f"Subject: {report['subject']}\n\n{report['body']}")
        if report["sent_to"]:
            typer.echo(f"(sent to {report['sent_to']})")


@app.command("report")
@handle_errors
def report(
    year: Annotated[int, typer.Option("--year", help="The year reported, e.g. 2026.")],
    agency: Annotated[
        str | None, typer.Option("--agency", help="Only this agency (abbreviation, e.g. sokhcn).", show_default=False)
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="csv (UTF-8 with BOM), html (with charts) or json.")
    ] = "",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: standard output).")
    ] = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Yearly usage report per agency and unit (O5; QT §13.1.b): mailboxes by kind and status,
    quota used and allocated, inactive mailboxes, messages per month, and the working days on
    which an agency mailbox was not checked in the morning or afternoon (QT §12).

    The figures come from the daily roll-ups the directory host keeps (govmail_usage_dir).
    Without --format: a summary for people (--json: the JSON document).
    """
    chosen = usage_report.check_format(output_format) if output_format else ("json" if json_output else "")
    if not 2000 <= year <= 2999:
        raise usage_report.ReportError(f"--year {year} is not a year: write it like 2026")
    arguments = ["report", "--json", "--year", str(year), *(["--agency", agency] if agency else [])]
    document = directory_host_program(inventory, "govmail-usage", arguments, usage_report.ReportError, "usage report")
    if chosen == "json":
        text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    elif chosen == "csv":
        text = usage_report.to_csv(document)
    elif chosen == "html":
        text = usage_report.to_html(document)
    else:
        text = "\n".join(usage_report.summary(document)) + "\n"
    if output:
        # CSV keeps its byte-order mark and CRLF rows as written
        output.write_bytes(text.encode("utf-8"))
        if not json_output:
            typer.echo(f"{output}: {len(text.encode('utf-8'))} bytes")
        return
    sys.stdout.write(text)


message_app = typer.Typer(help="Messages across mailboxes: purge a leaked secret document (QT §10.4, §11.3).")
app.add_typer(message_app, name="message")


@message_app.command("purge")
@handle_errors
def message_purge(
    message_id: Annotated[str, typer.Option("--message-id", help="Message-ID of the mail, <left@right>.")],
    sender: Annotated[
        str | None, typer.Option("--sender", help="Only copies from this sender.", show_default=False)
    ] = None,
    sent_on: Annotated[
        str | None, typer.Option("--date", help="Only copies sent on this day (YYYY-MM-DD).", show_default=False)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the copies; remove nothing.")] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove every copy of a message from every mailbox and folder (Sent and Trash included),
    with an audit record on the mail store host; lists the archives that still hold it."""
    purge.check_message_id(message_id)
    arguments = ["--json", "--message-id", message_id, "--operator", getpass.getuser()]
    if sender:
        arguments += ["--sender", sender]
    if sent_on:
        arguments += ["--date", lifecycle.parse_date(sent_on).isoformat()]
    if dry_run:
        arguments.append("--dry-run")
    report = directory_host_program(inventory, "govmail-purge", arguments, purge.PurgeError, "purge")
    if json_output:
        _print_json(report)
    else:
        verb = "would remove" if report["dry_run"] else "removed"
        for copy in report["removed"]:
            typer.echo(f"{verb} {copy['address']} {copy['folder']}")
        for archive in report["archives_still_holding"]:
            typer.echo(f"still in {archive['archive']} ({archive['kind']}; ages out: {archive['ages_out']})")
        typer.echo(f"{len(report['removed'])} copies of {report['message_id']}; audit record in {report['audit']}")

"""`govmail account ...`: mailbox accounts under the provincial rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from .. import account_import, accounts, delegation, errors, mailbox, remote
from ..errors import GovmailError
from .common import (
    AddressArgument,
    InventoryOption,
    JsonOption,
    ProfileOption,
    _directory,
    _err,
    _inventory,
    _out,
    _print_json,
    _profile,
    app,
    directory_host_program,
    handle_errors,
)

# --- account commands ------------------------------------------------------------------------

account_app = typer.Typer(
    help=(
        "Mailbox accounts in the directory (LDAPS as cn=admin): add, import, show, list, lock, unlock, "
        "terminate, delete, reset-password, passwd, set-quota, handover. Where it connects: GOVMAIL_LDAP_URI, "
        "GOVMAIL_SECRETS_DIR, GOVMAIL_LDAP_ADMIN_PASSWORD_FILE, GOVMAIL_LDAP_CA_FILE (docs/python-notes.md)."
    ),
    no_args_is_help=True,
)
app.add_typer(account_app, name="account")


def _print_rows(rows: list[dict[str, Any]], *, passwords_shown: bool = True) -> None:
    console = _out()
    table = Table(show_edge=False)
    for column in ("row", "address", "name", "kind", "agency") + (("initial password",) if passwords_shown else ()):
        copyable = column in ("address", "initial password")
        table.add_column(column, no_wrap=copyable, justify="right" if column == "row" else "left")
    for row in rows:
        cells = [str(row.get("row", "")), row["address"], row["name"], row["kind"], row["agency"]]
        if passwords_shown:
            cells.append(row.get("initial_password") or "")
        table.add_row(*cells)
    console.print(table)


def _change_line(result: dict[str, Any], verb: str) -> str:
    if result["changed"] and result["previous_status"] != result["status"]:
        line = f"{result['address']}: {verb} (was {result['previous_status']})"
    elif result["changed"]:
        line = f"{result['address']}: still {result['status']}"
    else:
        line = f"{result['address']}: already {result['status']}, nothing changed"
    if result.get("lockout_ended"):
        line += "; the lockout after failed logins is ended"
    return line


@account_app.command("add")
@handle_errors
def account_add(
    name: Annotated[str, typer.Argument(help="Full name in Vietnamese: the person's, or the agency's.")],
    agency: Annotated[
        str | None, typer.Option("--agency", help="The person's agency: abbreviation, or unit.parent for a sub-unit.")
    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="personal or agency.")] = "personal",
    abbreviation: Annotated[
        str | None, typer.Option("--abbreviation", help="Agency only: its abbreviation (address <abbr>@domain).")
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Agency only: the parent agency of a sub-unit (<unit>.<parent>@).")
    ] = None,
    quota: Annotated[
        str | None, typer.Option("--quota", help="Own quota, e.g. 3G (default 2G personal, 5G agency).")
    ] = None,
    profile: ProfileOption = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a person's mailbox, or an agency (its unit and agency mailbox), with an initial password.

    The initial password must be changed by the owner before the mailbox can be used (IMAP, POP3,
    SMTP refuse it until then): `govmail account passwd ADDRESS --old ... --new ...`.
    """
    if kind not in accounts.KINDS:
        raise accounts.AccountError(f"--kind {kind!r} is unknown: use personal or agency")
    if kind == "personal":
        if abbreviation or parent:
            raise accounts.AccountError("--abbreviation and --parent are for agencies: add --kind agency")
        if not agency:
            raise accounts.AccountError(f"the agency of {name!r} is missing: add --agency <abbreviation>, e.g. sokhcn")
    elif agency:
        raise accounts.AccountError(
            "--agency names a person's agency: for a new agency give --abbreviation (and --parent)"
        )
    elif not abbreviation:
        raise accounts.AccountError(f"the abbreviation of {name!r} is missing: add --abbreviation, e.g. sokhcn")
    policy_profile = _profile(inventory, profile)
    with _directory(inventory) as opened:
        if kind == "personal":
            result = accounts.add_person(opened, name, agency or "", profile=policy_profile, quota=quota)
        else:
            result = accounts.add_agency(
                opened, name, abbreviation or "", parent=parent, profile=policy_profile, quota=quota
            )
    if json_output:
        _print_json({key: result[key] for key in ("address", "dn", "initial_password", "kind", "name", "agency",
                                                  "quota_bytes")})  # fmt: skip
        return
    console = _out()
    console.print(Text.assemble(("created ", "bold"), result["address"], f"  ({result['dn']})"))
    console.print(Text.assemble(("initial password: ", "bold"), result["initial_password"]))
    console.print(f"the owner must change it before first use: govmail account passwd {result['address']}")


@account_app.command("import")
@handle_errors
def account_import_command(
    path: Annotated[Path, typer.Argument(help="UTF-8 CSV: name, agency[, kind[, quota]] (a header row is optional).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and show the addresses; change nothing.")
    ] = False,
    profile: ProfileOption = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create many mailboxes from a staff list. Every row is checked first: one bad row, no change.

    Agency rows (kind agency) write the abbreviation, or unit.parent, in the agency column and
    are created before the people. Prints each row's address and initial password.
    """
    policy_profile = _profile(inventory, profile)
    with _directory(inventory) as opened:
        try:
            if _err().is_terminal and not dry_run:
                with Progress(console=_err(), transient=True) as bar:
                    task = bar.add_task("import", total=None)
                    result = account_import.import_file(
                        opened, path, profile=policy_profile,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )  # fmt: skip
            else:
                result = account_import.import_file(opened, path, profile=policy_profile, dry_run=dry_run)
        except errors.ImportRowsError as exc:
            if json_output:
                _print_json(
                    {"file": exc.path, "dry_run": dry_run, "errors": [e.as_dict() for e in exc.errors], "rows": []}
                )
            else:
                for error in exc.errors:
                    typer.echo(error.error, err=True)
            raise
        except errors.ImportApplyError as exc:
            if json_output:
                _print_json(exc.report)
            elif exc.report["rows"]:
                typer.echo("applied before the failure (keep these passwords):")
                _print_rows(exc.report["rows"])
            raise
    if json_output:
        _print_json(result)
        return
    _print_rows(result["rows"], passwords_shown=not dry_run)
    verb = "would create" if dry_run else "created"
    typer.echo(f"{verb} {len(result['rows'])} mailboxes from {path}")


def _show_table(document: dict[str, Any]) -> None:
    table = Table(show_header=False, show_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", no_wrap=False)
    for key, value in document.items():
        if key == "quota_bytes":
            value = f"{accounts.format_size(value)} ({value} bytes)"
        elif isinstance(value, list):
            value = ", ".join(value) or "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        table.add_row(key, "-" if value is None else str(value))
    _out().print(table)


@account_app.command("show")
@handle_errors
def account_show(address: AddressArgument, inventory: InventoryOption = None, json_output: JsonOption = False) -> None:
    """One mailbox: name, kind, agency, quota, status, last login, password state, delegates."""
    with _directory(inventory) as opened:
        document = accounts.show(opened, address)
    if json_output:
        _print_json(document)
    else:
        _show_table(document)


@account_app.command("list")
@handle_errors
def account_list(
    agency: Annotated[str | None, typer.Option("--agency", help="Only this agency (and its sub-units).")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only active, locked or terminated mailboxes.")] = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Mailboxes, sorted by address."""
    with _directory(inventory) as opened:
        documents = accounts.list_mailboxes(opened, agency=agency, status=status)
    if json_output:
        _print_json(documents)
        return
    table = Table(show_edge=False)
    for column in ("address", "name", "kind", "agency", "status", "quota", "last login"):
        table.add_column(column, no_wrap=column == "address")
    for doc in documents:
        status_text = (doc["status"] or "-") + (" (must change password)" if doc["must_change_password"] else "")
        table.add_row(
            doc["address"], doc["name"] or "", doc["kind"], doc["agency"] or "", status_text,
            accounts.format_size(doc["quota_bytes"]), doc["last_login"] or "never",
        )  # fmt: skip
    _out().print(table)
    typer.echo(f"{len(documents)} mailbox{'' if len(documents) == 1 else 'es'}")


def _lifecycle(action: Callable[..., dict[str, Any]], verb: str, address: str, inventory: Path | None,
               json_output: bool, **kwargs: Any) -> None:  # fmt: skip
    with _directory(inventory) as opened:
        result = action(opened, address, **kwargs)
    if json_output:
        _print_json(result)
    else:
        typer.echo(_change_line(result, verb))


@account_app.command("lock")
@handle_errors
def account_lock(address: AddressArgument, inventory: InventoryOption = None, json_output: JsonOption = False) -> None:
    """Lock a mailbox (leaked password, misuse, inactivity): logins refused, mail still delivered."""
    _lifecycle(mailbox.lock, "locked", address, inventory, json_output)


@account_app.command("unlock")
@handle_errors
def account_unlock(
    address: AddressArgument,
    force: Annotated[bool, typer.Option("--force", help="Also reopen a terminated mailbox.")] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Make a locked mailbox active again, and end a lockout after failed logins."""
    _lifecycle(mailbox.unlock, "active again", address, inventory, json_output, force=force)


@account_app.command("terminate")
@handle_errors
def account_terminate(
    address: AddressArgument, inventory: InventoryOption = None, json_output: JsonOption = False
) -> None:
    """Close a mailbox (retired, resigned, transferred): logins and mail to it refused; data kept."""
    _lifecycle(mailbox.terminate, "terminated", address, inventory, json_output)


@account_app.command("delete")
@handle_errors
def account_delete(
    address: AddressArgument,
    force: Annotated[bool, typer.Option("--force", help="Delete even if the mailbox is not terminated.")] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete a terminated mailbox (--force for any status), as the lifecycle deletes one.

    On the directory host (``govmail-lifecycle delete``): the entry and the Maildir are archived
    into the lifecycle's archive (``govmail_lifecycle_archive_dir``/<address>-<date>.tar.gz, read
    back and counted), then both are removed, so the address, if given to someone else later,
    starts with an empty mailbox. Nothing is removed when the archive fails.
    """
    arguments = ["delete", address, "--json", *(["--force"] if force else [])]
    result = directory_host_program(inventory, "govmail-lifecycle", arguments, errors.AccountError, "delete")
    if json_output:
        _print_json(result)
    else:
        unit = " with its agency's empty unit" if result["agency_unit_removed"] else ""
        typer.echo(f"{result['address']}: deleted{unit}; its entry and mail are archived in {result['archive']}")


@account_app.command("reset-password")
@handle_errors
def account_reset_password(
    address: AddressArgument,
    password: Annotated[
        str | None,
        typer.Option("--password", help="Use this initial password (checked by policy) instead of a generated one."),
    ] = None,
    profile: ProfileOption = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give a mailbox a new initial password; its owner must change it before using the mailbox."""
    policy_profile = _profile(inventory, profile)
    with _directory(inventory) as opened:
        result = accounts.reset_password(opened, address, profile=policy_profile, password=password)
    if json_output:
        _print_json(result)
        return
    _out().print(Text.assemble(("initial password: ", "bold"), result["initial_password"]))
    typer.echo(f"the owner must change it before first use: govmail account passwd {result['address']}")


@account_app.command("passwd")
@handle_errors
def account_passwd(
    address: AddressArgument,
    old: Annotated[str, typer.Option("--old", prompt="Old password", hide_input=True, help="The current password.")],
    new: Annotated[
        str,
        typer.Option(
            "--new", prompt="New password", hide_input=True, confirmation_prompt=True, help="The new password."
        ),
    ],
    profile: ProfileOption = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """The owner's own password change: checks the policy, verifies OLD as the owner, then changes it.

    Without --old/--new the passwords are asked for (not echoed).
    """
    policy_profile = _profile(inventory, profile)
    with _directory(inventory) as opened:
        result = accounts.change_password(opened, address, old=old, new=new, profile=policy_profile)
    if json_output:
        _print_json(result)
    else:
        typer.echo(f"{result['address']}: password changed")


@account_app.command("set-quota")
@handle_errors
def account_set_quota(
    address: AddressArgument,
    size: Annotated[str, typer.Argument(help="New quota: 500M, 3G, 1T (binary units) or bytes.")],
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Give a mailbox its own quota (at least 2G personal, 5G agency: REQUIREMENTS M6)."""
    with _directory(inventory) as opened:
        result = accounts.set_quota(opened, address, size)
    if json_output:
        _print_json(result)
    else:
        typer.echo(
            f"{result['address']}: quota {accounts.format_size(result['quota_bytes'])} "
            f"(was {accounts.format_size(result['previous_quota_bytes'])})"
        )


@account_app.command("handover")
@handle_errors
def account_handover(
    address: Annotated[str, typer.Argument(help="The agency mailbox's address (or its local part).")],
    to: Annotated[str, typer.Option("--to", help="The new clerk's own mailbox (a person of that agency).")],
    profile: ProfileOption = None,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Hand an agency mailbox over to a new clerk (M8): only the new clerk has access afterwards.

    The clerk logs in with the clerk's own password as "<agency address>*<own address>" (IMAP, POP3,
    SMTP). Previous clerks lose access, open sessions of the agency mailbox are ended on the mail
    host, and the agency mailbox gets a new password (to be changed at first direct use).
    """
    policy_profile = _profile(inventory, profile)
    _, inventory_dir = _inventory(inventory)
    with _directory(inventory) as opened:
        result = delegation.handover(opened, address, to=to, profile=policy_profile)
    result["sessions_ended"], result["sessions_note"] = _kick(inventory_dir, result["address"])
    if json_output:
        _print_json(result)
        return
    typer.echo(f"{result['address']}: handed over to {result['delegate']}")
    if result["removed_delegates"]:
        typer.echo(f"no longer a clerk of it: {', '.join(result['removed_delegates'])}")
    typer.echo(f"the clerk logs in as {result['login']} with the clerk's own password")
    _out().print(Text.assemble(("new agency mailbox password: ", "bold"), result["agency_password"]))
    if not result["sessions_ended"]:
        typer.echo(f"warning: {result['sessions_note']}", err=True)


def _kick(inventory_dir: Path, address: str) -> tuple[bool, str | None]:
    """End the open IMAP/POP3 sessions of ``address`` on the mail host; (done, why not)."""
    try:
        runner = remote.directory_host(inventory_dir)
        completed = runner.run(["doveadm", "kick", address], timeout=60)
    except GovmailError as exc:
        note = f"open sessions of {address} were not ended ({exc})"
        return False, f"{note}: run `doveadm kick {address}` on the mail host"
    if completed.returncode not in (0, 68):  # 68: EX_NOUSER, nobody was connected
        detail = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
        return False, f"doveadm kick {address} failed on {runner.description}: {detail}"
    return True, None

"""`govmail backup run|list` and `govmail restore`: the host's govmail-backup, run from the controller."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .. import drill as drill_module
from .. import remote
from ..errors import BackupError
from ..inventory import Site
from ..project import SECRETS_ENV_VAR, default_secrets_dir
from .common import InventoryOption, JsonOption, _inventory, _out, _print_json, app, handle_errors

backup_app = typer.Typer(
    help="Backups (O1): encrypted, append-only archives of mail, directory, keys, configuration and logs.",
    no_args_is_help=True,
)
app.add_typer(backup_app, name="backup")


HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="A backup client of the site (a host of backup_client_groups, e.g. a webmail host; "
        "default: the directory host).",
        show_default=False,
    ),
]


def _host_json(command: list[str], inventory: str | None, *, progress: bool = False, host: str | None = None) -> Any:
    """Run ``govmail-backup COMMAND`` on the directory host (or the backup client ``host``) and
    read its JSON answer.

    Raises :class:`BackupError` with the host's one-line error when it fails, and when ``host``
    is not one of the site's backup clients (:meth:`govmail.inventory.Site.backup_clients`).
    """
    _, inventory_dir = _inventory(inventory)
    if host is None:
        runner = remote.directory_host(inventory_dir)
    else:
        site = Site(inventory_dir)
        clients = site.backup_clients()
        if host not in clients:
            raise BackupError(
                f"--host {host} is not a backup client of {inventory_dir.name} "
                f"(its clients: {', '.join(clients) or 'none'}): give one of them"
            )
        runner = remote.host_runner(site, host)
    completed = runner.run(["govmail-backup", *command], progress=progress)
    if completed.returncode == 0:
        try:
            return json.loads(completed.stdout)
        except ValueError:
            pass
    lines = completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"]
    detail = lines[-1].removeprefix("govmail-backup: ")
    if completed.returncode == 127 or "not found" in detail:
        detail = f"govmail-backup is not installed on {runner.description}: run playbooks/site.yml"
    raise BackupError(f"{command[0]} on {runner.description} failed: {detail}")


@backup_app.command("run")
@handle_errors
def backup_run(inventory: InventoryOption = None, host: HostOption = None, json_output: JsonOption = False) -> None:
    """Back up the directory host (or --host) now (its daily timer runs the same program); progress on stderr.

    JSON: {"archive": NAME, "time": ISO-8601, "mailboxes": N, "messages": N, "bytes_added": N}
    (a webmail host's archive: 0 mailboxes, 0 messages).
    """
    report = _host_json(["run", "--json"], inventory, progress=True, host=host)
    if json_output:
        _print_json(report)
    else:
        typer.echo(
            f"archive {report['archive']} at {report['time']}: {report['mailboxes']} mailboxes, "
            f"{report['messages']} messages, {report['bytes_added']} bytes added"
        )


@backup_app.command("list")
@handle_errors
def backup_list(inventory: InventoryOption = None, host: HostOption = None, json_output: JsonOption = False) -> None:
    """The archives of the directory host (or --host), oldest first.

    JSON: [{"archive": NAME, "time": ISO-8601, "mailboxes": N, "messages": N}, ...].
    """
    archives = _host_json(["list", "--json"], inventory, host=host)
    if json_output:
        _print_json(archives)
        return
    table = Table(show_edge=False)
    for column in ("archive", "time", "mailboxes", "messages"):
        table.add_column(column)
    for item in archives:
        table.add_row(item["archive"], item["time"], str(item["mailboxes"]), str(item["messages"]))
    _out().print(table)


@app.command("restore")
@handle_errors
def restore(
    archive: Annotated[str, typer.Option("--archive", help="Archive name (govmail backup list) or latest.")] = "latest",
    all_mailboxes: Annotated[
        bool,
        typer.Option("--all", help="The directory, every mailbox, data files, webmail database, filter state."),
    ] = False,
    mailbox: Annotated[
        str | None, typer.Option("--mailbox", help="One mailbox (its address).", show_default=False)
    ] = None,
    directory: Annotated[bool, typer.Option("--directory", help="The directory's data alone.")] = False,
    into_folder: Annotated[
        bool, typer.Option("--into-folder", help="Into the folder Restored/<today>, beside newer mail.")
    ] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Put archived mail back: messages missing from a folder come back byte for byte, with their flags.

    Messages still there (whatever their flags now) and newer mail are left alone, so restoring the
    same archive twice changes nothing. ``--directory`` loads the archived directory (slapadd; the
    old database is kept aside) unless it already matches; ``--all`` does that, then every
    mailbox, then the other data files and the old logs (beside the new ones), the webmail's
    database where the directory host runs it (Roundcube's SQLite file or PostgreSQL database:
    address books, identities, settings) and the content filter's learned state (Valkey), each
    unchanged when it already holds the archived content. JSON: {"archive": NAME, "mailboxes":
    [{"address": A, "restored": N, "folder": F|null, "user": bool}], "directory": {"entries": N,
    "changed": bool}} (``directory`` with --all/--directory), with --all also "files":
    {"data_files": N, "logs": PATH, "logs_changed": bool}, "databases": [{"name": N, "type":
    "sqlite3"|"pgsql", "archived": bool, "changed": bool}] and "filter": {"archived": bool,
    "keys": N, "changed": bool}.
    """
    if [all_mailboxes, bool(mailbox), directory].count(True) != 1:
        raise BackupError("say what to restore: --all, --mailbox ADDRESS or --directory (one of them)")
    if mailbox is not None and mailbox.count("@") != 1:
        raise BackupError(f"--mailbox {mailbox!r} is not a mail address: give the full address")
    if directory:
        report = _host_json(["restore", "--archive", archive, "--directory"], inventory, progress=True)
        if json_output:
            _print_json(report)
        else:
            state = "restored" if report["directory"]["changed"] else "already as archived"
            typer.echo(f"directory: {report['directory']['entries']} entries {state} ({report['archive']})")
        return
    command = ["restore", "--archive", archive] + (["--all"] if all_mailboxes else ["--mailbox", str(mailbox).lower()])
    if into_folder:
        command.append("--into-folder")
    report = _host_json(command, inventory, progress=True)
    if json_output:
        _print_json(report)
        return
    for item in report["mailboxes"]:
        where = f" into {item['folder']}" if item["folder"] else ""
        typer.echo(f"{item['address']}: {item['restored']} messages restored{where} from {report['archive']}")
    for item in report.get("databases", []):
        state = "restored" if item["changed"] else "already as archived" if item["archived"] else "not in the archive"
        typer.echo(f"webmail database {item['name']} ({item['type']}): {state}")


# --- deleted mail without a backup (lazy_expunge) ----------------------------------------------

mailbox_app = typer.Typer(help="Mailbox contents: bring back deleted mail.", no_args_is_help=True)
app.add_typer(mailbox_app, name="mailbox")


@mailbox_app.command("undelete")
@handle_errors
def mailbox_undelete(
    address: Annotated[str, typer.Argument(help="The mailbox's full address.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only mail expunged on or after YYYY-MM-DD.", show_default=False)
    ] = None,
    folder: Annotated[str, typer.Option("--folder", help="Folder to put the mail back into.")] = "INBOX",
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Move messages the user expunged (kept by Dovecot's lazy_expunge for govmail_expunged_days) back.

    JSON: {"restored": N}. The folder that keeps them is the inventory's govmail_expunged_folder.
    """
    if address.count("@") != 1:
        raise BackupError(f"{address!r} is not a mail address: give the full address")
    if since is not None:
        try:
            since = date.fromisoformat(since).isoformat()
        except ValueError:
            raise BackupError(f"--since {since!r} is not a date: write YYYY-MM-DD") from None
    _, inventory_dir = _inventory(inventory)
    site = Site(inventory_dir)
    kept = str(site.required("govmail_expunged_folder"))
    runner = remote.directory_host(inventory_dir, site=site)
    query = ["mailbox", kept, *(["SAVEDSINCE", since] if since else [])]
    found = runner.run(["doveadm", "search", "-u", address.lower(), *query])
    if found.returncode != 0:
        detail = (found.stderr.strip().splitlines() or [f"exit {found.returncode}"])[-1]
        raise BackupError(f"cannot read {kept} of {address} on {runner.description}: {detail}")
    count = len(found.stdout.strip().splitlines())
    if count:
        moved = runner.run(["doveadm", "move", "-u", address.lower(), folder, *query])
        if moved.returncode != 0:
            detail = (moved.stderr.strip().splitlines() or [f"exit {moved.returncode}"])[-1]
            raise BackupError(f"cannot move mail of {address} back into {folder!r}: {detail}")
    if json_output:
        _print_json({"restored": count})
    else:
        typer.echo(f"{count} messages of {address} put back into {folder}")


# --- the restore drill --------------------------------------------------------------------------


@app.command("drill")
@handle_errors
def drill(
    archive: Annotated[str, typer.Option("--archive", help="Archive name (govmail backup list) or latest.")] = "latest",
    report: Annotated[
        Path | None, typer.Option("--report", help="Directory of the JSON and HTML reports (default .lab/drills).")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Name prefix of the disposable containers and network.")
    ] = drill_module.DEFAULT_PREFIX,
    subnet: Annotated[
        str, typer.Option("--subnet", help="Subnet of the disposable network.")
    ] = drill_module.DEFAULT_SUBNET,
    port_base: Annotated[
        int, typer.Option("--port-base", help="Restored SMTP/IMAPS on 127.0.0.1:<base>+25/+993.")
    ] = drill_module.DEFAULT_PORT_BASE,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave the restored stack up to inspect it (remove it later with --remove)."),
    ] = False,
    remove: Annotated[
        bool, typer.Option("--remove", help="Only remove a stack an earlier --keep left (same --prefix).")
    ] = False,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Restore an archive into a disposable stack beside the running one and prove nothing was lost.

    Phases on stderr; RTO against A4's 4 working hours, RPO; the stack is removed at the end unless
    --keep, which leaves it with its inventory and secrets (report key "kept"; the secrets are the
    site's, decrypted: remove the stack with --remove when done).
    JSON: {"result": "pass"|"fail", "archive", "rto_seconds", "rpo_seconds", "mailboxes": [{"address",
    "messages", "ok"}], "directory": {"entries", "ok"}, "mismatches": [...], "report_html": PATH, ...}.
    --remove (with the --report, --prefix and --inventory of the --keep run): {"removed": [container,
    ...], "network": NAME, "secrets": PATH|null (the decrypted secrets' directory removed)}.
    Exit status 1 when the result is "fail" (the first mismatches on stderr).
    """
    if keep and remove:
        raise BackupError("--keep and --remove: give one of them (--remove takes away what --keep left)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", prefix):
        raise BackupError(f"--prefix {prefix!r}: lower-case letters, digits and '-' only")
    try:
        ipaddress.ip_network(subnet)
    except ValueError:
        raise BackupError(f"--subnet {subnet!r} is not a network such as 172.29.51.0/24") from None
    if not 1024 <= port_base <= 64000:
        raise BackupError(f"--port-base {port_base}: give a number from 1024 to 64000")
    project, inventory_dir = _inventory(inventory)
    site = Site(inventory_dir, project.root)
    secrets = Path(
        os.environ.get(SECRETS_ENV_VAR) or site.value("govmail_secrets_dir") or default_secrets_dir(project.root)
    ).expanduser()
    options = drill_module.Options(prefix=prefix, subnet=subnet, port_base=port_base, keep=keep)
    report_dir = (report or project.root / ".lab" / "drills").resolve()
    the_drill = drill_module.Drill(inventory_dir, project.root, secrets, report_dir, options)
    if remove:
        removed = the_drill.remove_kept()
        if removed["removed"] and removed["secrets"] is None:
            typer.echo(f"govmail: warning: no kept stack directory {the_drill.kept_dir()}: if the --keep run had "
                       "another --report, delete <that report>/<prefix>-stack (it holds decrypted secrets)",
                       err=True)  # fmt: skip
        if json_output:
            _print_json(removed)
        else:
            typer.echo(f"removed {', '.join(removed['removed']) or 'nothing'} and network {removed['network']}")
        return
    result = the_drill.run(archive)
    if json_output:
        _print_json(result)
    else:
        typer.echo(
            f"drill of archive {result['archive']}: {result['result'].upper()}, RTO {result['rto_seconds']} s "
            f"(A4 bound {result['rto_bound_seconds']} s), RPO {result['rpo_seconds']} s; report {result['report_html']}"
        )
        if "kept" in result:
            typer.echo(f"stack kept: inventory {result['kept']['inventory']}; remove it with --remove")
    if result["result"] != "pass":
        for line in result["mismatches"][:5]:
            typer.echo(f"govmail: drill mismatch: {line}", err=True)
        raise typer.Exit(1)

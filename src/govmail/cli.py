"""The ``govmail`` command line: thin functions that call the modules and render their results.

Tables for people, ``--json`` for scripts; progress goes to stderr. Every :class:`GovmailError`
becomes one line ``govmail: <message>`` on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from . import __version__, accounts, contract, directory, lab, lifecycle, mailbox, playbook, remote
from .directory import Directory
from .errors import ContractError, GovmailError, LabError
from .project import Project

app = typer.Typer(
    name="govmail",
    help="Official-duty mail appliance: local lab and operations around the Ansible content.",
    no_args_is_help=True,
    add_completion=False,
)
lab_app = typer.Typer(
    help="The local lab: mail1 + backup1 as systemd containers on this machine's Docker engine.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

SERVICE_LABELS = {
    "smtp": "SMTP (MX)",
    "submission": "Submission (STARTTLS)",
    "submissions": "Submissions (implicit TLS)",
    "pop3": "POP3",
    "pop3s": "POP3S (implicit TLS)",
    "imap": "IMAP",
    "imaps": "IMAPS (implicit TLS)",
    "managesieve": "ManageSieve",
    "ldap": "LDAP",
    "ldaps": "LDAPS (implicit TLS)",
    "http": "HTTP (webmail)",
    "https": "HTTPS (webmail)",
}
STATE_STYLES = {"running": "green", "stopped": "yellow", "absent": "red"}

JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON document for scripts.")]
F = TypeVar("F", bound=Callable[..., Any])


def _out() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200  # piped or captured: never cut an address or a password
    return console


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"govmail: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """One-line error and non-zero exit for every GovmailError (and Ctrl-C) raised by a command."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GovmailError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


def _step(message: str) -> None:
    _err().print(Text.assemble(("• ", "cyan"), message))


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"govmail {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """govmail: mail appliance tools."""


# --- rendering -------------------------------------------------------------------------------


def _render_status(document: dict[str, Any]) -> None:
    console = _out()
    console.print(Text.assemble(("govmail lab ", "bold"), f"{document['domain']} — {document['mail_hostname']}"))
    hosts = Text("hosts: ")
    for index, (name, state) in enumerate(document["hosts"].items()):
        hosts.append(", " if index else "")
        hosts.append(f"{name} ")
        hosts.append(state, STATE_STYLES.get(state, ""))
    console.print(hosts)
    table = Table(title=None, show_edge=False)
    table.add_column("service")
    table.add_column("endpoint")
    table.add_column("standard port", justify="right")
    for name, endpoint in document["endpoints"].items():
        table.add_row(
            SERVICE_LABELS.get(name, name), f"{endpoint['host']}:{endpoint['port']}", str(contract.SERVICE_PORTS[name])
        )
    console.print(table)


def _render_credentials(document: dict[str, Any]) -> None:
    console = _out()
    console.print(Text.assemble(("CA certificate: ", "bold"), document["ca_certificate"]))
    admin = document["ldap_admin"]
    console.print(Text.assemble(("LDAP admin: ", "bold"), f"{admin['dn']}  password: {admin['password']}"))
    accounts = document["accounts"]
    columns = ("address", "name", "kind", "password")
    needed = sum(max((len(str(a.get(c, ""))) for a in accounts), default=0) + 3 for c in columns)
    if console.width < needed:  # narrow terminal: one line per account rather than a crushed table
        for account in accounts:
            console.print(
                f"{account['address']}  {account['password']}  ({account['kind']}, {account.get('name', '')})"
            )
        return
    table = Table(show_edge=False)
    for column in columns:
        # addresses and passwords are copied from here: never wrapped or cut
        longest = max((len(str(a.get(column, ""))) for a in accounts), default=0)
        copyable = column in ("address", "password")
        table.add_column(column, no_wrap=copyable, min_width=longest if copyable else None)
    for account in accounts:
        table.add_row(account["address"], account.get("name", ""), account["kind"], account["password"])
    console.print(table)


# --- lab commands ----------------------------------------------------------------------------


@lab_app.command("image")
@handle_errors
def lab_image(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="debootstrap a fresh base image and rebuild.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Build or reuse the Debian 13 systemd base image and print its tag."""
    project = Project.discover()
    client = lab.connect()
    info = lab.ensure_image(client, project.logs_dir, rebuild=rebuild, progress=_step)
    if json_output:
        _print_json({"tag": info.tag, "id": info.id, "built": info.built, "base": info.base_tag})
    else:
        typer.echo(info.tag)


@lab_app.command("up")
@handle_errors
def lab_up(
    no_provision: Annotated[
        bool, typer.Option("--no-provision", help="Only start the containers; do not run playbooks/site.yml.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the whole ansible-playbook output.")] = False,
    converge: Annotated[
        bool, typer.Option("--converge", help="Run playbooks/site.yml even when nothing changed since the last run.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Bring the lab up: image, network, containers, then playbooks/site.yml. Safe to repeat.

    When the same containers were already converged with the same roles, playbooks and lab
    inventory, and no file the roles manage was changed on them since, the playbook is skipped
    (use --converge to run it anyway); a drifted host is converged again.
    """
    project = Project.discover()
    site = None
    try:
        site = contract.site_values(project.lab_inventory)
    except ContractError:
        if not no_provision:
            raise
    if not no_provision and not project.site_playbook.is_file():
        raise LabError(
            f"{project.site_playbook} does not exist: check the checkout, or use --no-provision to only "
            "start the containers"
        )
    client = lab.connect()
    image = lab.ensure_image(client, project.logs_dir, progress=_step)
    _step(f"image {image.tag}" + (" (built)" if image.built else " (reused)"))
    aliases = {"mail1": [site["mail_hostname"]]} if site else None
    hosts = lab.ensure_hosts(client, image, aliases=aliases, progress=_step)
    for host in hosts:
        _step(f"{host.name}: container {host.action}, systemd {host.systemd}")
        if host.outdated:
            _step(f"{host.name} runs an older image than {image.tag}: `govmail lab down` then `lab up` to renew it")
    if not no_provision:
        containers = {host.name: host.container_id for host in hosts}
        managed = {host.name: lab.managed_files_digest(client, host.name) for host in hosts}
        if not converge and playbook.is_converged(project, containers, managed):
            _step("site.yml already converged on these hosts with this content: skipped (--converge to run it)")
        else:
            before = playbook.converged_state(project).get("managed") or {}
            drifted = [name for name, digest in managed.items() if before.get(name) not in (None, digest)]
            if drifted and not converge:
                _step(f"files the roles manage were changed on {', '.join(drifted)}: converging to restore them")
            playbook.forget_converged(project)
            _provision(project, verbose=verbose, json_output=json_output)
            managed = {host.name: lab.managed_files_digest(client, host.name) for host in hosts}
            playbook.record_converged(project, containers, managed)
    if site is None:
        _step("inventories/lab/group_vars/all has no govmail_domain yet: endpoints not shown")
        if json_output:
            _print_json({"hosts": lab.host_states(client)})
        return
    document = contract.status(inventory_dir=project.lab_inventory, hosts=lab.host_states(client))
    if json_output:
        _print_json(document)
        return
    _render_status(document)
    typer.echo("run `govmail lab credentials` for the demo accounts")


def _provision(project: Project, *, verbose: bool, json_output: bool) -> None:
    console = _err()
    live = console.is_terminal and not verbose
    if live:
        with console.status("ansible-playbook playbooks/site.yml") as status:
            result = playbook.run(project, on_task=lambda name: status.update(f"site.yml: {name}"))
    else:
        _step("ansible-playbook -i inventories/lab playbooks/site.yml")
        result = playbook.run(project, on_line=lambda line: typer.echo(line, err=json_output))
    counts = ", ".join(f"{host} ok={r.ok} changed={r.changed}" for host, r in result.recap.items())
    _step(f"site.yml converged in {result.duration:.0f} s: {counts} (log {result.log_path})")


@lab_app.command("down")
@handle_errors
def lab_down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete .lab/secrets (lab CA, generated passwords).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Remove the lab's containers, volumes and network. Images and .lab/secrets are kept."""
    project = Project.discover()
    client = lab.connect()
    result = lab.down(client, progress=_step)
    playbook.forget_converged(project)
    purged = False
    if purge and (project.secrets_dir.exists() or project.secrets_dir.is_symlink()):
        if project.secrets_dir.is_symlink():
            project.secrets_dir.unlink()
        else:
            shutil.rmtree(project.secrets_dir)
        purged = True
    if json_output:
        _print_json(
            {
                "containers": result.containers,
                "volumes": result.volumes,
                "networks": result.networks,
                "secrets_removed": purged,
            }
        )
        return
    removed = result.containers + result.volumes + result.networks
    typer.echo(f"removed: {', '.join(removed)}" if removed else "nothing to remove: the lab is down")
    if purged:
        typer.echo(f"removed {project.secrets_dir}")
    elif project.secrets_dir.exists():
        typer.echo(f"kept {project.secrets_dir} (lab CA and passwords); `govmail lab down --purge` deletes it")


@lab_app.command("status")
@handle_errors
def lab_status(json_output: JsonOption = False) -> None:
    """Endpoints and host states of the lab."""
    project = Project.discover()
    document = contract.status(inventory_dir=project.lab_inventory, hosts=lab.host_states(lab.connect()))
    if json_output:
        _print_json(document)
    else:
        _render_status(document)


@lab_app.command("credentials")
@handle_errors
def lab_credentials(json_output: JsonOption = False) -> None:
    """CA certificate, LDAP admin and the demo accounts with their passwords."""
    project = Project.discover()
    document = contract.credentials(secrets_dir=project.secrets_dir, inventory_dir=project.lab_inventory)
    if json_output:
        _print_json(document)
    else:
        _render_credentials(document)


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

InventoryOption = Annotated[
    Path | None,
    typer.Option("--inventory", help="Inventory directory of the site (default: inventories/lab).", show_default=False),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Policy profile: quangtri-2026, ninhbinh-2020 or laichau-2019 (default: the inventory's "
        "govmail_policy_profile, else quangtri-2026).",
        show_default=False,
    ),
]
AddressArgument = Annotated[str, typer.Argument(help="The mailbox's address (or its local part).")]


def _inventory(inventory: Path | None) -> tuple[Project, Path]:
    project = Project.discover()
    if inventory is None:
        return project, project.lab_inventory
    for candidate in (inventory, project.root / inventory):
        if candidate.is_dir():
            return project, candidate.resolve()
    raise accounts.AccountError(f"inventory {inventory} is not a directory: give e.g. --inventory inventories/lab")


@contextlib.contextmanager
def _directory(inventory: Path | None) -> Iterator[Directory]:
    project, inventory_dir = _inventory(inventory)
    with Directory.open(directory.settings(inventory_dir, project_dir=project.root)) as opened:
        yield opened


def _profile(inventory: Path | None, name: str | None):
    return accounts.profile_for(_inventory(inventory)[1], name)


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
def account_import(
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
                    result = accounts.import_file(
                        opened, path, profile=policy_profile,
                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                    )  # fmt: skip
            else:
                result = accounts.import_file(opened, path, profile=policy_profile, dry_run=dry_run)
        except accounts.ImportRowsError as exc:
            if json_output:
                _print_json(
                    {"file": exc.path, "dry_run": dry_run, "errors": [e.as_dict() for e in exc.errors], "rows": []}
                )
            else:
                for error in exc.errors:
                    typer.echo(error.error, err=True)
            raise
        except accounts.ImportApplyError as exc:
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
    """Remove a terminated mailbox's directory entry (--force for any status).

    The mail stored for it on the mail store (/var/vmail) is not touched: archive or remove it
    separately.
    """
    with _directory(inventory) as opened:
        result = mailbox.delete(opened, address, force=force)
    if json_output:
        _print_json(result)
    else:
        unit = " with its agency's empty unit" if result["agency_unit_removed"] else ""
        typer.echo(f"{result['address']}: deleted from the directory{unit} (its stored mail is kept)")


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
        result = accounts.handover(opened, address, to=to, profile=policy_profile)
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

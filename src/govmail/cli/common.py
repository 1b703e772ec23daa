"""What every ``govmail`` command shares: the Typer app, one-line errors, JSON and progress output."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from .. import __version__, accounts, connection, remote
from ..directory import Directory
from ..errors import AccountError, GovmailError
from ..inventory import Site
from ..policy import PolicyProfile
from ..project import Project

app = typer.Typer(
    name="govmail",
    help="Official-duty mail appliance: local lab and operations around the Ansible content.",
    no_args_is_help=True,
    add_completion=False,
)

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


# --- the site a command acts on ---------------------------------------------------------------

InventoryOption = Annotated[
    Path | None,
    typer.Option("--inventory", help="Inventory directory of the site (default: inventories/lab).", show_default=False),
]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Policy profile: quangtri-2026, ninhbinh-2020 or laichau-2019, taken as it is, without the "
        "inventory's govmail_policy_overrides (default: the inventory's govmail_policy_profile with its "
        "overrides, else quangtri-2026).",
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
    raise AccountError(f"inventory {inventory} is not a directory: give e.g. --inventory inventories/lab")


@contextlib.contextmanager
def _directory(inventory: Path | None) -> Iterator[Directory]:
    project, inventory_dir = _inventory(inventory)
    with Directory.open(connection.directory_settings(inventory_dir, project_dir=project.root)) as opened:
        yield opened


def _profile(inventory: Path | None, name: str | None) -> PolicyProfile:
    return accounts.profile_for(_inventory(inventory)[1], name)


def directory_host_program(
    inventory: Path | None, name: str, arguments: list[str], error: type[GovmailError], what: str
) -> dict:
    """Run the govmail package's host program ``name`` (e.g. ``govmail-usage``) with ``arguments``
    on the inventory's directory host and return its JSON report (see :func:`host_program_report`)."""
    _, inventory_dir = _inventory(inventory)
    site = Site(inventory_dir)
    runner = remote.directory_host(inventory_dir, site=site)
    program = f"{site.value('govmail_program_dir')}/venv/bin/{name}"
    return host_program_report(runner, [program, *arguments], error, what)


def host_program_report(runner: remote.Runner, command: list[str], error: type[GovmailError], what: str) -> dict:
    """Run a host program of the govmail package (``command[0]``, with ``--json``) and return its
    JSON report; raises ``error`` with one line (its last stderr line, or that it is not installed)."""
    program = command[0]
    completed = runner.run(command)
    try:
        return json.loads(completed.stdout)
    except ValueError:
        lines = completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"]
        detail = lines[-1].removeprefix(f"{program.rsplit('/', 1)[-1]}: ")
        if completed.returncode in (126, 127) or "no such file" in detail.lower():
            detail = f"{program} is not installed on {runner.description}: run playbooks/site.yml"
        raise error(f"{what} on {runner.description} failed: {detail}") from None

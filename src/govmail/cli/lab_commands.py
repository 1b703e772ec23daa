"""`govmail lab ...`: the local lab (image, up, down, status, credentials)."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from .. import contract, lab, playbook
from ..errors import ContractError, LabError
from ..project import Project
from .common import (
    SERVICE_LABELS,
    STATE_STYLES,
    JsonOption,
    _err,
    _out,
    _print_json,
    _step,
    app,
    handle_errors,
)

lab_app = typer.Typer(
    help="The local lab: mail1 + backup1 as systemd containers on this machine's Docker engine.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")


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

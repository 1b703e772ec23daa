"""`govmail cert revoke`: revoke a certificate of the internal CA, reissue it, republish the CRL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import pki, playbook
from ..errors import PkiError
from ..inventory import Site
from ..project import SECRETS_ENV_VAR, default_secrets_dir
from .common import InventoryOption, JsonOption, _err, _inventory, _print_json, _step, app, handle_errors

#: The part of site.yml a revocation needs: the pki role and the service roles' "TLS files changed"
#: tasks (their handlers ignore tags and restart the services).
CONVERGE_TAGS = ("--tags", "pki,tls")

cert_app = typer.Typer(help="Certificates of the internal CA: revocation.", no_args_is_help=True)
app.add_typer(cert_app, name="cert")


def _ca_dir(site: Site, project_root: Path) -> Path:
    if os.environ.get(SECRETS_ENV_VAR):
        return pki.ca_dir(default_secrets_dir(project_root))
    return pki.ca_dir(Path(str(site.value("govmail_secrets_dir") or default_secrets_dir(project_root))).expanduser())


@cert_app.command("revoke")
@handle_errors
def cert_revoke(
    target: Annotated[
        str,
        typer.Argument(
            help="An inventory host (its current certificate) or a serial number in hex, as "
            "`openssl x509 -noout -serial` prints it.",
            metavar="HOST|SERIAL",
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help=f"Revocation reason: {', '.join(pki.REASONS)}.")
    ] = "key_compromise",
    converge: Annotated[
        bool,
        typer.Option(
            "--converge/--no-converge",
            help="Run site.yml's pki and tls tasks now: sign and publish the CRL, give the host a new "
            "certificate, restart the services that serve it.",
        ),
    ] = True,
    inventory: InventoryOption = None,
    json_output: JsonOption = False,
) -> None:
    """Revoke a certificate of the internal CA, then reissue it and republish the CRL (site.yml).

    The converge runs only the tasks tagged ``pki`` (the CA, the host certificates, the CRL) and
    ``tls`` (each service role's "TLS files changed" task, whose handler checks the configuration
    and restarts the service): a few seconds per host instead of a whole site converge.

    The revocation is recorded in the CA's directory on this controller (revoked.json); the CRL
    every certificate names (govmail_crl_url) lists it after the converge. Operator-supplied
    certificates are revoked at the CA that issued them, not here.
    """
    project, inventory_dir = _inventory(inventory)
    site = Site(inventory_dir, project.root)
    if site.value("pki_certificate_file"):
        raise PkiError(
            f"inventory {inventory_dir} uses operator-supplied certificates (pki_certificate_file): revoke "
            "them at the CA that issued them"
        )
    ca = _ca_dir(site, project.root)
    record = pki.revoke(ca, target, site.hosts("all"), reason=reason)
    document: dict[str, Any] = {**record, "converged": False}
    _step(
        f"serial {record['serial']}"
        + (f" ({record['host']})" if record["host"] else "")
        + (" was already revoked" if record["already"] else f" revoked ({reason})")
    )
    if converge:
        relative = os.path.relpath(inventory_dir, project.root)
        tags = " ".join(CONVERGE_TAGS)
        _step(f"ansible-playbook -i {relative} playbooks/site.yml {tags} (signs the CRL, reissues, restarts)")
        console = _err()
        if console.is_terminal and not json_output:
            with console.status("site.yml") as status:
                result = playbook.run(
                    project,
                    inventory=relative,
                    extra_args=CONVERGE_TAGS,
                    on_task=lambda n: status.update(f"site.yml: {n}"),
                )
        else:
            result = playbook.run(project, inventory=relative, extra_args=CONVERGE_TAGS)
        _step(f"site.yml converged in {result.duration:.0f} s (log {result.log_path})")
        document["converged"] = True
    crl_file = ca / "ca.crl"
    if crl_file.is_file():
        document["crl"] = pki.crl_status(crl_file.read_bytes(), (ca / "ca.crt").read_bytes())
    issued = pki.issued_path(ca, record["host"]) if record["host"] else None
    if issued is not None and issued.is_file():
        document["certificate"] = pki.certificate_status(issued.read_bytes())
    if json_output:
        _print_json(document)
        return
    crl = document.get("crl")
    if crl:
        listed = record["serial"] in crl["revoked"]
        typer.echo(
            f"CRL: {len(crl['revoked'])} revoked, {'lists' if listed else 'does NOT list yet (converge)'} "
            f"{record['serial']}, next update {crl['next_update']} ({crl['state']})"
        )
    if "certificate" in document:
        cert = document["certificate"]
        typer.echo(f"{record['host']}: certificate {cert['serial']} valid until {cert['not_after']}")

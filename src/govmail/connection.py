"""Where a site's directory is and how the CLI reaches it, from the inventory and the environment.

The LDAP client layer (:mod:`govmail.directory`) never reads an inventory: this module works out
its :class:`~govmail.directory.Settings` from the inventory as Ansible reads it
(:class:`govmail.inventory.Site`) and the environment:

- URI: ``$GOVMAIL_LDAP_URI``; else, for the lab inventory, ``ldaps://127.0.0.1:10636`` (the lab's
  published LDAPS port); for any other inventory ``ldaps://<ansible_host of the first host of the
  ldap group>:636``.
- TLS: the certificate must chain to the CA file and name ``govmail_mail_hostname`` (or the URI's
  host). CA file: ``$GOVMAIL_LDAP_CA_FILE``, else the inventory's ``pki_ca_certificate_file``
  (operator-supplied certificates), else ``<secrets>/pki/ca.crt`` (the internal CA).
- Administrator: ``cn=admin,<govmail_ldap_base_dn>``; password from
  ``$GOVMAIL_LDAP_ADMIN_PASSWORD_FILE``, else ``<secrets>/ldap-admin`` (generated), else the
  inventory's ``openldap_admin_password`` (a site's vault).
- ``<secrets>``: ``$GOVMAIL_SECRETS_DIR``; else the inventory's ``govmail_secrets_dir``; else
  ``<project>/.lab/secrets``.
- Default quotas per kind: the shared facts ``govmail_quota_personal``/``_agency``, checked as
  sizes of at least the regulation's minimum (REQUIREMENTS M6).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import contract, policy
from .directory import (
    ADMIN_PASSWORD_FILE_ENV,
    CA_FILE_ENV,
    LDAPS_PORT,
    URI_ENV,
    Settings,
    parse_uri,
)
from .errors import DirectoryError, GovmailError
from .inventory import Site
from .project import SECRETS_ENV_VAR, default_secrets_dir, find_project_dir
from .sizes import parse_size


def _lab_inventory(inventory_dir: Path, project_dir: Path) -> bool:
    return inventory_dir.resolve() == (project_dir / "inventories" / "lab").resolve()


def directory_settings(
    inventory_dir: Path | str,
    *,
    project_dir: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    site: Site | None = None,
) -> Settings:
    """How to reach the directory of the site ``inventory_dir`` describes (see module docstring).

    The inventory is read through Ansible (:class:`govmail.inventory.Site`; pass ``site`` to reuse
    one already loaded). Raises :class:`DirectoryError` (or ``InventoryError``) with one line.
    """
    env = os.environ if environ is None else environ
    project = Path(project_dir) if project_dir is not None else find_project_dir(environ=dict(env))
    inventory = Path(inventory_dir)
    site = site or Site(inventory, project)
    domain = str(site.required("govmail_domain")).lower()
    base_dn = str(site.required("govmail_ldap_base_dn"))
    mail_hostname = str(site.required("govmail_mail_hostname")).lower()
    uri = env.get(URI_ENV, "").strip()
    if not uri:
        if _lab_inventory(inventory, project):
            uri = f"ldaps://{contract.LOCALHOST}:{contract.published_port('ldaps')}"
        else:
            if not site.hosts("ldap"):
                raise DirectoryError(
                    f"inventory {inventory} has no host in an `ldap` group: add one to hosts.yml or set "
                    f"{URI_ENV}=ldaps://<directory host>:636"
                )
            name = site.first_host("ldap")
            host = str(site.host_value(name, "ansible_host") or name)
            uri = f"ldaps://{host}:{LDAPS_PORT}"
    host = parse_uri(uri)[1]
    lab = _lab_inventory(inventory, project)
    if env.get(SECRETS_ENV_VAR):
        secrets = default_secrets_dir(project, dict(env))
    else:
        secrets = Path(str(site.value("govmail_secrets_dir") or default_secrets_dir(project, dict(env)))).expanduser()
    # the CA: the variable, else an operator-supplied CA (pki role), else the internal CA's
    ca_file = Path(env.get(CA_FILE_ENV) or site.value("pki_ca_certificate_file") or secrets / "pki" / "ca.crt")
    ca_file = ca_file.expanduser()
    if not ca_file.is_file():
        first = "provision the stack first (govmail lab up), or " if lab else ""
        raise DirectoryError(
            f"CA certificate {ca_file} does not exist: {first}point {CA_FILE_ENV} at the CA that signed "
            "the directory's certificate"
        )
    password = _admin_password(site, secrets, env, lab)
    names = tuple(dict.fromkeys(name for name in (mail_hostname, host) if name))
    default_quota = {kind: _default_quota(site, kind) for kind in policy.MINIMUM_QUOTA}
    return Settings(
        uri=uri,
        domain=domain,
        base_dn=base_dn,
        tls_names=names,
        ca_file=ca_file.resolve(),
        admin_dn=f"cn=admin,{base_dn}",
        admin_password=password,
        default_quota=default_quota,
    )


def _admin_password(site: Site, secrets: Path, env: Mapping[str, str], lab: bool) -> str:
    """The directory administrator's password: ``$GOVMAIL_LDAP_ADMIN_PASSWORD_FILE``; else the
    generated secret ``<secrets>/ldap-admin`` (the lab, or a site whose playbook generated it);
    else the inventory's ``openldap_admin_password`` (a site's vault, decrypted as Ansible does)."""
    password_file = env.get(ADMIN_PASSWORD_FILE_ENV)
    if password_file:
        path = Path(password_file).expanduser()
        return contract.read_secret(path.parent, path.name)
    if (secrets / "ldap-admin").is_file() or lab:
        return contract.read_secret(secrets, "ldap-admin")
    raw = site.host_variables().get("openldap_admin_password")
    if raw is not None and "govmail_secret" not in str(raw):  # not the generating lookup of the lab
        value = site.value("openldap_admin_password")
        if value:
            return str(value)
    raise DirectoryError(
        f"no administrator password for the directory of {site.inventory_dir}: set openldap_admin_password "
        "in the inventory's vault (and ANSIBLE_VAULT_PASSWORD_FILE), or point "
        f"{ADMIN_PASSWORD_FILE_ENV} at a file holding it"
    )


def _default_quota(site: Site, kind: str) -> int:
    """``govmail_quota_<kind>`` of the site in bytes, or DirectoryError naming it (checked as the
    govmail role checks it: a size, at least the regulation's minimum, REQUIREMENTS M6)."""
    name = f"govmail_quota_{kind}"
    value = site.required(name)
    try:
        size = parse_size(value)
    except GovmailError:
        raise DirectoryError(
            f"{name} in {site.inventory_dir} is {value!r}: write a size like 2G, 5G or 500M (binary units)"
        ) from None
    if size < policy.MINIMUM_QUOTA[kind]:
        raise DirectoryError(
            f"{name} in {site.inventory_dir} is {value}, below the regulation's minimum for {kind} mailboxes "
            f"({policy.MINIMUM_QUOTA[kind] // 1024**3}G, REQUIREMENTS M6): raise it"
        )
    return size

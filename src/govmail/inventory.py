"""A site's inventory, read by Ansible itself, with the project's shared defaults beneath it.

The CLI never walks inventory YAML on its own (DESIGN.md "Decisions already taken"): it asks
Ansible's inventory and variable managers, so ``group_vars/<group>``, ``host_vars``, ``all.vars``
in ``hosts.yml``, vault files and precedence behave exactly as in ``ansible-playbook``. Beneath
what the inventory sets lie the project's documented defaults of the shared facts
(``roles/govmail/defaults/main.yml``, the lowest precedence, as role defaults are in a play).
Values are templated with Ansible's own templating (and the project's filter and lookup plugins,
through the project's ``ansible.cfg``), only when asked for.

    site = Site("inventories/lab")
    site.value("govmail_ldap_base_dn")          # 'dc=quangtri,dc=gov,dc=vn'
    site.first_host("ldap")                      # 'mail1'
    site.host_value("mail1", "ansible_user")     # None when unset

Errors: :class:`InventoryError` (one line naming the inventory and the variable).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import InventoryError
from .project import find_project_dir

# Where the shared facts (domain, base DN, quotas, mail root, limits, policy profile, sockets)
# have their documented defaults: the defaults-only role every play of the appliance lists first.
SHARED_DEFAULTS = Path("roles") / "govmail" / "defaults" / "main.yml"
# The backup role's defaults: which groups' hosts are backup clients (backup_client_groups).
BACKUP_DEFAULTS = Path("roles") / "backup" / "defaults" / "main.yml"


_PLUGIN_DIRS = {"filter": "plugins/filter", "lookup": "plugins/lookup"}  # as in the project's ansible.cfg


_STATE: dict[str, Any] = {}  # Ansible's plugin loader and vault context exist once per process


def _ansible(project_dir: Path) -> Any:
    """Import Ansible's inventory API, with the project's own filter and lookup plugins."""
    from ansible import constants as C
    from ansible.cli import CLI
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import filter_loader, init_plugin_loader, lookup_loader
    from ansible.plugins.vars import host_group_vars
    from ansible.template import Templar, trust_as_template
    from ansible.vars.manager import VariableManager

    if not _STATE.get("plugins"):
        init_plugin_loader()
        _STATE["plugins"] = True
    # host_group_vars remembers which group_vars/host_vars files exist for the whole process: a
    # Site reads the inventory as it is now (the CLI and the tests may change it in between).
    host_group_vars.FOUND.clear()
    host_group_vars.NAK.clear()
    for loader, folder in ((filter_loader, _PLUGIN_DIRS["filter"]), (lookup_loader, _PLUGIN_DIRS["lookup"])):
        loader.add_directory(str(project_dir / folder))
    return C, CLI, InventoryManager, DataLoader, Templar, trust_as_template, VariableManager


class Site:
    """One site's inventory as Ansible reads it (see the module docstring).

    ``inventory_dir`` is the inventory directory (``hosts.yml`` + ``group_vars``/``host_vars``);
    vault-encrypted files are decrypted with ``vault_password_files``, by default the one Ansible is
    configured with (``ANSIBLE_VAULT_PASSWORD_FILE`` or ``vault_password_file`` in ansible.cfg).
    Raises :class:`InventoryError` when Ansible cannot parse it.
    """

    def __init__(
        self,
        inventory_dir: Path | str,
        project_dir: Path | str | None = None,
        *,
        vault_password_files: list[str] | None = None,
    ) -> None:
        self.inventory_dir = Path(inventory_dir).resolve()
        self.project_dir = Path(project_dir).resolve() if project_dir is not None else find_project_dir()
        if not self.inventory_dir.is_dir():
            raise InventoryError(f"inventory {inventory_dir} is not a directory: give e.g. --inventory inventories/lab")
        C, CLI, InventoryManager, DataLoader, self._templar_class, self._trust, VariableManager = _ansible(
            self.project_dir
        )
        self._loader = DataLoader()
        try:
            vault_files = vault_password_files
            if vault_files is None:
                configured = C.DEFAULT_VAULT_PASSWORD_FILE
                vault_files = [configured] if isinstance(configured, str) else list(configured or [])
            secrets = CLI.setup_vault_secrets(
                self._loader,
                vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST or []),
                vault_password_files=vault_files,
                ask_vault_pass=False,
                auto_prompt=False,
                initialize_context=not _STATE.get("vault"),
            )
            _STATE["vault"] = True
            self._loader.set_vault_secrets(secrets)
            self._inventory = InventoryManager(loader=self._loader, sources=[str(self.inventory_dir)])
            self._variables = VariableManager(loader=self._loader, inventory=self._inventory)
        except Exception as exc:  # Ansible raises many kinds; each becomes one line here
            raise InventoryError(f"Ansible cannot read inventory {self.inventory_dir}: {_one_line(exc)}") from None
        if not self._inventory.list_hosts("all"):
            raise InventoryError(f"inventory {self.inventory_dir} has no hosts: add them to hosts.yml")

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """The project's documented defaults of the shared facts (roles/govmail/defaults/main.yml)."""
        path = self.project_dir / SHARED_DEFAULTS
        data = self._loader.load_from_file(str(path), trusted_as_template=True) if path.is_file() else None
        if not isinstance(data, Mapping):
            raise InventoryError(f"{path} is missing or not a mapping: the checkout is incomplete")
        return dict(data)

    def hosts(self, group: str) -> list[str]:
        """Names of the hosts of ``group``, in inventory order (``[]`` for an unknown group)."""
        if group not in self._inventory.groups:
            return []
        return [host.name for host in self._inventory.get_hosts(pattern=group)]

    def first_host(self, group: str) -> str:
        """The first host of ``group`` (how the roles pick the directory: ``groups['ldap'] | first``)."""
        hosts = self.hosts(group)
        if not hosts:
            raise InventoryError(f"inventory {self.inventory_dir} has no host in the `{group}` group: add one")
        return hosts[0]

    def _host(self, host: str | None) -> Any:
        name = host or self._representative()
        found = self._inventory.get_host(name)
        if found is None:
            raise InventoryError(f"host {name} is not in inventory {self.inventory_dir}")
        return found

    def _representative(self) -> str:
        for group in ("ldap", "mailstore", "mx"):
            if self.hosts(group):
                return self.hosts(group)[0]
        return self._inventory.list_hosts("all")[0].name

    def inventory_variables(self, host: str | None = None) -> dict[str, Any]:
        """What the inventory alone sets for ``host`` (default: the first directory host), with
        Ansible's precedence and magic variables (``groups``, ``inventory_hostname``), untemplated."""
        try:
            return dict(self._variables.get_vars(host=self._host(host), include_hostvars=False))
        except InventoryError:
            raise
        except Exception as exc:  # a vars file Ansible cannot parse or decrypt
            text = str(exc).lower()
            hint = ""
            if "decryption failed" in text:
                hint = " (the vault password Ansible was given does not open it: check ANSIBLE_VAULT_PASSWORD_FILE)"
            elif "vault" in text:
                hint = " (set ANSIBLE_VAULT_PASSWORD_FILE to the file holding the vault password)"
            raise InventoryError(
                f"Ansible cannot read the variables of inventory {self.inventory_dir}: {_one_line(exc)}{hint}"
            ) from None

    def host_variables(self, host: str | None = None) -> dict[str, Any]:
        """Every variable of ``host`` before templating: the shared defaults beneath the
        inventory's values, as in a play that lists the ``govmail`` role."""
        variables = dict(self.defaults)
        variables.update(self.inventory_variables(host))
        return variables

    def templar(self, variables: Mapping[str, Any]) -> Any:
        """Ansible's templar over ``variables`` (lazy: a value is templated when it is used)."""
        return self._templar_class(loader=self._loader, variables=dict(variables))

    def load_yaml(self, path: Path | str) -> Any:
        """A YAML file of the project's own (role defaults, vars, templates' data), trusted as
        Ansible trusts role files, so its ``{{ }}`` expressions are templated when used."""
        return self._loader.load_from_file(str(path), trusted_as_template=True)

    def trusted(self, text: str) -> Any:
        """``text`` marked as a template of the project's own (a role template's content)."""
        return self._trust(text)

    def host_value(self, host: str | None, name: str, default: Any = None) -> Any:
        """``name`` as Ansible templates it for ``host``; ``default`` when it is not defined."""
        variables = self.host_variables(host)
        if name not in variables:
            return default
        templar = self._templar_class(loader=self._loader, variables=variables)
        try:
            return _plain(templar.template(variables[name]))
        except Exception as exc:
            raise InventoryError(
                f"{name} in inventory {self.inventory_dir} cannot be templated: {_one_line(exc)}"
            ) from None

    def backup_clients(self) -> list[str]:
        """The hosts that back themselves up (playbooks/backup.yml): every host of the groups in
        ``backup_client_groups`` (the inventory's, else roles/backup/defaults/main.yml's), in
        inventory order, each once. ``[]`` when the site has no ``backup`` host."""
        if not self.hosts("backup"):
            return []
        groups = self.value("backup_client_groups")
        if groups is None:
            groups = self.load_yaml(self.project_dir / BACKUP_DEFAULTS)["backup_client_groups"]
        return list(dict.fromkeys(host for group in groups for host in self.hosts(str(group))))

    def value(self, name: str, default: Any = None) -> Any:
        """``name`` for the site (templated for its first directory host); ``default`` if unset."""
        return self.host_value(None, name, default)

    def required(self, name: str) -> Any:
        """``name`` for the site, or :class:`InventoryError` when it is unset or empty."""
        value = self.value(name)
        if value in (None, ""):
            raise InventoryError(f"{name} is not set in inventory {self.inventory_dir}: add it to group_vars/all")
        return value


def _plain(value: Any) -> Any:
    """Ansible's tagged values as plain Python (str, int, list, dict)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def _one_line(exc: BaseException) -> str:
    """Ansible's error as one line, with the file (and line) it comes from when Ansible knows it."""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())[:400] or exc.__class__.__name__
    cause: BaseException | None = exc
    while cause is not None:
        origin = getattr(cause, "obj", None)
        path = getattr(origin, "path", None)
        if path:
            line = getattr(origin, "line_num", None)
            return f"{text} ({path}{f', line {line}' if line else ''})"
        cause = cause.__cause__ or cause.__context__
    return text

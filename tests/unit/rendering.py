"""Render a role's templates and variables the way a play does, with Ansible's own templating.

Precedence as in ``ansible-playbook`` (lowest first): the shared facts' defaults
(``roles/govmail``), the role's ``defaults/main.yml``, the inventory (read by Ansible, every
level), the role's ``vars/main.yml``; plus ``role_path`` and ``ansible_managed``. Values stay
lazy: a variable is templated when a template uses it, exactly as in a play.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from govmail.inventory import Site

REPOSITORY = Path(__file__).resolve().parents[2]


class RoleView:
    """One role's variables for one host of a site; ``render`` and ``value`` template with them."""

    def __init__(self, site: Site, role: str, host: str | None = None) -> None:
        self.site = site
        self.role_path = REPOSITORY / "roles" / role
        variables: dict[str, Any] = dict(site.defaults)
        for layer in ("defaults", "vars"):
            path = self.role_path / layer / "main.yml"
            if layer == "vars":
                variables.update(site.inventory_variables(host))
            if path.is_file():
                variables.update(site.load_yaml(path) or {})
        variables["role_path"] = str(self.role_path)
        variables["ansible_managed"] = "Ansible managed"
        self.variables = variables
        self.templar = site.templar(variables)

    def value(self, name: str) -> Any:
        """``name`` as the role sees it."""
        return self.templar.template(self.variables[name])

    def render(self, template: str, **extra: Any) -> str:
        """``templates/<template>`` of the role, rendered for the host (``extra``: e.g. ``item``)."""
        text = (self.role_path / "templates" / template).read_text(encoding="utf-8")
        templar = self.site.templar({**self.variables, **extra}) if extra else self.templar
        # as ansible.builtin.template renders a file (its action plugin's defaults)
        overrides = {"trim_blocks": True, "lstrip_blocks": False, "newline_sequence": "\n"}
        return str(templar.template(self.site.trusted(text), escape_backslashes=False, overrides=overrides))

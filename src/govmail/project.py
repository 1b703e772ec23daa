"""Where the project (the repository checkout) is, and the paths inside it.

The project directory is found, in this order (docs/CONTRACT-internal.md):
1. the environment variable ``GOVMAIL_PROJECT_DIR``;
2. the nearest directory, from the current one upwards, that holds ``playbooks/site.yml``;
3. the checkout this package was installed from in editable mode (``src/govmail/../../``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ProjectError

ENV_VAR = "GOVMAIL_PROJECT_DIR"
SECRETS_ENV_VAR = "GOVMAIL_SECRETS_DIR"  # honoured by inventories/lab too (govmail_secrets_dir)
MARKER = Path("playbooks") / "site.yml"


def _package_checkout() -> Path | None:
    """The repository this package was installed from in editable mode, if it is one."""
    candidate = Path(__file__).resolve().parent.parent.parent
    pyproject = candidate / "pyproject.toml"
    if pyproject.is_file() and 'name = "govmail"' in pyproject.read_text(encoding="utf-8"):
        return candidate
    return None


def find_project_dir(start: Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """Return the absolute project directory, or raise :class:`ProjectError`."""
    env = os.environ if environ is None else environ
    configured = env.get(ENV_VAR)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise ProjectError(
                f"{ENV_VAR}={configured} is not a directory: point it at the govmail checkout or unset it"
            )
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / MARKER).is_file():
            return directory
    checkout = _package_checkout()
    if checkout is not None:
        return checkout
    raise ProjectError(
        f"no govmail project found from {here} (no {MARKER} in it or above it): "
        f"run govmail inside the repository or set {ENV_VAR}"
    )


def default_secrets_dir(root: Path, environ: dict[str, str] | None = None) -> Path:
    """``$GOVMAIL_SECRETS_DIR`` if set, else ``<root>/.lab/secrets`` (the lab inventory's rule)."""
    env = os.environ if environ is None else environ
    configured = env.get(SECRETS_ENV_VAR)
    return Path(configured).expanduser().resolve() if configured else root / ".lab" / "secrets"


@dataclass(frozen=True)
class Project:
    """Paths of one project checkout."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        return cls(find_project_dir(start))

    @property
    def lab_dir(self) -> Path:
        """Lab state, git-ignored: secrets, logs."""
        return self.root / ".lab"

    @property
    def secrets_dir(self) -> Path:
        """Generated secrets and the lab CA: ``$GOVMAIL_SECRETS_DIR`` or ``.lab/secrets``."""
        return default_secrets_dir(self.root)

    @property
    def logs_dir(self) -> Path:
        return self.lab_dir / "logs"

    @property
    def lab_inventory(self) -> Path:
        return self.root / "inventories" / "lab"

    @property
    def site_playbook(self) -> Path:
        return self.root / MARKER

    @property
    def ansible_cfg(self) -> Path:
        return self.root / "ansible.cfg"

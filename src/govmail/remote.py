"""Running a command on the directory host of a site, as root, from the controller.

``govmail lifecycle run`` runs the host's own ``govmail-lifecycle`` there (roles/lifecycle), and
``govmail account handover`` ends the agency mailbox's open sessions with ``doveadm kick``; both
need the host itself, not only its LDAP port. Which host and how:

- ``$GOVMAIL_DIRECTORY_CONTAINER``: ``docker exec`` into that container (the appliance tests
  point it at Molecule's host);
- else the first host of the inventory's ``ldap`` group in ``hosts.yml``: with
  ``ansible_connection: community.docker.docker`` (the lab) ``docker exec`` into its
  ``ansible_host``; otherwise ``ssh`` to ``ansible_user@ansible_host`` (``ansible_port``), the
  way Ansible reaches it, with ``sudo`` when the user is not root.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import GovmailError

CONTAINER_ENV = "GOVMAIL_DIRECTORY_CONTAINER"
DOCKER_CONNECTIONS = ("community.docker.docker", "docker")
TIMEOUT = 1800


class RemoteError(GovmailError):
    """The directory host cannot be found in the inventory or reached."""


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Runner:
    """How to run a command as root on one host: ``prefix + command``."""

    host: str
    prefix: tuple[str, ...]
    description: str

    def run(self, command: Sequence[str], *, timeout: int = TIMEOUT) -> Completed:
        tool = self.prefix[0]
        if shutil.which(tool) is None:
            raise RemoteError(f"`{tool}` is not installed on this machine: it is needed to reach {self.description}")
        argv = [*self.prefix, *command] if tool == "docker" else [*self.prefix, shlex.join(command)]
        try:
            completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{shlex.join(command)} on {self.description} did not finish in {timeout}s") from None
        except OSError as exc:
            raise RemoteError(f"cannot run {tool} to reach {self.description}: {exc}") from None
        if (tool == "docker" and completed.returncode in (125, 126)) or (tool == "ssh" and completed.returncode == 255):
            detail = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
            raise RemoteError(f"cannot reach {self.description}: {detail}")
        return Completed(completed.returncode, completed.stdout, completed.stderr)


def _hosts_file(inventory_dir: Path) -> dict[str, Any]:
    for name in ("hosts.yml", "hosts.yaml"):
        path = inventory_dir / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise RemoteError(f"{path} is not valid YAML: {exc}") from None
            return data if isinstance(data, dict) else {}
    raise RemoteError(f"inventory {inventory_dir} has no hosts.yml: the directory host cannot be found")


def _host_vars(group: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    hosts = group.get("hosts") or {}
    if isinstance(hosts, Mapping) and name in hosts:
        return dict(hosts[name] or {})
    for child in (group.get("children") or {}).values():
        if isinstance(child, Mapping):
            found = _host_vars(child, name)
            if found is not None:
                return found
    return None


def _first_in_group(group: Mapping[str, Any], wanted: str) -> str | None:
    for child_name, child in (group.get("children") or {}).items():
        if not isinstance(child, Mapping):
            continue
        if child_name == wanted and child.get("hosts"):
            return str(next(iter(child["hosts"])))
        found = _first_in_group(child, wanted)
        if found:
            return found
    return None


def directory_host(inventory_dir: Path | str, environ: Mapping[str, str] | None = None) -> Runner:
    """The runner for the directory host of the site ``inventory_dir`` (see module docstring)."""
    env = os.environ if environ is None else environ
    container = env.get(CONTAINER_ENV, "").strip()
    if container:
        return Runner(container, ("docker", "exec", "-i", container), f"container {container} ({CONTAINER_ENV})")
    inventory = Path(inventory_dir)
    top = _hosts_file(inventory).get("all") or {}
    name = _first_in_group(top, "ldap")
    if name is None:
        raise RemoteError(f"inventory {inventory} has no host in an `ldap` group: add one to hosts.yml")
    variables = _host_vars(top, name) or {}
    address = str(variables.get("ansible_host") or name)
    if str(variables.get("ansible_connection", "")) in DOCKER_CONNECTIONS:
        return Runner(name, ("docker", "exec", "-i", address), f"{name} (container {address})")
    user = str(variables.get("ansible_user") or "root")
    ssh = ["ssh", "-o", "BatchMode=yes"]
    if variables.get("ansible_port"):
        ssh += ["-p", str(variables["ansible_port"])]
    ssh.append(f"{user}@{address}")
    if user != "root":
        ssh += ["sudo", "-n"]
    return Runner(name, tuple(ssh), f"{name} (ssh {user}@{address})")

"""Running a command on a host of a site (the directory host by default), as root, from the controller.

``govmail lifecycle run`` runs the host's own ``govmail-lifecycle`` there (roles/lifecycle), and
``govmail account handover`` ends the agency mailbox's open sessions with ``doveadm kick``; both
need the host itself, not only its LDAP port. Which host and how:

- ``$GOVMAIL_DIRECTORY_CONTAINER``: ``docker exec`` into that container (the appliance tests
  point it at Molecule's host);
- else the first host of the inventory's ``ldap`` group, as Ansible reads the inventory: with
  ``ansible_connection: community.docker.docker`` (the lab) ``docker exec`` into its
  ``ansible_host``; otherwise ``ssh`` to ``ansible_user@ansible_host`` with the port, key and ssh
  arguments Ansible would use, through ``sudo`` when the user is not the become user (root), as
  the playbooks' ``become: true`` does.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GovmailError, RemoteError
from .inventory import Site

CONTAINER_ENV = "GOVMAIL_DIRECTORY_CONTAINER"
DOCKER_CONNECTIONS = ("community.docker.docker", "docker")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local")
TIMEOUT = 1800


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

    def run(
        self,
        command: Sequence[str],
        *,
        timeout: int = TIMEOUT,
        input: str | None = None,
        progress: bool = False,
    ) -> Completed:
        """Run ``command`` as root there; ``input`` is written to its stdin; ``progress`` also copies
        its stderr, line by line, to ours. Raises :class:`RemoteError` when the host cannot be
        reached (not when the command itself fails: see ``returncode``)."""
        tool = self.prefix[0]
        if shutil.which(tool) is None:
            raise RemoteError(f"`{tool}` is not installed on this machine: it is needed to reach {self.description}")
        argv = [*self.prefix, *command] if tool != "ssh" else [*self.prefix, shlex.join(command)]
        try:
            if progress:
                completed = _run_showing_stderr(argv, timeout, input)
            else:
                completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                           input=input)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{shlex.join(command)} on {self.description} did not finish in {timeout}s") from None
        except OSError as exc:
            raise RemoteError(f"cannot run {tool} to reach {self.description}: {exc}") from None
        sudo_refused = (1,) if "password is required" in completed.stderr else ()
        unreachable = {"docker": (125, 126), "ssh": (255,), "sudo": sudo_refused}
        if completed.returncode in unreachable.get(tool, ()):
            detail = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
            raise RemoteError(f"cannot reach {self.description}: {detail}")
        return Completed(completed.returncode, completed.stdout, completed.stderr)


def _run_showing_stderr(
    argv: Sequence[str], timeout: int, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with stderr copied to ours as it comes (a remote program's progress) and kept."""
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    with subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        lines: list[str] = []

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                sys.stderr.write(line)
                sys.stderr.flush()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            stdout, _ = process.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        reader.join()
        return subprocess.CompletedProcess(argv, process.returncode, stdout, "".join(lines))


def _words(value: Any) -> list[str]:
    """An inventory's ssh argument string (``ansible_ssh_common_args``) as argv words."""
    return shlex.split(str(value)) if value else []


def directory_host(
    inventory_dir: Path | str,
    environ: Mapping[str, str] | None = None,
    *,
    site: Site | None = None,
) -> Runner:
    """The runner for the directory host of the site ``inventory_dir`` (see module docstring).

    The host and its connection variables come from the inventory as Ansible reads it (any
    level: ``all.vars``, ``group_vars``, ``host_vars``): ``ansible_connection``, ``ansible_host``,
    ``ansible_user``, ``ansible_port``, ``ansible_ssh_private_key_file``,
    ``ansible_ssh_common_args``/``ansible_ssh_extra_args``, and ``ansible_become_user`` /
    ``ansible_become_method`` (the playbooks run with ``become: true``, so a user other than root
    always goes through sudo, as Ansible would). ``ansible_connection: local`` runs the command on
    this machine (through ``sudo -n`` unless this user is the become user). ssh runs with
    ``BatchMode=yes`` and sudo with ``-n``: keys and passwordless sudo, never a password prompt
    (``ansible_ssh_pass`` and become passwords are not used). Raises :class:`RemoteError`.
    """
    env = os.environ if environ is None else environ
    container = env.get(CONTAINER_ENV, "").strip()
    if container:
        return Runner(container, ("docker", "exec", "-i", container), f"container {container} ({CONTAINER_ENV})")
    try:
        site = site or Site(inventory_dir)
        name = site.first_host("ldap")
    except GovmailError as exc:
        raise RemoteError(str(exc)) from None
    return host_runner(site, name)


def host_runner(site: Site, name: str) -> Runner:
    """The runner for the inventory host ``name`` of ``site``: ``docker exec`` for a docker
    connection, this machine for ``local``, else ``ssh`` (+ ``sudo -n``), as
    :func:`directory_host` describes. Raises :class:`RemoteError`."""

    def var(key: str, default: Any = None) -> Any:
        return site.host_value(name, key, default)

    address = str(var("ansible_host") or name)
    connection = str(var("ansible_connection") or "")
    if connection in DOCKER_CONNECTIONS:
        return Runner(name, ("docker", "exec", "-i", address), f"{name} (container {address})")
    become_user = str(var("ansible_become_user") or "root")
    if connection in LOCAL_CONNECTIONS:  # the controller is the directory host
        if getpass.getuser() == become_user:
            return Runner(name, ("env",), f"{name} (this machine)")
        return Runner(name, ("sudo", "-n", "-u", become_user, "--"), f"{name} (this machine, sudo)")
    user = str(var("ansible_user") or "root")
    ssh = ["ssh", "-o", "BatchMode=yes"]
    if var("ansible_port"):
        ssh += ["-p", str(var("ansible_port"))]
    if var("ansible_ssh_private_key_file"):
        ssh += ["-i", str(var("ansible_ssh_private_key_file"))]
    ssh += _words(var("ansible_ssh_common_args")) + _words(var("ansible_ssh_extra_args"))
    ssh.append(f"{user}@{address}")
    if user != become_user:
        method = str(var("ansible_become_method") or "sudo")
        if method != "sudo":
            raise RemoteError(
                f"{name} uses ansible_become_method {method!r}: govmail reaches hosts with sudo only; "
                "set ansible_become_method: sudo for it"
            )
        ssh += ["sudo", "-n", "-u", become_user, "--"]
    return Runner(name, tuple(ssh), f"{name} (ssh {user}@{address})")

"""Which host `govmail lifecycle run` and handover's kick reach, and how (no command is run)."""

from __future__ import annotations

import subprocess

import pytest

from govmail import remote
from govmail.remote import RemoteError


def inventory(tmp_path, text: str):
    (tmp_path / "hosts.yml").write_text(text)
    return tmp_path


def test_the_environment_names_a_container(tmp_path):
    runner = remote.directory_host(tmp_path, {remote.CONTAINER_ENV: "govmail-mol-mail1"})
    assert runner.prefix == ("docker", "exec", "-i", "govmail-mol-mail1")


def test_a_docker_inventory_host_is_reached_with_docker_exec(tmp_path):
    path = inventory(tmp_path, """
all:
  hosts:
    mail1: {ansible_connection: community.docker.docker, ansible_host: govmail-lab-mail1}
  children:
    ldap: {hosts: {mail1: }}
""")  # fmt: skip
    runner = remote.directory_host(path, {})
    assert runner.host == "mail1" and runner.prefix == ("docker", "exec", "-i", "govmail-lab-mail1")


def test_a_data_centre_host_is_reached_with_ssh_and_sudo(tmp_path):
    path = inventory(tmp_path, """
all:
  children:
    directory:
      children:
        ldap:
          hosts:
            ldap1.dc.example: {ansible_host: 10.0.0.5, ansible_user: ops, ansible_port: 2222}
""")  # fmt: skip
    runner = remote.directory_host(path, {})
    assert runner.prefix == ("ssh", "-o", "BatchMode=yes", "-p", "2222", "ops@10.0.0.5", "sudo", "-n")


def test_no_ldap_group_is_one_error_naming_the_inventory(tmp_path):
    path = inventory(tmp_path, "all:\n  hosts:\n    mail1:\n")
    with pytest.raises(RemoteError, match="no host in an `ldap` group"):
        remote.directory_host(path, {})


def test_no_hosts_file(tmp_path):
    with pytest.raises(RemoteError, match=r"no hosts\.yml"):
        remote.directory_host(tmp_path, {})


def test_an_unreachable_container_is_a_remote_error(monkeypatch):
    runner = remote.Runner("mail1", ("docker", "exec", "-i", "nothere"), "mail1 (container nothere)")
    monkeypatch.setattr(remote.shutil, "which", lambda tool: "/usr/bin/docker")
    monkeypatch.setattr(
        remote.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(a[0], 125, "", "Error: No such container: nothere\n"),
    )
    with pytest.raises(RemoteError, match=r"cannot reach mail1 .*No such container"):
        runner.run(["govmail-lifecycle", "run"])


def test_ssh_gets_one_shell_quoted_command(monkeypatch):
    seen = {}
    runner = remote.Runner("h", ("ssh", "root@h"), "h")
    monkeypatch.setattr(remote.shutil, "which", lambda tool: "/usr/bin/ssh")

    def fake(argv, **kwargs):
        seen["argv"] = argv
        return subprocess.CompletedProcess(argv, 0, "{}", "")

    monkeypatch.setattr(remote.subprocess, "run", fake)
    assert runner.run(["govmail-lifecycle", "run", "--as-of", "2027-01-01"]).returncode == 0
    assert seen["argv"] == ["ssh", "root@h", "govmail-lifecycle run --as-of 2027-01-01"]

"""Which host `govmail lifecycle run` and handover's kick reach, and how (no command is run)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
    assert runner.prefix == (
        "ssh", "-o", "BatchMode=yes", "-p", "2222", "ops@10.0.0.5", "sudo", "-n", "-u", "root", "--",
    )  # fmt: skip


HOSTS_WITH_ALL_VARS = """
all:
  vars: {ansible_user: deploy}
  hosts:
    dir1: {ansible_host: 10.0.0.7}
  children:
    ldap: {hosts: {dir1: }}
"""
HOSTS_PLAIN = "all:\n  hosts:\n    dir1: {ansible_host: 10.0.0.7}\n  children:\n    ldap: {hosts: {dir1: }}\n"


@pytest.mark.parametrize(
    ("hosts", "files"),
    [
        (HOSTS_WITH_ALL_VARS, {}),
        (HOSTS_PLAIN, {"group_vars/all/connection.yml": "ansible_user: deploy\n"}),
        (HOSTS_PLAIN, {"group_vars/ldap.yml": "ansible_user: deploy\n"}),
        (HOSTS_PLAIN, {"host_vars/dir1.yml": "ansible_user: deploy\n"}),
        (
            HOSTS_PLAIN,
            {"group_vars/all.yml": "ansible_user: root\n", "host_vars/dir1/ssh.yml": "ansible_user: deploy\n"},
        ),
    ],
    ids=["all.vars", "group_vars-all", "group_vars-ldap", "host_vars", "host-beats-all"],
)
def test_the_connection_user_is_the_one_ansible_uses_at_any_inventory_level(tmp_path, hosts, files):
    """As in ansible-playbook (the playbooks run with become: true): deploy@host, then sudo to root."""
    path = inventory(tmp_path, hosts)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    runner = remote.directory_host(path, {})
    assert runner.prefix == ("ssh", "-o", "BatchMode=yes", "deploy@10.0.0.7", "sudo", "-n", "-u", "root", "--")


def test_ssh_arguments_key_and_become_user_come_from_the_inventory(tmp_path):
    path = inventory(tmp_path, HOSTS_PLAIN)
    (path / "group_vars").mkdir()
    (path / "group_vars" / "ldap.yml").write_text(
        "ansible_user: ops\nansible_port: 2200\nansible_ssh_private_key_file: /keys/ops\n"
        "ansible_ssh_common_args: '-o ProxyJump=bastion.dc.example'\nansible_become_user: govmail\n"
    )
    runner = remote.directory_host(path, {})
    assert runner.prefix == (
        "ssh", "-o", "BatchMode=yes", "-p", "2200", "-i", "/keys/ops", "-o", "ProxyJump=bastion.dc.example",
        "ops@10.0.0.7", "sudo", "-n", "-u", "govmail", "--",
    )  # fmt: skip


def test_root_needs_no_sudo(tmp_path):
    path = inventory(
        tmp_path, HOSTS_PLAIN.replace("{ansible_host: 10.0.0.7}", "{ansible_host: 10.0.0.7, ansible_user: root}")
    )
    assert remote.directory_host(path, {}).prefix == ("ssh", "-o", "BatchMode=yes", "root@10.0.0.7")


def test_a_become_method_other_than_sudo_is_refused_with_what_to_do(tmp_path):
    path = inventory(
        tmp_path, HOSTS_WITH_ALL_VARS.replace("ansible_user: deploy", "ansible_user: deploy, ansible_become_method: su")
    )
    with pytest.raises(RemoteError, match=r"ansible_become_method 'su'.*set ansible_become_method: sudo"):
        remote.directory_host(path, {})


def test_the_example_inventory_is_reached_as_deploy_through_sudo():
    """inventories/example sets ansible_user: deploy under all.vars (it was reached as root before)."""
    repository = Path(__file__).resolve().parents[2]
    runner = remote.directory_host(repository / "inventories" / "example", {})
    assert runner.prefix == (
        "ssh", "-o", "BatchMode=yes", "deploy@mail1.dc.quangtri.gov.vn", "sudo", "-n", "-u", "root", "--",
    )  # fmt: skip


def test_no_ldap_group_is_one_error_naming_the_inventory(tmp_path):
    path = inventory(tmp_path, "all:\n  hosts:\n    mail1:\n")
    with pytest.raises(RemoteError, match="has no host in the `ldap` group"):
        remote.directory_host(path, {})


def test_no_hosts_file(tmp_path):
    with pytest.raises(RemoteError, match=r"has no hosts: add them to hosts\.yml"):
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


def test_a_local_connection_runs_on_this_machine(tmp_path, monkeypatch):
    path = inventory(tmp_path, HOSTS_PLAIN.replace("{ansible_host: 10.0.0.7}", "{ansible_connection: local}"))
    monkeypatch.setattr(remote.getpass, "getuser", lambda: "root")
    assert remote.directory_host(path, {}).prefix == ("env",)
    monkeypatch.setattr(remote.getpass, "getuser", lambda: "ops")
    assert remote.directory_host(path, {}).prefix == ("sudo", "-n", "-u", "root", "--")


def test_a_local_command_is_run_as_argv(monkeypatch):
    seen = {}
    monkeypatch.setattr(remote.shutil, "which", lambda tool: "/usr/bin/env")

    def fake(argv, **kwargs):
        seen["argv"] = argv
        return subprocess.CompletedProcess(argv, 0, "{}", "")

    monkeypatch.setattr(remote.subprocess, "run", fake)
    remote.Runner("h", ("env",), "h").run(["govmail-lifecycle", "run", "--as-of", "2027-01-01"])
    assert seen["argv"] == ["env", "govmail-lifecycle", "run", "--as-of", "2027-01-01"]

"""Running ansible-playbook: command line, environment, recap, failures (with a stand-in binary)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from govmail import playbook
from govmail.errors import PlaybookError
from govmail.project import Project

RECAP = """\
PLAY RECAP *********************************************************************
backup1                    : ok=12   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
mail1                      : ok=87   changed=2    unreachable=0    failed=0    skipped=10   rescued=0    ignored=1
"""


def fake_ansible(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "bin" / "ansible-playbook"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_recap_lines_give_per_host_counts():
    recap = playbook.parse_recap(["TASK [x] ***", *RECAP.splitlines()])
    assert recap["mail1"].changed == 2 and recap["mail1"].ok == 87 and recap["mail1"].ignored == 1
    assert recap["backup1"].skipped == 3


def test_run_streams_tasks_and_returns_the_recap(project: Path, tmp_path: Path, monkeypatch):
    body = f"""echo "ARGS $*"
echo "CFG $ANSIBLE_CONFIG"
echo "PWD $(pwd)"
echo 'PLAY [Directory] ***'
echo 'TASK [openldap : Install slapd] ***'
cat <<'END'
{RECAP}END
"""
    monkeypatch.setattr(playbook, "ansible_playbook", lambda: fake_ansible(tmp_path, body))
    tasks, lines = [], []
    result = playbook.run(Project(project), on_task=tasks.append, on_line=lines.append)
    assert lines[0] == "ARGS -i inventories/lab playbooks/site.yml"
    assert lines[1] == f"CFG {project / 'ansible.cfg'}"
    assert lines[2] == f"PWD {project}"
    assert tasks == ["Directory", "openldap : Install slapd"]
    assert result.changed == 2 and result.failed == 0
    assert result.log_path.parent == project / ".lab" / "logs"
    assert "Install slapd" in result.log_path.read_text()


def test_failed_run_names_the_error_and_the_log(project: Path, tmp_path: Path, monkeypatch):
    body = """echo 'TASK [postfix : Check configuration] ***'
echo 'fatal: [mail1]: FAILED! => {"msg": "postfix check failed"}'
exit 2
"""
    monkeypatch.setattr(playbook, "ansible_playbook", lambda: fake_ansible(tmp_path, body))
    with pytest.raises(PlaybookError, match=r"exit 2; last error: fatal: \[mail1\].*full log: .*\.lab/logs/site-") as e:
        playbook.run(Project(project))
    assert Path(e.value.log_path).is_file()


def test_unreachable_hosts_hint_at_the_lab_status(project: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(playbook, "ansible_playbook", lambda: fake_ansible(tmp_path, "exit 4\n"))
    with pytest.raises(PlaybookError, match=r"is the lab up"):
        playbook.run(Project(project))


def test_missing_playbook_is_named(project: Path):
    with pytest.raises(PlaybookError, match=r"playbooks/backup\.yml does not exist"):
        playbook.run(Project(project), "playbooks/backup.yml")


def test_ansible_playbook_is_taken_from_this_environment():
    path = playbook.ansible_playbook()
    assert path.name == "ansible-playbook" and path.is_file()


# --- the "already converged" stamp -----------------------------------------------------------


def test_a_repeated_lab_up_skips_the_converge_only_for_the_same_content_and_containers(project: Path):
    proj = Project.discover()
    hosts = {"mail1": "aaa", "backup1": "bbb"}
    assert not playbook.is_converged(proj, hosts)
    playbook.record_converged(proj, hosts)
    assert playbook.is_converged(proj, hosts)
    assert not playbook.is_converged(proj, {"mail1": "ccc", "backup1": "bbb"})  # a new container


def test_any_edit_of_the_ansible_content_needs_a_new_converge(project: Path):
    proj = Project.discover()
    hosts = {"mail1": "aaa"}
    playbook.record_converged(proj, hosts)
    (project / "playbooks" / "site.yml").write_text("---\n- name: Changed\n  hosts: all\n  tasks: []\n")
    assert not playbook.is_converged(proj, hosts)


def test_forgetting_the_stamp_forces_the_next_converge(project: Path):
    proj = Project.discover()
    playbook.record_converged(proj, {"mail1": "aaa"})
    playbook.forget_converged(proj)
    assert not playbook.is_converged(proj, {"mail1": "aaa"})


def test_a_managed_file_changed_on_a_host_needs_a_new_converge(project: Path):
    proj = Project.discover()
    hosts = {"mail1": "aaa"}
    playbook.record_converged(proj, hosts, {"mail1": "digest-after-converge"})
    assert playbook.is_converged(proj, hosts, {"mail1": "digest-after-converge"})
    assert not playbook.is_converged(proj, hosts, {"mail1": "digest-after-an-edit"})
    assert not playbook.is_converged(proj, hosts, {"mail1": ""})  # the host could not be read

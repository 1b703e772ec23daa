"""The command line, with the Docker parts replaced: JSON documents, tables, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govmail import cli, lab, playbook
from govmail.errors import DockerUnavailableError, LabError

runner = CliRunner()


@pytest.fixture
def docker_stub(monkeypatch):
    """No Docker engine: connect() returns a token, host states come from this dict."""
    states = {"mail1": "running", "backup1": "running"}
    monkeypatch.setattr(lab, "connect", lambda: "client")
    monkeypatch.setattr(lab, "host_states", lambda client: dict(states))
    return states


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govmail: ") and fragment in lines[0]
    assert "Traceback" not in result.output


def test_status_json_is_the_documented_document(project: Path, docker_stub):
    docker_stub["backup1"] = "stopped"
    result = runner.invoke(cli.app, ["lab", "status", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["domain"] == "quangtri.gov.vn"
    assert document["mail_hostname"] == "mail.quangtri.gov.vn"
    assert document["hosts"] == {"mail1": "running", "backup1": "stopped"}
    assert document["endpoints"]["managesieve"] == {"host": "127.0.0.1", "port": 14190}
    assert len(document["endpoints"]) == 12


def test_status_table_shows_endpoints_for_people(project: Path, docker_stub):
    result = runner.invoke(cli.app, ["lab", "status"])
    assert result.exit_code == 0, result.output
    assert "127.0.0.1:10993" in result.stdout and "mail.quangtri.gov.vn" in result.stdout


def test_credentials_json_lists_accounts_with_unicode_names(project: Path):
    result = runner.invoke(cli.app, ["lab", "credentials", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "Trần Thị Thu Hương" in result.stdout
    assert document["ldap_admin"]["dn"] == "cn=admin,dc=quangtri,dc=gov,dc=vn"
    assert {a["kind"] for a in document["accounts"]} == {"personal", "agency"}


def test_credentials_before_provisioning_is_one_line_error(project: Path):
    (project / ".lab" / "secrets" / "pki" / "ca.crt").unlink()
    result = runner.invoke(cli.app, ["lab", "credentials", "--json"])
    assert_one_line_error(result, "ca.crt does not exist yet")


def test_docker_not_running_is_one_line_error(project: Path, monkeypatch):
    def refuse():
        raise DockerUnavailableError("the Docker engine at unix:///var/run/docker.sock is not answering")

    monkeypatch.setattr(lab, "connect", refuse)
    result = runner.invoke(cli.app, ["lab", "status"])
    assert_one_line_error(result, "Docker engine")


def test_up_without_the_site_playbook_suggests_no_provision(project: Path, docker_stub):
    (project / "playbooks" / "site.yml").unlink()
    result = runner.invoke(cli.app, ["lab", "up"])
    assert_one_line_error(result, "--no-provision")


def test_up_no_provision_starts_hosts_and_prints_status_json(project: Path, docker_stub, monkeypatch):
    calls = {}
    image = lab.ImageInfo(tag="govmail/trixie-systemd:abc", id="sha256:1", built=False, base_tag="b")
    monkeypatch.setattr(lab, "ensure_image", lambda client, logs, progress: image)

    def ensure_hosts(client, image, aliases, progress):
        calls["aliases"] = aliases
        return [lab.HostInfo("mail1", "govmail-lab-mail1", "running", "created", "running")]

    monkeypatch.setattr(lab, "ensure_hosts", ensure_hosts)
    monkeypatch.setattr(playbook, "run", lambda *a, **k: pytest.fail("the playbook must not run"))
    result = runner.invoke(cli.app, ["lab", "up", "--no-provision", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hosts"]["mail1"] == "running"
    assert calls["aliases"] == {"mail1": ["mail.quangtri.gov.vn"]}
    assert "container created" in result.stderr


def test_up_runs_the_site_playbook_and_points_to_credentials(project: Path, docker_stub, monkeypatch):
    image = lab.ImageInfo(tag="t", id="i", built=True, base_tag="b")
    monkeypatch.setattr(lab, "ensure_image", lambda client, logs, progress: image)
    monkeypatch.setattr(lab, "ensure_hosts", lambda client, image, aliases, progress: [])
    ran = []

    def run(project, on_task=None, on_line=None):
        ran.append(project.root)
        return playbook.PlaybookResult("playbooks/site.yml", 0, project.logs_dir / "x.log", 1.0)

    monkeypatch.setattr(playbook, "run", run)
    result = runner.invoke(cli.app, ["lab", "up"])
    assert result.exit_code == 0, result.output
    assert ran == [project.resolve()]
    assert "govmail lab credentials" in result.stdout


def test_down_keeps_secrets_unless_purged(project: Path, docker_stub, monkeypatch):
    monkeypatch.setattr(lab, "down", lambda client, progress: lab.DownResult(containers=["govmail-lab-mail1"]))
    result = runner.invoke(cli.app, ["lab", "down", "--json"])
    assert json.loads(result.stdout)["secrets_removed"] is False
    assert (project / ".lab" / "secrets" / "ldap-admin").exists()
    result = runner.invoke(cli.app, ["lab", "down", "--purge", "--json"])
    assert json.loads(result.stdout)["secrets_removed"] is True
    assert not (project / ".lab" / "secrets").exists()


def test_lab_error_from_the_image_build_is_one_line(project: Path, docker_stub, monkeypatch):
    def fail(client, logs, rebuild, progress):
        raise LabError("debootstrap of trixie failed (exit 1): see /x/debootstrap.log")

    monkeypatch.setattr(lab, "ensure_image", fail)
    result = runner.invoke(cli.app, ["lab", "image"])
    assert_one_line_error(result, "debootstrap.log")


def test_image_prints_the_tag(project: Path, docker_stub, monkeypatch):
    image = lab.ImageInfo(tag="govmail/trixie-systemd:abc", id="i", built=False, base_tag="b")
    monkeypatch.setattr(lab, "ensure_image", lambda client, logs, rebuild, progress: image)
    result = runner.invoke(cli.app, ["lab", "image"])
    assert result.stdout.strip() == "govmail/trixie-systemd:abc"


def test_version_flag():
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("govmail ")


def test_up_converges_again_when_a_managed_file_drifted(project: Path, docker_stub, monkeypatch):
    """A file the roles write, edited on a host, is restored by the next `lab up` (issue 9)."""
    image = lab.ImageInfo(tag="t", id="i", built=False, base_tag="b")
    host = lab.HostInfo("mail1", "govmail-lab-mail1", "running", "reused", container_id="c1")
    monkeypatch.setattr(lab, "ensure_image", lambda client, logs, progress: image)
    monkeypatch.setattr(lab, "ensure_hosts", lambda client, image, aliases, progress: [host])
    on_host = {"digest": "as-converged"}
    monkeypatch.setattr(lab, "managed_files_digest", lambda client, name: on_host["digest"])
    runs = []

    def run(project, on_task=None, on_line=None):
        runs.append(1)
        on_host["digest"] = "as-converged"  # the converge rewrites the files
        return playbook.PlaybookResult("playbooks/site.yml", 0, project.logs_dir / "x.log", 1.0)

    monkeypatch.setattr(playbook, "run", run)
    assert runner.invoke(cli.app, ["lab", "up"]).exit_code == 0
    assert runner.invoke(cli.app, ["lab", "up"]).exit_code == 0
    assert len(runs) == 1  # unchanged: skipped
    on_host["digest"] = "main.cf edited by hand"
    result = runner.invoke(cli.app, ["lab", "up"])
    assert result.exit_code == 0, result.output
    assert len(runs) == 2
    assert "files the roles manage were changed on mail1" in result.stderr

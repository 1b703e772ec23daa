"""`govmail cert revoke`: what it records, what it runs, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from test_cli import assert_one_line_error, runner
from test_pki import ca  # noqa: F401 - the fixture

from govmail import cli, playbook


def _site_ca(project: Path, ca) -> Path:  # noqa: F811
    """Put the test CA (with issued/mail1.crt) where the lab inventory's secrets keep it."""
    directory = project / ".lab" / "secrets" / "pki"
    for path in ca[0].rglob("*"):
        if path.is_file():
            target = directory / path.relative_to(ca[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return directory


def test_revoke_records_the_hosts_certificate_and_converges_the_site(project: Path, ca, monkeypatch):  # noqa: F811
    directory = _site_ca(project, ca)
    runs = []

    def fake_run(proj, playbook="playbooks/site.yml", inventory="inventories/lab", **kwargs):
        runs.append((playbook, inventory))
        return SimpleNamespace(duration=1.0, log_path=project / "log")

    monkeypatch.setattr(playbook, "run", fake_run)
    result = runner.invoke(cli.app, ["cert", "revoke", "mail1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["serial"] == "3A5F01" and document["host"] == "mail1" and document["converged"] is True
    assert document["certificate"]["crl_urls"] == ["http://mail.example.gov.vn/pki/govmail-ca.crl"]
    assert runs == [("playbooks/site.yml", "inventories/lab")]
    assert json.loads((directory / "revoked.json").read_text())["revoked"][0]["serial"] == 0x3A5F01


def test_revoke_without_converge_only_records(project: Path, ca, monkeypatch):  # noqa: F811
    _site_ca(project, ca)
    monkeypatch.setattr(playbook, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    result = runner.invoke(cli.app, ["cert", "revoke", "3a:5f:01", "--no-converge", "--reason", "superseded", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["converged"] is False


def test_operator_supplied_certificates_are_revoked_at_their_ca(project: Path, write_file):
    write_file(
        project / "inventories" / "lab" / "group_vars" / "all" / "tls.yml",
        "---\npki_certificate_file: /etc/site/host.crt\npki_key_file: /etc/site/host.key\n"
        "pki_ca_certificate_file: /etc/site/ca.crt\n",
    )
    result = runner.invoke(cli.app, ["cert", "revoke", "mail1", "--no-converge"])
    assert_one_line_error(result, "uses operator-supplied certificates (pki_certificate_file): revoke them at the CA")


def test_an_unknown_reason_is_one_line(project: Path, ca):  # noqa: F811
    _site_ca(project, ca)
    result = runner.invoke(cli.app, ["cert", "revoke", "mail1", "--reason", "stolen", "--no-converge"])
    assert_one_line_error(result, "reason 'stolen' is unknown")

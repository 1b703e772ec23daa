"""The restore drill's report, its disposable inventory and its one-line refusals (no Docker needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from govmail import cli, drill

REPOSITORY = Path(__file__).resolve().parents[2]
runner = CliRunner()

REPORT = {
    "result": "fail",
    "archive": "1a2b3c4d",
    "archive_time": "2026-11-30T01:30:00+00:00",
    "started": "2026-11-30T02:00:00+00:00",
    "rto_seconds": 600.5,
    "rpo_seconds": 1800,
    "rto_bound_seconds": drill.RTO_BOUND_SECONDS,
    "rto_within_bound": True,
    "phases": [{"name": "create", "seconds": 3.2}, {"name": "restore", "seconds": 540.0}],
    "mailboxes": [
        {"address": "alice@quangtri.gov.vn", "messages": 3, "ok": False},
        {"address": "bob@quangtri.gov.vn", "messages": 1, "ok": True},
    ],
    "directory": {"entries": 12, "ok": True},
    "mismatches": ["alice@quangtri.gov.vn: folder 'INBOX': message 1.M1.h missing <script>"],
}


def test_rto_bound_is_a4s_four_working_hours():
    assert drill.RTO_BOUND_SECONDS == 14400


def test_agency_rows_sum_per_agency_and_fail_with_any_of_its_mailboxes():
    rows = drill.agency_rows(REPORT["mailboxes"], {"alice@quangtri.gov.vn": "sotttt"})
    assert rows == [
        {"agency": "-", "mailboxes": 1, "messages": 1, "ok": True},
        {"agency": "sotttt", "mailboxes": 1, "messages": 3, "ok": False},
    ]


def test_reports_are_written_as_json_and_as_a_page_with_a_phase_chart(tmp_path):
    report = {**REPORT, "agencies": drill.agency_rows(REPORT["mailboxes"], {})}
    page = drill.write_reports(report, tmp_path)
    assert page.name == "drill-20261130T020000Z.html"
    document = json.loads((tmp_path / "drill-20261130T020000Z.json").read_text())
    assert document["report_html"] == str(page) and document["rto_seconds"] == 600.5
    text = page.read_text()
    assert "Restore drill: FAIL" in text
    assert text.count("<rect ") == 2 and "540.0 s" in text
    assert "&lt;script&gt;" in text and "<script>" not in text  # mismatches are escaped


def test_the_disposable_inventory_keeps_host_names_and_points_them_at_the_drills_containers(tmp_path):
    secrets = tmp_path / "site-secrets"
    secrets.mkdir()
    for name in ("backup-repository", "backup-recovery", "ldap-admin"):
        (secrets / name).write_text(name)
    options = drill.Options(prefix="govmail-drill-t")
    runner_ = drill.Drill(REPOSITORY / "inventories" / "lab", REPOSITORY, secrets, tmp_path / "r", options)
    work = tmp_path / "work"
    work.mkdir()
    inventory, drill_secrets = runner_.write_inventory(work)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]
    assert hosts["hosts"]["mail1"]["ansible_host"] == "govmail-drill-t-mail1"
    assert hosts["hosts"]["backup1"]["ansible_host"] == "govmail-drill-t-backup1"
    assert set(hosts["children"]["ldap"]["hosts"]) == {"mail1"}
    assert set(hosts["children"]["backup"]["hosts"]) == {"backup1"}
    assert set(hosts["children"]["dns"]["hosts"]) == {"backup1"}  # the site's DNS server comes along
    assert (inventory / "group_vars").resolve() == (REPOSITORY / "inventories" / "lab" / "group_vars").resolve()
    assert sorted(p.name for p in drill_secrets.iterdir()) == ["backup-recovery", "backup-repository"]


def test_the_disposable_inventory_keeps_each_group_s_host_order(tmp_path):
    """The first webmail host runs the webmail's database (govmail_webmail_database_host's
    default): a drill whose inventory listed the site's webmail hosts in another order would run
    it on another host than the one whose archive holds it."""
    site = tmp_path / "site"
    shutil.copytree(REPOSITORY / "inventories" / "lab", site)
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    hosts["all"]["hosts"] = {"web2": dict(hosts["all"]["hosts"]["mail1"]), **hosts["all"]["hosts"]}
    hosts["all"]["children"]["webmail"]["hosts"] = {"web2": None, "mail1": None}
    (site / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    secrets = tmp_path / "site-secrets"
    secrets.mkdir()
    runner_ = drill.Drill(site, REPOSITORY, secrets, tmp_path / "r", drill.Options(prefix="govmail-drill-t"))
    work = tmp_path / "work"
    work.mkdir()
    inventory, _ = runner_.write_inventory(work)
    written = drill.Site(inventory, REPOSITORY)
    assert written.hosts("webmail") == ["web2", "mail1"]
    assert written.value("govmail_webmail_database_host") == "web2"
    assert written.backup_clients() == ["mail1", "web2"]


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--prefix", "Govmail Lab", "--prefix 'Govmail Lab'"),
        ("--subnet", "172.29.51.0/33", "--subnet '172.29.51.0/33' is not a network"),
        ("--port-base", "80", "--port-base 80"),
    ],
    ids=["prefix", "subnet", "port-base"],
)
def test_bad_drill_options_are_refused_in_one_line(option, value, fragment):
    result = runner.invoke(cli.app, ["drill", option, value])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govmail: ") and fragment in lines[0]


def test_keep_and_remove_together_are_refused_in_one_line():
    result = runner.invoke(cli.app, ["drill", "--keep", "--remove"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--keep and --remove" in lines[0]


def test_a_kept_stack_lives_under_the_report_directory_named_by_its_prefix(tmp_path):
    options = drill.Options(prefix="govmail-drill-k", keep=True)
    runner_ = drill.Drill(REPOSITORY / "inventories" / "lab", REPOSITORY, tmp_path, tmp_path / "r", options)
    assert runner_.kept_dir() == tmp_path / "r" / "govmail-drill-k-stack"


@pytest.mark.parametrize("kept", [True, False], ids=["its-directory", "another-report"])
def test_remove_names_the_decrypted_secrets_it_removed_or_warns_that_it_found_none(tmp_path, monkeypatch, kept):
    report = tmp_path / "r"
    stack = report / "govmail-drill-stack"
    if kept:
        (stack / "secrets" / "pki").mkdir(parents=True)
        (stack / "secrets" / "pki" / "ca.key").write_text("key")
    monkeypatch.setattr(drill, "_docker", lambda *args, **kwargs: "govmail-drill-mail1\n" if args[0] == "ps" else "")
    result = runner.invoke(cli.app, ["drill", "--remove", "--report", str(report), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["removed"] == ["govmail-drill-mail1"]
    assert answer["secrets"] == (str(stack) if kept else None)
    assert not stack.exists()
    warned = "no kept stack directory" in result.stderr
    assert warned is not kept


def _lab_drill(tmp_path):
    return drill.Drill(REPOSITORY / "inventories" / "lab", REPOSITORY, tmp_path, tmp_path / "r", drill.Options())


def test_the_drill_opens_the_active_mailbox_with_the_most_mail(tmp_path, monkeypatch):
    runner_ = _lab_drill(tmp_path)
    base = "ou=sokhcn,ou=agencies,dc=quangtri,dc=gov,dc=vn"
    entries = [
        {"dn": [f"uid=a,{base}"], "objectclass": ["inetOrgPerson", "govmailMailbox"], "mail": ["a@q.vn"],
         "govmailstatus": ["active"]},
        {"dn": [f"uid=b,{base}"], "objectclass": ["inetOrgPerson", "govmailMailbox"], "mail": ["b@q.vn"],
         "govmailstatus": ["locked"]},
        {"dn": [f"uid=c,{base}"], "objectclass": ["inetOrgPerson", "govmailMailbox"], "mail": ["c@q.vn"],
         "govmailstatus": ["active"]},
        {"dn": [base], "objectclass": ["organizationalUnit"]},
    ]  # fmt: skip
    monkeypatch.setattr(runner_, "_entries", lambda: entries)
    rows = [{"address": "a@q.vn", "messages": 2}, {"address": "b@q.vn", "messages": 9},
            {"address": "c@q.vn", "messages": 5}]  # fmt: skip
    assert runner_._account(rows) == {"address": "c@q.vn", "dn": f"uid=c,{base}"}
    monkeypatch.setattr(runner_, "_entries", lambda: entries[3:])
    with pytest.raises(drill.DrillError, match="no active mailbox"):
        runner_._account(rows)


def test_the_drills_own_clerk_is_delegated_the_mailbox_and_deleted_afterwards(tmp_path, monkeypatch):
    runner_ = _lab_drill(tmp_path)
    calls = []
    monkeypatch.setattr(runner_, "_ldap", lambda tool, ldif: calls.append((tool, ldif)))
    account = {"address": "c@q.vn", "dn": "uid=c,ou=sokhcn,ou=agencies,dc=q"}
    with runner_.drill_credential(account) as credential:
        assert len(calls) == 1 and calls[0][0] == "ldapadd"
        ldif = calls[0][1]
        clerk = credential["login"].split("*")[1]
        assert credential["login"] == f"c@q.vn*{clerk}" and clerk.startswith("govmail-drill-")
        assert f"mail: {clerk}" in ldif and "govmailDelegateFor: c@q.vn" in ldif
        assert "dn: uid=govmail-drill-" in ldif and ",ou=sokhcn,ou=agencies,dc=q\n" in ldif
        assert "userPassword: {ARGON2}" in ldif and credential["password"] not in ldif
    assert calls[1][0] == "ldapdelete" and calls[1][1].startswith("uid=govmail-drill-")


@pytest.mark.parametrize("keep", [False, True])
def test_an_archive_that_differs_from_its_manifest_fails_at_the_check_and_builds_nothing(tmp_path, monkeypatch, keep):
    options = drill.Options(keep=keep)
    runner_ = drill.Drill(REPOSITORY / "inventories" / "lab", REPOSITORY, tmp_path, tmp_path / "r", options,
                          say=lambda line: None)  # fmt: skip
    line = "alice@quangtri.gov.vn: folder 'INBOX': message 1.M1.h altered (sha256 ab... in the manifest, cd... here)"
    checked = {"archive": "1a2b3c4d", "time": "2026-11-30T01:30:00+00:00", "mismatches": [line],
               "mailboxes": [{"address": "alice@quangtri.gov.vn", "messages": 3, "ok": False}],
               "directory": {"entries": 12, "ok": True}}  # fmt: skip

    def never(*_args):
        raise AssertionError("a stack was built or removed for an archive the check refused")

    monkeypatch.setattr(runner_, "check", lambda archive: checked)
    for phase in ("create", "copy_repository", "restore", "verify", "remove"):
        monkeypatch.setattr(runner_, phase, never)
    report = runner_.run("latest")
    assert report["result"] == "fail" and report["archive"] == "1a2b3c4d"
    assert report["mismatches"] == [line]
    assert [row["name"] for row in report["phases"]] == ["check"]
    assert report["mailboxes"] == checked["mailboxes"] and report["rto_seconds"] is None
    assert "kept" not in report
    assert "message 1.M1.h altered" in Path(report["report_html"]).read_text()

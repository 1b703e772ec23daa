"""`govmail check` against the stack under test: what the person on call sees, and the exit
status the monitoring system reads (0 ok, 1 warning, 2 critical).

The check reaches the hosts as the inventory says (docker exec here); the tests point a copy of
the lab inventory at the stack's containers (GOVMAIL_MAIL_CONTAINER) with the lab's group_vars.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import clients
import pytest
from conftest import MAIL_CONTAINER, PROJECT_DIR, imap_fetch

from govmail import dns

MAILSTORE_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995, "managesieve": 4190}
ALL_PORTS = {"ldap": 389, "ldaps": 636, "smtp": 25, "submission": 587, "submissions": 465} | MAILSTORE_PORTS


@pytest.fixture(scope="session")
def check_inventory(tmp_path_factory):
    """The lab inventory, aimed at this stack's containers."""
    inventory = tmp_path_factory.mktemp("check-inventory")
    backup = MAIL_CONTAINER.replace("mail1", "backup1")
    (inventory / "hosts.yml").write_text(f"""---
all:
  hosts:
    mail1: {{ansible_connection: community.docker.docker, ansible_host: {MAIL_CONTAINER}}}
    backup1: {{ansible_connection: community.docker.docker, ansible_host: {backup}}}
  children:
    ldap: {{hosts: {{mail1: }}}}
    mx: {{hosts: {{mail1: }}}}
    mailstore: {{hosts: {{mail1: }}}}
    webmail: {{hosts: {{mail1: }}}}
    backup: {{hosts: {{backup1: }}}}
    dns: {{hosts: {{backup1: }}}}
""")
    (inventory / "group_vars").symlink_to(PROJECT_DIR / "inventories" / "lab" / "group_vars")
    return inventory


@pytest.fixture(scope="session")
def check(govmail, check_inventory):
    """``check()`` -> (exit status, report)."""

    def run():
        result = govmail("check", "--inventory", str(check_inventory), "--json")
        assert result.returncode in (0, 1, 2), result.stderr
        return result.returncode, json.loads(result.stdout)

    return run


def rows(report, status=None, **match):
    return [
        row for row in report["checks"]
        if (status is None or row["status"] == status) and all(row[key] == value for key, value in match.items())
    ]  # fmt: skip


def _on_dns_host(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", MAIL_CONTAINER.replace("mail1", "backup1"), "sh", "-c", command],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def _on_host(command: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", "-i", MAIL_CONTAINER, "sh", "-c", command], input=input,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def healthy(check, fresh_backup):
    """The report of the stack as converged and backed up (one run shared by the tests that read it)."""
    return check()


def test_a_healthy_stack_is_ok_with_exit_status_0(healthy):
    code, report = healthy
    assert [row for row in report["checks"] if row["status"] != "ok"] == []
    assert (code, report["status"]) == (0, "ok")
    active = {row["service"] for row in rows(report, check="active")}
    assert active == {
        "slapd", "postfix", "dovecot", "govmail-lifecycle", "govmail-daily-mail", "govmail-host-check",
        "govmail-usage-rollup",
    }  # fmt: skip
    assert {row["host"] for row in rows(report, check="reachable")} == {"mail1", "backup1"}


def test_every_hosts_resolver_sees_every_record_the_site_publishes(healthy, govmail, check_inventory):
    _, report = healthy
    published = json.loads(govmail("dns", "--inventory", str(check_inventory), "--json").stdout)["records"]
    expected = {f"{record['type']} {record['name']}" for record in published}
    for host in ("mail1", "backup1"):
        seen = {row["check"]: row for row in rows(report, host=host, service="dns")}
        assert set(seen) == expected
        assert all(row["status"] == "ok" for row in seen.values()), seen
    assert rows(report, host="mail1", check=f"MX {published[0]['name']}")[0]["detail"].startswith(
        published[0]["value"] + " (resolver 172.29."
    )


@pytest.fixture
def domain_records(govmail, check_inventory, domain):
    """``serve(records)`` makes the site's DNS server (roles/dns: unbound on backup1) answer these
    for the domain's own name, through unbound-control as an operator's slip would (not a
    converge); the published records of that name (`govmail dns`, the one list) are put back after."""
    published = json.loads(govmail("dns", "--inventory", str(check_inventory), "--json").stdout)["records"]
    at_domain = [record for record in published if record["name"] == f"{domain}."]

    def serve(records):
        lines = [f"unbound-control local_data_remove {domain}."]
        lines += [f"unbound-control local_data '{dns.zone_line(record)}'" for record in records]
        done = _on_dns_host(" && ".join(lines))
        assert done.returncode == 0, done.stdout + done.stderr

    serve.published = at_domain
    yield serve
    serve(at_domain)


def test_a_wrong_mx_is_a_warning_naming_the_record_and_putting_it_back_is_ok(check, domain_records, domain, hostname):
    wrong = {"name": f"{domain}.", "type": "MX", "value": "10 wrong.example."}
    domain_records([wrong, *(record for record in domain_records.published if record["type"] != "MX")])
    code, report = check()
    warned = rows(report, "warning", service="dns")
    assert (code, report["status"]) == (1, "warning")
    assert {(row["host"], row["check"]) for row in warned} == {("mail1", f"MX {domain}."), ("backup1", f"MX {domain}.")}
    assert warned[0]["detail"].startswith(f"expected 10 {hostname}., resolver ")
    assert warned[0]["detail"].endswith(" sees 10 wrong.example.")
    assert rows(report, "ok", host="mail1", check=f"TXT {domain}.")  # the SPF beside it is untouched

    domain_records(domain_records.published)
    code, report = check()
    assert rows(report, "ok", host="mail1", check=f"MX {domain}.") and rows(
        report, "ok", host="backup1", check=f"MX {domain}."
    )
    assert rows(report, service="dns", status="warning") == []


def test_the_backup_age_names_the_newest_archive_of_the_mail_host(healthy, fresh_backup):
    _, report = healthy
    [row] = rows(report, check="backup age")
    assert (row["host"], row["service"], row["status"]) == ("mail1", "backup", "ok")
    assert row["data"]["archive"] == fresh_backup["archive"] and row["data"]["age_hours"] < 1
    assert row["detail"].startswith(f"latest archive {fresh_backup['archive']} is 0.")


def test_a_backup_older_than_the_threshold_is_critical(govmail, check_inventory, fresh_backup, tmp_path):
    """The same stack judged with thresholds it cannot meet (0 hours): the age is past them."""
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "hosts.yml").write_text((check_inventory / "hosts.yml").read_text())
    (strict / "group_vars").mkdir()
    (strict / "group_vars" / "all").mkdir()
    for item in (check_inventory / "group_vars" / "all").iterdir():
        (strict / "group_vars" / "all" / item.name).symlink_to(item)
    (strict / "group_vars" / "all" / "zz-backup-age.yml").write_text(
        "---\ngovmail_check_backup_warning_hours: 0\ngovmail_check_backup_critical_hours: 0\n"
    )
    result = govmail("check", "--inventory", str(strict), "--json")
    [row] = rows(json.loads(result.stdout), check="backup age")
    assert (result.returncode, row["status"]) == (2, "critical")
    assert "warning 0 h, critical 0 h" in row["detail"]


@pytest.mark.parametrize("number", ALL_PORTS.values(), ids=list(ALL_PORTS))
def test_every_port_answers_with_tls_1_2_or_later_and_the_sites_certificate(healthy, hostname, number):
    _, report = healthy
    (row,) = [row for row in report["checks"] if row["check"].startswith(f"port {number} ")]
    assert row["status"] == "ok", row["detail"]
    assert row["data"]["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert f"certificate for {hostname} verified by the site CA" in row["detail"]
    assert row["data"]["certificate_days_left"] > 30


def test_a_mailbox_above_95_percent_of_its_quota_is_a_warning_naming_it(check, full_mailbox):
    code, report = check()
    (row,) = rows(report, check="quota")
    assert (code, report["status"], row["status"]) == (1, "warning", "warning")
    assert row["detail"].startswith("1 mailbox at or above 95% of the quota: ")
    assert full_mailbox["address"] in row["detail"]
    assert [item["address"] for item in row["data"]["above"]] == [full_mailbox["address"]]


@pytest.fixture
def dovecot_stopped_with_mail_waiting(mail_host, alice, domain):
    """Dovecot stopped and one message for alice waiting in Postfix's queue; afterwards Dovecot is
    started, the queue flushed, and the message must arrive (nothing lost)."""
    message_id = f"<{uuid.uuid4()}@govmail.test>"
    assert mail_host.run("systemctl stop dovecot").rc == 0
    try:
        sender = f"postmaster@{domain}"
        text = f"From: {sender}\nTo: {alice['address']}\nMessage-ID: {message_id}\nSubject: check\n\nqueued\n"
        sent = _on_host(f"/usr/sbin/sendmail -f {sender} -- {alice['address']}", text)
        assert sent.returncode == 0, sent.stderr
        clients.wait_for(lambda: _on_host("postqueue -j").stdout.strip() != "", what="the message to be queued")
        yield message_id
    finally:
        assert mail_host.run("systemctl start dovecot").rc == 0
        _on_host("postqueue -f")
    clients.wait_for(lambda: _on_host("postqueue -j").stdout.strip() == "", what="the queue to empty", timeout=120)


def test_a_stopped_dovecot_is_critical_naming_the_service_its_ports_and_the_waiting_mail(
    check, dovecot_stopped_with_mail_waiting
):
    code, report = check()
    assert (code, report["status"]) == (2, "critical")
    assert rows(report, "critical", service="dovecot", check="active")[0]["detail"] == "dovecot is inactive"
    refused = {row["check"]: row["detail"] for row in rows(report, "critical", service="dovecot")}
    for service, port in MAILSTORE_PORTS.items():
        assert refused[f"port {port} ({service})"] == "connection refused (nothing listens)"
    (queue,) = rows(report, check="queue")
    assert queue["data"]["messages"] == 1 and queue["detail"].startswith("1 message in the queue, the oldest waiting ")
    # what is not Dovecot's stays ok
    assert rows(report, "ok", service="postfix", check="active") and rows(report, "ok", service="slapd")


def test_mail_queued_while_dovecot_was_stopped_arrives_after_it_starts(
    check, dovecot_stopped_with_mail_waiting, imaps, alice
):
    _, report = check()
    assert rows(report, check="queue")[0]["data"]["messages"] == 1
    _on_host("systemctl start dovecot && postqueue -f")
    client = imaps(alice)
    clients.wait_for(
        lambda: imap_fetch(client, dovecot_stopped_with_mail_waiting) is not None, what="the queued message"
    )

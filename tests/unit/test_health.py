"""`govmail check` without containers: the probe's TLS handshakes against real local TLS servers
(certificates made here by a test CA), the judging of facts against the thresholds, the
inventory's thresholds, and the CLI's exit status."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from govmail import health, probe, remote
from govmail.cli import app
from govmail.inventory import Site

HOSTNAME = "mail.quangtri.gov.vn"
NOW = datetime.datetime.now(datetime.UTC)
LIMITS = {
    "certificate_warning_days": 30,
    "certificate_critical_days": 7,
    "queue_warning_messages": 100,
    "queue_critical_messages": 1000,
    "queue_warning_minutes": 60,
    "queue_critical_minutes": 240,
    "store_warning_free_percent": 20,
    "store_critical_free_percent": 10,
    "quota_warning_percent": 95,
}


# --- a test CA and local TLS servers ----------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("govmail test CA"))
        .issuer_name(_name("govmail test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=400))
        .not_valid_after(NOW + datetime.timedelta(days=4000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return {"key": key, "cert": cert, "file": str(path)}


def issue(ca, directory: Path, *, days_left: float, name: str = HOSTNAME) -> ssl.SSLContext:
    """A server context with a certificate for ``name`` that expires ``days_left`` days from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = NOW + datetime.timedelta(days=days_left)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca["cert"].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(NOW, not_after) - datetime.timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca["key"], hashes.SHA256())
    )
    cert_file, key_file = directory / "host.crt", directory / "host.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def serve(context: ssl.SSLContext, mode: str = "implicit") -> int:
    """A one-connection server on 127.0.0.1 speaking ``mode`` before TLS; its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                try:
                    if mode == "smtp":
                        conn.sendall(b"220 mail ESMTP\r\n")
                        conn.recv(1024)  # EHLO
                        conn.sendall(b"250-mail\r\n250 STARTTLS\r\n")
                        conn.recv(1024)  # STARTTLS
                        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
                    elif mode == "ldap":
                        request = conn.recv(1024)
                        assert request == probe.LDAP_STARTTLS
                        conn.sendall(bytes.fromhex("300c02010178070a010004000400"))
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (OSError, ssl.SSLError, AssertionError):
                    pass

    threading.Thread(target=answer, daemon=True).start()
    return port


def judged(port_facts: dict, now: float | None = None) -> dict:
    spec = {"hostname": HOSTNAME, "ports": [{"service": "imaps", "port": 993, "mode": "implicit", "unit": "dovecot"}]}
    facts = {"now": now or NOW.timestamp(), "ports": [{"service": "imaps", "port": 993} | port_facts]}
    return health.judge("mail1", spec, facts, LIMITS)[0]


# --- TLS on the ports -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["implicit", "smtp", "ldap"])
def test_a_port_with_a_good_certificate_is_ok(ca, tmp_path, mode):
    port = serve(issue(ca, tmp_path, days_left=365), mode)
    facts = probe.probe_port(port, mode, HOSTNAME, ca["file"])
    assert facts["error"] is None and facts["protocol"] in ("TLSv1.2", "TLSv1.3")
    row = judged(facts)
    assert row["status"] == "ok" and "verified by the site CA" in row["detail"] and "(364 days)" in row["detail"]


def test_an_expired_certificate_is_critical(ca, tmp_path):
    port = serve(issue(ca, tmp_path, days_left=-2))
    row = judged(probe.probe_port(port, "implicit", HOSTNAME, ca["file"]))
    assert row["status"] == "critical"
    assert "certificate has expired" in row["detail"]


@pytest.mark.parametrize(("days", "status"), [(20, "warning"), (3, "critical"), (31, "ok")])
def test_a_certificate_near_its_expiry_warns_at_30_days_and_is_critical_at_7(ca, tmp_path, days, status):
    port = serve(issue(ca, tmp_path, days_left=days + 0.5))
    row = judged(probe.probe_port(port, "implicit", HOSTNAME, ca["file"]))
    assert row["status"] == status, row["detail"]
    assert row["data"]["certificate_days_left"] == days


def test_a_certificate_for_another_name_is_critical(ca, tmp_path):
    port = serve(issue(ca, tmp_path, days_left=365, name="other.example"))
    row = judged(probe.probe_port(port, "implicit", HOSTNAME, ca["file"]))
    assert row["status"] == "critical" and "Hostname mismatch" in row["detail"]


def test_a_certificate_of_another_ca_is_critical(ca, tmp_path, tmp_path_factory):
    port = serve(issue(ca, tmp_path, days_left=365))
    other = tmp_path_factory.mktemp("other")
    issue(ca, other, days_left=365)  # a leaf, not the CA: nothing chains to it
    row = judged(probe.probe_port(port, "implicit", HOSTNAME, str(other / "host.crt")))
    assert row["status"] == "critical" and "unable to get local issuer certificate" in row["detail"]


def test_a_closed_port_is_critical_and_says_so(ca):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    row = judged(probe.probe_port(port, "implicit", HOSTNAME, ca["file"]))
    assert row == {
        "host": "mail1", "service": "dovecot", "check": "port 993 (imaps)", "status": "critical",
        "detail": "connection refused (nothing listens)",
    }  # fmt: skip


def test_a_missing_site_ca_file_is_named():
    assert probe.probe_port(1, "implicit", HOSTNAME, "/nonexistent/ca.crt") == {
        "error": "cannot read the site CA /nonexistent/ca.crt: No such file or directory"
    }


# --- queue, mail store, quota -------------------------------------------------------------------


def _one(kind: str, facts: dict, spec_extra: dict | None = None) -> list[dict]:
    spec = {"hostname": HOSTNAME, "ports": []} | (spec_extra or {})
    return health.judge("mail1", spec, {"now": 10_000.0, kind: facts}, LIMITS)


@pytest.mark.parametrize(
    ("messages", "oldest", "status"),
    [(0, None, "ok"), (3, 10_000.0 - 59 * 60, "ok"), (3, 10_000.0 - 61 * 60, "warning"), (100, 9_990.0, "warning"),
     (2, 10_000.0 - 241 * 60, "critical"), (1000, 9_990.0, "critical")],
)  # fmt: skip
def test_the_queue_is_judged_by_its_length_and_the_age_of_its_oldest_message(messages, oldest, status):
    (row,) = _one("queue", {"messages": messages, "oldest": oldest, "error": None})
    assert row["status"] == status
    assert row["data"]["messages"] == messages
    assert row["detail"].startswith(f"{messages} message")


@pytest.mark.parametrize(("free", "status"), [(50, "ok"), (15, "warning"), (5, "critical")])
def test_the_mail_store_warns_below_20_percent_free_and_is_critical_below_10(free, status):
    rows = _one("store", {"path": "/var/vmail", "bytes": 100 * 2**30, "bytes_free": free * 2**30,
                          "inodes": 1000, "inodes_free": 900, "error": None})  # fmt: skip
    space, inodes = rows
    assert (space["check"], space["status"]) == ("mail store space", status)
    assert (inodes["check"], inodes["status"]) == ("mail store inodes", "ok")


def test_mailboxes_at_95_percent_of_their_quota_are_named():
    mailboxes = [
        {"address": "a@quangtri.gov.vn", "used_kib": 950, "limit_kib": 1000},
        {"address": "b@quangtri.gov.vn", "used_kib": 949, "limit_kib": 1000},
        {"address": "c@quangtri.gov.vn", "used_kib": 5000, "limit_kib": None},
    ]
    (row,) = _one("quota", {"mailboxes": mailboxes, "error": None})
    assert row["status"] == "warning"
    assert "a@quangtri.gov.vn 95%" in row["detail"] and "b@" not in row["detail"]
    assert row["data"]["above"] == [{"address": "a@quangtri.gov.vn", "percent": 95.0}]


def test_an_inactive_unit_is_critical_and_named():
    rows = health.judge("mail1", {"ports": []}, {"units": {"dovecot": "inactive", "postfix": "active"}}, LIMITS)
    assert [(r["service"], r["status"], r["detail"]) for r in rows] == [
        ("dovecot", "critical", "dovecot is inactive"), ("postfix", "ok", "postfix is active"),
    ]  # fmt: skip


# --- the site: thresholds, hosts, DNS seam, exit status -------------------------------------------


def _site(project: Path, extra: str = "") -> Site:
    inventory = project / "inventories" / "lab"
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    mail1:\n    backup1:\n  children:\n"
        "    ldap: {hosts: {mail1: }}\n    mx: {hosts: {mail1: }}\n    mailstore: {hosts: {mail1: }}\n"
        "    backup: {hosts: {backup1: }}\n" + extra
    )
    return Site(inventory, project)


def test_the_thresholds_are_the_inventorys(project):
    site = _site(project, "  vars: {govmail_check_quota_warning_percent: 90}\n")
    assert health.thresholds(site) == LIMITS | {"quota_warning_percent": 90}


@pytest.mark.parametrize(
    ("line", "message"),
    [("govmail_check_queue_warning_minutes: soon", "govmail_check_queue_warning_minutes is 'soon'"),
     ("govmail_check_certificate_critical_days: 40",
      "govmail_check_certificate_warning_days (30) must be >= govmail_check_certificate_critical_days (40)")],
)  # fmt: skip
def test_a_bad_threshold_is_named(project, line, message):
    site = _site(project, f"  vars: {{{line}}}\n")
    with pytest.raises(health.CheckError, match=message.replace("(", r"\(").replace(")", r"\)")):
        health.thresholds(site)


def test_each_host_is_asked_for_what_its_groups_run(project):
    site = _site(project)
    mail, backup = health.host_spec(site, "mail1"), health.host_spec(site, "backup1")
    assert mail["units"] == [
        "slapd",
        "postfix",
        "dovecot",
        "govmail-lifecycle.timer",
        "govmail-daily-mail.timer",
        "govmail-host-check.timer",
        "govmail-usage-rollup.timer",
    ]
    assert [(p["service"], p["port"], p["mode"]) for p in mail["ports"]] == [
        ("ldap", 389, "ldap"), ("ldaps", 636, "implicit"), ("smtp", 25, "smtp"), ("submission", 587, "smtp"),
        ("submissions", 465, "implicit"), ("imap", 143, "imap"), ("imaps", 993, "implicit"), ("pop3", 110, "pop3"),
        ("pop3s", 995, "implicit"), ("managesieve", 4190, "sieve"),
    ]  # fmt: skip
    assert (mail["hostname"], mail["ca_file"], mail["store"]) == (HOSTNAME, "/etc/ssl/govmail/ca.crt", "/var/vmail")
    assert backup == backup | {"units": [], "ports": [], "queue": False, "store": None, "directory": None}


def test_each_host_asks_its_resolver_for_the_records_of_govmail_dns(project):
    queries, rows = health.dns_queries(_site(project, "  vars: {govmail_dns_addresses: [203.0.113.25]}\n"))
    assert rows == []
    assert queries[0] == {"name": "quangtri.gov.vn.", "type": "MX", "expected": ["10 mail.quangtri.gov.vn."]}
    assert [(q["name"], q["type"]) for q in queries] == [
        ("quangtri.gov.vn.", "MX"), ("mail.quangtri.gov.vn.", "A"), ("25.113.0.203.in-addr.arpa.", "PTR"),
        ("quangtri.gov.vn.", "TXT"), ("_dmarc.quangtri.gov.vn.", "TXT"), ("govmail._domainkey.quangtri.gov.vn.", "TXT"),
    ]  # fmt: skip
    assert health.dns_queries(_site(project, "  vars: {govmail_check_dns: false}\n")) == ([], [])


def test_a_malformed_dns_fact_is_a_warning_naming_it_and_the_check_goes_on(project):
    queries, rows = health.dns_queries(_site(project))
    assert queries == [] and rows[0]["status"] == "warning"
    assert rows[0]["detail"].startswith("the records cannot be made: govmail_dns_addresses is []")


QUERIES = [
    {"name": "quangtri.gov.vn.", "type": "MX", "expected": ["10 mail.quangtri.gov.vn."]},
    {"name": "quangtri.gov.vn.", "type": "TXT", "expected": ["v=spf1 mx -all"]},
    {"name": "_dmarc.quangtri.gov.vn.", "type": "TXT", "expected": ["v=DMARC1; p=quarantine"]},
]


def _answers(mx: list[str], dmarc_status: str = "NOERROR") -> dict:
    return {"resolvers": ["172.29.41.3"], "error": None, "answers": [
        {"name": "quangtri.gov.vn.", "type": "MX", "status": "NOERROR", "values": mx, "error": None},
        {"name": "quangtri.gov.vn.", "type": "TXT", "status": "NOERROR", "values": ['"v=spf1 " "mx -all"'],
         "error": None},
        {"name": "_dmarc.quangtri.gov.vn.", "type": "TXT", "status": dmarc_status,
         "values": ['"v=DMARC1; p=quarantine"'] if dmarc_status == "NOERROR" else [], "error": None},
    ]}  # fmt: skip


def test_records_the_resolver_sees_as_published_are_ok():
    rows = health.judge_dns("mail1", QUERIES, _answers(["10 MAIL.quangtri.gov.vn."]))
    assert [(r["check"], r["status"]) for r in rows] == [
        ("MX quangtri.gov.vn.", "ok"), ("TXT quangtri.gov.vn.", "ok"), ("TXT _dmarc.quangtri.gov.vn.", "ok"),
    ]  # fmt: skip
    assert rows[0]["detail"] == "10 mail.quangtri.gov.vn. (resolver 172.29.41.3)"


def test_a_different_record_is_a_warning_naming_what_is_expected_and_what_is_seen():
    row = health.judge_dns("mail1", QUERIES, _answers(["10 wrong.example."]))[0]
    assert (row["status"], row["check"]) == ("warning", "MX quangtri.gov.vn.")
    assert row["detail"] == "expected 10 mail.quangtri.gov.vn., resolver 172.29.41.3 sees 10 wrong.example."


def test_a_missing_record_is_a_warning_with_the_resolvers_answer():
    row = health.judge_dns("mail1", QUERIES, _answers(["10 mail.quangtri.gov.vn."], "NXDOMAIN"))[2]
    assert (row["status"], row["check"]) == ("warning", "TXT _dmarc.quangtri.gov.vn.")
    assert row["detail"] == (
        "missing: expected v=DMARC1; p=quarantine; resolver 172.29.41.3 answered NXDOMAIN with no TXT record"
    )


def test_an_unreachable_resolver_is_one_warning_naming_it():
    found = {"resolvers": ["172.29.41.3"], "answers": [], "error": "no resolver answers (no servers could be reached)"}
    assert health.judge_dns("backup1", QUERIES, found) == [
        {"host": "backup1", "service": "dns", "check": "resolver", "status": "warning",
         "detail": "the host's resolver 172.29.41.3 does not answer: no resolver answers (no servers could be reached)"}
    ]  # fmt: skip


FAKE_DIG = """#!/bin/sh
# a stand-in for dig: answers as dig +noall +answer +comments prints
case "$*" in
  *" quangtri.gov.vn. MX") printf ';; Got answer:\n;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n'
     printf 'quangtri.gov.vn.\t3600\tIN\tMX\t10 mail.quangtri.gov.vn.\n' ;;
  *" _dmarc.quangtri.gov.vn. TXT") printf ';; ->>HEADER<<- opcode: QUERY, status: NXDOMAIN, id: 2\n' ;;
  *) echo ';; communications error to 172.29.41.3#53: timed out'; exit 9 ;;
esac
"""


def test_the_probe_reads_digs_answers_and_status(tmp_path, monkeypatch):
    (tmp_path / "dig").write_text(FAKE_DIG)
    (tmp_path / "dig").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    found = probe.dns([{"name": q["name"], "type": q["type"]} for q in QUERIES])
    assert found["error"] is None
    assert [(a["status"], a["values"], a["error"]) for a in found["answers"]] == [
        ("NOERROR", ["10 mail.quangtri.gov.vn."], None),
        (None, [], "communications error to 172.29.41.3#53: timed out"),
        ("NXDOMAIN", [], None),
    ]  # fmt: skip


NOW_BACKUP = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
ARCHIVES = [  # `govmail-backup list --json` (restic's times carry nanoseconds)
    {"archive": "1a2b3c4d", "time": "2026-11-28T02:00:05.123456789+00:00", "mailboxes": 4, "messages": 17},
    {"archive": "5e6f7a8b", "time": "2026-11-30T02:00:07.987654321+00:00", "mailboxes": 4, "messages": 18},
]


class FakeRunner(remote.Runner):
    def __init__(self, host: str, answer: dict | None, archives: list | None = ARCHIVES):
        super().__init__(host, ("docker", "exec", "-i", host), f"{host} (test)")
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "archives", archives)

    def run(self, command, *, timeout=0, input=None):
        if self.answer is None:
            raise remote.RemoteError(f"cannot reach {self.description}: no such container")
        if command == ["govmail-backup", "list", "--json"]:
            if self.archives is None:
                return remote.Completed(2, "", "govmail-backup: the backup host backup1 does not answer")
            return remote.Completed(0, json.dumps(self.archives), "")
        assert command[1] == "-" and "def probe(" in input  # the probe's source on stdin, SPEC as argument
        return remote.Completed(0, json.dumps(self.answer), "")


def test_an_unreachable_host_is_critical_and_the_report_is_the_worst_of_its_checks(project):
    healthy = {"now": 1.0, "units": {"slapd": "active"}, "ports": []}
    site = _site(project, "  vars: {govmail_check_dns: false}\n")
    report = health.run(site.inventory_dir, site=site,
                        runner_for=lambda _, host: FakeRunner(host, healthy if host == "mail1" else None),
                        now=NOW_BACKUP)  # fmt: skip
    assert report["status"] == "critical"
    assert {"host": "backup1", "service": "host", "check": "reachable", "status": "critical",
            "detail": "cannot reach backup1 (test): no such container"} in report["checks"]  # fmt: skip
    assert health.summary(report).startswith("critical: 1 critical, 3 ok on mail1, backup1")


@pytest.mark.parametrize(
    ("hours", "status"), [(10, "ok"), (26, "warning"), (49.9, "warning"), (50, "critical")],
    ids=["fresh", "one-run-missed", "nearly-two", "two-missed"],
)  # fmt: skip
def test_the_backup_age_is_judged_by_the_inventorys_hours(project, hours, status):
    site = _site(project)
    now = datetime.datetime.fromisoformat("2026-11-30T02:00:07.987654+00:00") + datetime.timedelta(hours=hours)
    rows = health.backup_checks(site, lambda _, host: FakeRunner(host, {}), now=now)
    assert [(row["host"], row["check"], row["status"]) for row in rows] == [("mail1", "backup age", status)]
    assert rows[0]["data"] == {"age_hours": round(hours, 2), "archive": "5e6f7a8b", "archives": 2}
    assert rows[0]["detail"].startswith(f"latest archive 5e6f7a8b is {hours:.1f} hours old")


def test_each_webmail_host_s_backup_age_is_judged_too(project):
    site = _site(project, "    webmail: {hosts: {web2: }}\n")
    rows = health.backup_checks(site, lambda _, host: FakeRunner(host, {}), now=NOW_BACKUP)
    assert [(row["host"], row["check"]) for row in rows] == [("mail1", "backup age"), ("web2", "backup age")]


def test_a_client_without_archives_or_whose_list_fails_is_critical(project):
    site = _site(project)
    none = health.backup_checks(site, lambda _, host: FakeRunner(host, {}, archives=[]), now=NOW_BACKUP)
    assert none[0]["status"] == "warning" and none[0]["detail"].startswith("no archive of this host yet")
    failed = health.backup_checks(site, lambda _, host: FakeRunner(host, {}, archives=None), now=NOW_BACKUP)
    assert failed[0]["detail"] == "the archives cannot be listed: the backup host backup1 does not answer"


def test_no_backup_host_no_backup_check(project):
    inventory = project / "inventories" / "lab"
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    mail1:\n  children:\n    ldap: {hosts: {mail1: }}\n")
    assert health.backup_checks(Site(inventory, project), lambda _, host: FakeRunner(host, {}), now=NOW_BACKUP) == []


def test_a_bad_backup_threshold_is_named(project):
    site = _site(project, "  vars: {govmail_check_backup_warning_hours: 60}\n")
    with pytest.raises(health.CheckError, match=r"govmail_check_backup_warning_hours \(60\) must be <="):
        health.backup_checks(site, lambda _, host: FakeRunner(host, {}), now=NOW_BACKUP)


def test_the_cli_exit_status_is_3_when_the_check_cannot_run(project):
    (project / "inventories" / "lab" / "group_vars" / "all" / "check.yml").write_text(
        "---\ngovmail_check_quota_warning_percent: many\n"
    )
    result = CliRunner().invoke(app, ["check", "--json"])
    assert result.exit_code == 3
    assert "govmail_check_quota_warning_percent is 'many'" in result.output


def test_the_host_check_writes_prometheus_text_for_the_textfile_collector(tmp_path):
    from govmail import hostcheck

    checks = [
        {"host": "mail1", "service": "dovecot", "check": "port 993 (imaps)", "status": "ok", "detail": ""},
        {"host": "mail1", "service": "postfix", "check": "queue", "status": "warning", "detail": ""},
    ]
    facts = {"ports": [{"service": "imaps", "port": 993, "not_after": 1000.0 + 86400}],
             "queue": {"messages": 3, "oldest": 400.0}}  # fmt: skip
    text = hostcheck.metrics_text(checks, facts, 1000.0)
    assert 'govmail_check_status{service="dovecot",check="port 993 (imaps)"} 0\n' in text
    assert 'govmail_check_status{service="postfix",check="queue"} 1\n' in text
    assert 'govmail_certificate_expiry_seconds{service="imaps",port="993"} 86400\n' in text
    assert "govmail_queue_messages 3\n" in text and "govmail_queue_oldest_seconds 600\n" in text
    hostcheck.write_atomically(tmp_path / "dir" / "govmail.prom", text)
    assert (tmp_path / "dir" / "govmail.prom").read_text() == text
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["govmail.prom"]


# --- the published CRL (issue 15), watched like a certificate --------------------------------------


def _published_crl(ca, days_left: float, signer=None) -> dict:
    import base64

    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca["cert"].subject)
        .last_update(NOW - datetime.timedelta(days=1))
        .next_update(NOW + datetime.timedelta(days=days_left))
    )
    data = builder.sign(signer or ca["key"], hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    pem = ca["cert"].public_bytes(serialization.Encoding.PEM)
    return {"path": "/var/www/govmail/pki/govmail-ca.crl", "data": base64.b64encode(data).decode(),
            "ca": base64.b64encode(pem).decode()}  # fmt: skip


@pytest.mark.parametrize(("days", "status"), [(60, "ok"), (20, "warning"), (3, "critical"), (-1, "critical")])
def test_the_published_crl_warns_and_is_critical_at_the_certificate_thresholds(ca, days, status):
    facts = {"now": NOW.timestamp(), "crl": _published_crl(ca, days)}
    (row,) = health.judge("mail1", {"ports": []}, facts, LIMITS)
    assert (row["service"], row["check"], row["status"]) == ("pki", "crl", status)
    assert "govmail-ca.crl" in row["detail"]


def test_a_crl_not_signed_by_the_site_ca_is_critical(ca):
    other = ec.generate_private_key(ec.SECP256R1())
    facts = {"now": NOW.timestamp(), "crl": _published_crl(ca, 60, signer=other)}
    (row,) = health.judge("mail1", {"ports": []}, facts, LIMITS)
    assert row["status"] == "critical" and "not signed by the site CA" in row["detail"]


def test_the_probe_reports_a_published_crl_and_nothing_where_there_is_none(ca, tmp_path):
    crl_file = tmp_path / "govmail-ca.crl"
    crl_file.write_bytes(b"\x30\x03\x02\x01\x00")
    found = probe.crl(str(crl_file), ca["file"])
    assert found["path"] == str(crl_file) and found["data"] and found["ca"]
    assert probe.crl(str(tmp_path / "absent.crl"), ca["file"]) is None

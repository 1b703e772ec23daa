"""Metrics: Debian's exporters and Dovecot's OpenMetrics endpoint answer on the management address
only (govmail_management_network), with the metric names the documented alert rules use; logs are
kept, rotated and readable by pflogsumm.

Scrapes come from the backup host (another host of the stack's own network), as a monitoring
server on the management network would; nothing leaves the stack's network.
"""

from __future__ import annotations

import re
import subprocess

import clients
import pytest
import yaml
from conftest import BACKUP_CONTAINER, MAIL_CONTAINER, PROJECT_DIR, make_message

ENDPOINTS = {"node": 9100, "postfix": 9154, "dovecot": 9900}
# published by the backup role once it exists (docs/monitoring/alerts.yml names it already)
NOT_YET = {"govmail_backup_last_success_timestamp_seconds"}


def _exec(container: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, *argv], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def management_address(mail_host):
    """mail1's address on the stack's network (inside the lab's govmail_management_network)."""
    addresses = mail_host.run("hostname -I").stdout.split()
    (address,) = [a for a in addresses if a.startswith("172.29.")]
    return address


def scrape(container: str, url: str) -> str | None:
    """The body of ``url`` fetched from inside ``container`` (None when refused)."""
    program = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    result = _exec(container, "python3", "-c", program, url)
    return result.stdout if result.returncode == 0 else None


@pytest.fixture(scope="module")
def scraped(management_address, mail_host):
    """One scrape of each endpoint, right after a run of govmail-host-check (its timer runs it every 5 min)."""
    assert mail_host.run("systemctl start govmail-host-check.service").rc == 0
    return {name: scrape(BACKUP_CONTAINER, f"http://{management_address}:{port}/metrics")
            for name, port in ENDPOINTS.items()}  # fmt: skip


def names(text: str) -> set[str]:
    return {re.split(r"[{\s]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=list(ENDPOINTS))
def test_each_endpoint_answers_on_the_management_address(scraped, endpoint):
    assert scraped[endpoint], f"{endpoint} did not answer"


EXPECTED = {
    "node": {"node_filesystem_avail_bytes", "node_systemd_unit_state", "govmail_check_status",
             "govmail_certificate_expiry_seconds", "govmail_queue_messages"},
    "postfix": {"postfix_up", "postfix_showq_message_age_seconds_count",
                "postfix_smtpd_sasl_authentication_failures_total"},
    "dovecot": {"dovecot_auth_success_total", "dovecot_auth_failure_total", "dovecot_mail_delivery_total"},
}  # fmt: skip


@pytest.mark.parametrize("endpoint", EXPECTED, ids=list(EXPECTED))
def test_each_endpoint_serves_the_expected_metric_names(scraped, endpoint):
    assert EXPECTED[endpoint] <= names(scraped[endpoint] or "")


def test_every_metric_the_alert_rules_use_is_served(scraped):
    rules = yaml.safe_load((PROJECT_DIR / "docs" / "monitoring" / "alerts.yml").read_text())
    used = set()
    for rule in rules["groups"][0]["rules"]:
        used |= set(re.findall(r"\b((?:node|postfix|dovecot|govmail)_[a-z_]+)\b", rule["expr"]))
    served = set().union(*(names(text or "") for text in scraped.values()))
    assert used - NOT_YET <= served, used - NOT_YET - served


def test_the_appliance_services_are_active_in_the_node_exporters_systemd_metrics(scraped):
    for unit in ("postfix.service", "dovecot.service", "slapd.service"):
        assert f'node_systemd_unit_state{{name="{unit}",state="active",type=' in scraped["node"], unit
        line = next(line for line in scraped["node"].splitlines()
                    if line.startswith(f'node_systemd_unit_state{{name="{unit}",state="active"'))  # fmt: skip
        assert line.endswith(" 1")


@pytest.mark.parametrize("number", ENDPOINTS.values(), ids=list(ENDPOINTS))
def test_metrics_are_not_served_on_other_addresses(mail_host, management_address, number):
    assert mail_host.socket(f"tcp://{management_address}:{number}").is_listening
    assert not mail_host.socket(f"tcp://0.0.0.0:{number}").is_listening
    assert scrape(MAIL_CONTAINER, f"http://127.0.0.1:{number}/metrics") is None


def test_the_certificates_expiry_is_a_metric_per_port(scraped):
    pattern = r'^govmail_certificate_expiry_seconds\{[^}]*port="(\d+)"[^}]*\} (\S+)$'
    ports = dict(re.findall(pattern, scraped["node"], re.MULTILINE))
    assert set(ports) == {"25", "587", "465", "143", "993", "110", "995", "4190", "389", "636"}
    assert all(float(seconds) > 30 * 86400 for seconds in ports.values())


# --- logs ------------------------------------------------------------------------------------------


def test_mail_logs_are_rotated_daily_and_kept_180_days(mail_host):
    rotate = mail_host.file("/etc/logrotate.d/rsyslog").content_string
    assert "/var/log/mail.log" in rotate and "\tdaily\n" in rotate and "\trotate 180\n" in rotate
    assert "\tcompress\n" in rotate


def test_the_journal_is_bounded(mail_host):
    conf = mail_host.file("/etc/systemd/journald.conf.d/govmail.conf").content_string
    assert "SystemMaxUse=1G" in conf and "MaxRetentionSec=180day" in conf
    effective = mail_host.run("systemd-analyze cat-config systemd/journald.conf").stdout
    assert "# /etc/systemd/journald.conf.d/govmail.conf" in effective


def test_pflogsumm_counts_a_delivery_from_the_mail_log(mail_host, smtp, alice):
    def delivered() -> int:
        result = mail_host.run("pflogsumm /var/log/mail.log")
        assert result.rc == 0, result.stderr
        match = re.search(r"^\s*(\d+)\s+delivered\b", result.stdout, re.MULTILINE)
        return int(match.group(1)) if match else 0

    before = delivered()
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(make_message("van.thu@ubnd.example.org", alice["address"], "Nhật ký", "pflogsumm\n")) == {}
    clients.wait_for(lambda: delivered() > before, what="pflogsumm to count the delivery")

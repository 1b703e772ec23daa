"""govmail.dns: the records a site publishes (one list), their zone-file form, and `govmail dns`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govmail import dkim, dns
from govmail.cli import app
from govmail.inventory import Site

EXPECTED = [
    {"name": "quangtri.gov.vn.", "type": "MX", "value": "10 mail.quangtri.gov.vn."},
    {"name": "mail.quangtri.gov.vn.", "type": "A", "value": "203.0.113.25"},
    {"name": "mail.quangtri.gov.vn.", "type": "AAAA", "value": "2001:db8::25"},
    {"name": "25.113.0.203.in-addr.arpa.", "type": "PTR", "value": "mail.quangtri.gov.vn."},
    {"name": "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "type": "PTR",
     "value": "mail.quangtri.gov.vn."},
    {"name": "quangtri.gov.vn.", "type": "TXT", "value": "v=spf1 mx -all"},
    {"name": "_dmarc.quangtri.gov.vn.", "type": "TXT", "value": "v=DMARC1; p=quarantine"},
]  # fmt: skip


def test_the_site_publishes_mx_address_ptr_spf_and_dmarc():
    assert dns.records("QuangTri.gov.vn", "mail.quangtri.gov.vn.", ["203.0.113.25", "2001:db8::25"]) == EXPECTED


def test_the_spf_and_dmarc_records_follow_the_inventory():
    found = dns.records(
        "quangtri.gov.vn", "mail.quangtri.gov.vn", ["203.0.113.25"],
        spf="v=spf1 ip4:203.0.113.0/24 -all", dmarc_policy="reject", dmarc_rua="dmarc@quangtri.gov.vn",
    )  # fmt: skip
    assert {r["name"]: r["value"] for r in found if r["type"] == "TXT"} == {
        "quangtri.gov.vn.": "v=spf1 ip4:203.0.113.0/24 -all",
        "_dmarc.quangtri.gov.vn.": "v=DMARC1; p=reject; rua=mailto:dmarc@quangtri.gov.vn",
    }


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"addresses": []}, "govmail_dns_addresses is []"),
        ({"addresses": ["mail1"]}, "govmail_dns_addresses has 'mail1'"),
        ({"mail_hostname": "mail_host"}, "govmail_mail_hostname is 'mail_host'"),
        ({"spf": "mx -all"}, "govmail_dns_spf is 'mx -all'"),
        ({"dmarc_policy": "block"}, "govmail_dns_dmarc_policy is 'block'"),
        ({"dmarc_rua": "reports"}, "govmail_dns_dmarc_rua is 'reports'"),
    ],
    ids=["no-address", "name-as-address", "bad-host-name", "spf-without-version", "unknown-policy", "rua-not-mailbox"],
)
def test_a_malformed_fact_is_named_in_one_line(kwargs, named):
    arguments = {"domain": "quangtri.gov.vn", "mail_hostname": "mail.quangtri.gov.vn", "addresses": ["203.0.113.25"]}
    with pytest.raises(dns.DnsError, match=named.replace("[", r"\[").replace("]", r"\]")) as caught:
        dns.records(**(arguments | kwargs))
    assert "\n" not in str(caught.value)


def test_a_long_txt_record_is_cut_into_strings_of_255_bytes_for_the_zone():
    record = {"name": "s1._domainkey.quangtri.gov.vn.", "type": "TXT", "value": "v=DKIM1; k=rsa; p=" + "A" * 380}
    line = dns.zone_line(record)
    assert line.startswith('s1._domainkey.quangtri.gov.vn. 3600 IN TXT "v=DKIM1; k=rsa; p=AAA')
    strings = re.findall(r'"([^"]*)"', line)
    assert [len(s) for s in strings] == [255, 398 - 255]
    assert dns.normalise("TXT", line.split(" TXT ", 1)[1]) == record["value"]


@pytest.mark.parametrize(
    ("record_type", "answer", "expected"),
    [("MX", "10 MAIL.quangtri.gov.vn.", "10 mail.quangtri.gov.vn"),
     ("PTR", "mail.quangtri.gov.vn.", "mail.quangtri.gov.vn."),
     ("AAAA", "2001:0db8::0025", "2001:db8::25"), ("TXT", '"v=spf1 " "mx -all"', "v=spf1 mx -all")],
    ids=["mx-case", "ptr", "aaaa-long-form", "txt-split"],
)  # fmt: skip
def test_an_answer_and_the_expected_value_compare_in_one_form(record_type, answer, expected):
    assert dns.normalise(record_type, answer) == dns.normalise(record_type, expected)


def _inventory(project: Path, extra: str) -> Path:
    inventory = project / "inventories" / "lab"
    with (inventory / "group_vars" / "all" / "vars.yml").open("a", encoding="utf-8") as handle:
        handle.write(extra)
    return inventory


def test_the_records_fact_is_the_one_the_roles_read(project):
    site = Site(_inventory(project, "govmail_dns_addresses: [203.0.113.25]\n"), project)
    found = dns.site_records(site)
    assert found[:-1] == [r for r in EXPECTED if "2001" not in r["value"] and "ip6" not in r["name"]]
    key = project / ".lab" / "secrets" / "dkim" / "quangtri.gov.vn.govmail.key"  # generated on first use
    assert found[-1] == {"name": "govmail._domainkey.quangtri.gov.vn.", "type": "TXT", "value": dkim.txt_value(key)}
    assert dns.site_records(site)[-1] == found[-1]  # the same key, not a new one


def test_the_dkim_record_joins_the_list_with_its_selector():
    found = dns.records(
        "quangtri.gov.vn", "mail.quangtri.gov.vn", ["203.0.113.25"],
        dkim_selector="s2026", dkim_record="v=DKIM1; k=rsa; p=AB",
    )  # fmt: skip
    assert found[-1] == {"name": "s2026._domainkey.quangtri.gov.vn.", "type": "TXT", "value": "v=DKIM1; k=rsa; p=AB"}


def test_govmail_dns_prints_the_records_as_json_and_as_a_table(project, monkeypatch):
    _inventory(project, "govmail_dns_addresses: [203.0.113.25]\ngovmail_dns_dmarc_policy: reject\n")
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["dns", "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)["records"]
    assert records[0] == EXPECTED[0] and records[-2]["value"] == "v=DMARC1; p=reject"
    assert records[-1]["name"] == "govmail._domainkey.quangtri.gov.vn."
    table = CliRunner().invoke(app, ["dns"])
    assert table.exit_code == 0 and "25.113.0.203.in-addr.arpa." in table.output and "v=spf1 mx -all" in table.output


def test_govmail_dns_without_addresses_says_which_fact_to_set(project, monkeypatch):
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["dns", "--json"])
    assert result.exit_code == 1
    assert result.output.startswith("govmail: govmail_dns_addresses is []: list the public addresses")
    assert len(result.output.strip().splitlines()) == 1

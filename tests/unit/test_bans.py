"""govmail unban (govmail.bans): addresses checked before any host is asked, every fail2ban host
asked which jails ban the address, the ban lifted there, the JSON document of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govmail import bans, remote
from govmail.cli import app
from govmail.inventory import Site


def _site(project: Path) -> Site:
    inventory = project / "inventories" / "lab"
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    mail1:\n    mx2:\n    backup1:\n  children:\n"
        "    ldap: {hosts: {mail1: }}\n    mx: {hosts: {mail1: , mx2: }}\n    mailstore: {hosts: {mail1: }}\n"
        "    backup: {hosts: {backup1: }}\n"
    )
    return Site(inventory, project)


class Fail2ban(remote.Runner):
    """fail2ban-client on one host, with ``banned``: {address: [jails]}; records the commands."""

    def __init__(self, host: str, banned: dict[str, list[str]], calls: list):
        super().__init__(host, ("docker", "exec", "-i", host), f"{host} (test)")
        object.__setattr__(self, "banned", banned)
        object.__setattr__(self, "calls", calls)

    def run(self, command, *, timeout=0, input=None, progress=False):
        self.calls.append((self.host, command))
        client, verb, address = command
        assert client == "fail2ban-client"
        if verb == "banned":  # fail2ban 1.1.0 answers a Python literal, one list per address
            return remote.Completed(0, repr([self.banned.get(address, [])]) + "\n", "")
        assert verb == "unban"
        return remote.Completed(0, f"{1 if self.banned.pop(address, None) else 0}\n", "")


@pytest.mark.parametrize(
    ("text", "normal"),
    [("192.0.2.10", "192.0.2.10"), (" 172.29.42.3 ", "172.29.42.3"), ("2001:DB8::A", "2001:db8::a")],
    ids=["ipv4", "spaces", "ipv6-normalised"],
)  # fmt: skip
def test_an_address_is_taken_in_its_normal_form(text, normal):
    assert bans.parse_address(text) == normal


@pytest.mark.parametrize("text", ["1.2.3", "192.0.2.0/24", "mail1", "192.0.2.010", ""], ids=str)
def test_a_malformed_address_is_refused_naming_it(text):
    with pytest.raises(bans.BanError, match=rf"^{text!r} is not an IP address"):
        bans.parse_address(text)


def test_the_ignore_list_accepts_addresses_and_networks_and_names_a_bad_one():
    assert bans.parse_networks(["192.0.2.10", "10.1.0.0/16", "2001:db8::/32", "10.2.3.4/32"], "x") == [
        "192.0.2.10", "10.1.0.0/16", "2001:db8::/32", "10.2.3.4"]  # fmt: skip
    with pytest.raises(bans.BanError, match=r"^govmail_trusted_addresses: 'monitoring' is not an IP address"):
        bans.parse_networks(["192.0.2.10", "monitoring"], "govmail_trusted_addresses")


def test_unban_asks_every_mx_and_mailstore_host_once_and_reports_the_jails(project):
    calls: list = []
    state = {"mail1": {"172.29.42.3": ["govmail-postfix-sasl", "govmail-dovecot"]}, "mx2": {}}
    report = bans.unban(_site(project), "172.29.42.3", lambda _, host: Fail2ban(host, state[host], calls))
    assert report == {"address": "172.29.42.3", "unbanned": [
        {"host": "mail1", "jails": ["govmail-dovecot", "govmail-postfix-sasl"]},
        {"host": "mx2", "jails": []}]}  # fmt: skip
    assert calls == [
        ("mail1", ["fail2ban-client", "banned", "172.29.42.3"]), ("mail1", ["fail2ban-client", "unban", "172.29.42.3"]),
        ("mx2", ["fail2ban-client", "banned", "172.29.42.3"]), ("mx2", ["fail2ban-client", "unban", "172.29.42.3"]),
    ]  # fmt: skip
    assert state["mail1"] == {}


def test_a_webmail_host_is_asked_too(project):  # it bans on Roundcube's failed logins (issue 12)
    inventory = project / "inventories" / "lab"
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    mail1:\n    web1:\n  children:\n    ldap: {hosts: {mail1: }}\n"
        "    mx: {hosts: {mail1: }}\n    mailstore: {hosts: {mail1: }}\n    webmail: {hosts: {web1: }}\n"
    )
    calls: list = []
    state = {"mail1": {}, "web1": {"192.0.2.7": ["govmail-roundcube"]}}
    report = bans.unban(Site(inventory, project), "192.0.2.7", lambda _, host: Fail2ban(host, state[host], calls))
    assert report["unbanned"] == [{"host": "mail1", "jails": []}, {"host": "web1", "jails": ["govmail-roundcube"]}]
    assert state["web1"] == {}


def test_a_host_without_fail2ban_is_named(project):
    class Missing(remote.Runner):
        def run(self, command, **_):
            return remote.Completed(127, "", "exec: fail2ban-client: not found")

    with pytest.raises(bans.BanError, match=r"^fail2ban is not installed on mail1 \(t\): run playbooks/site.yml"):
        bans.unban(_site(project), "192.0.2.10", lambda _, host: Missing(host, ("true",), f"{host} (t)"))


def test_the_cli_refuses_a_malformed_address_in_one_line_before_asking_any_host(project):
    result = CliRunner().invoke(app, ["unban", "192.0.2.300", "--json"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "govmail: '192.0.2.300' is not an IP address: give one address, e.g. 192.0.2.10 or 2001:db8::10"
    )


def test_the_cli_prints_the_json_document(project, monkeypatch):
    _site(project)
    state = {"mail1": {"192.0.2.10": ["govmail-dovecot"]}, "mx2": {}}
    monkeypatch.setattr(remote, "host_runner", lambda _, host: Fail2ban(host, state[host], []))
    result = CliRunner().invoke(app, ["unban", "192.0.2.10", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"address": "192.0.2.10", "unbanned": [
        {"host": "mail1", "jails": ["govmail-dovecot"]}, {"host": "mx2", "jails": []}]}  # fmt: skip

"""roles/fail2ban's jail file, rendered with Ansible as a play does: which jails a host runs and
which addresses are never banned (loopback, the host's own, the webmail hosts', the inventory's
list, and the Docker gateway only where the inventory asks for it), and the webmail's nginx,
which never slows the same addresses at its login form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rendering import RoleView

from govmail.inventory import Site

FACTS = {"all_ipv4_addresses": ["172.29.42.2"], "all_ipv6_addresses": ["fe80::42:acff:fe1d:2a02"],
         "default_ipv4": {"gateway": "172.29.42.1"}}  # fmt: skip
GROUPS = {"mx": ["mail1", "mx2"], "mailstore": ["mail1"], "webmail": ["web1"], "backup": ["backup1"]}
HOSTVARS = {"web1": {"ansible_facts": {"all_ipv4_addresses": ["10.0.5.7"], "all_ipv6_addresses": ["2001:db8::7"]}}}


def jail_file(project: Path, host: str = "mail1", **inputs) -> str:
    view = RoleView(Site(project / "inventories" / "lab", project), "fail2ban")
    extra = {"inventory_hostname": host, "groups": GROUPS, "hostvars": HOSTVARS, "ansible_facts": FACTS, **inputs}
    return view.render("etc/fail2ban/jail.d/govmail.local.j2", **extra)


def ignoreip(text: str) -> list[str]:
    return re.search(r"^ignoreip = (.*)$", text, re.MULTILINE).group(1).split()


def jails(text: str) -> list[str]:
    return [name for name in re.findall(r"^\[([^\]]+)\]$", text, re.MULTILINE) if name != "DEFAULT"]


def test_loopback_own_and_webmail_addresses_and_the_inventorys_list_are_never_banned(project):
    text = jail_file(project, govmail_trusted_addresses=["192.0.2.0/24", "198.51.100.7/32"])
    assert ignoreip(text) == ["127.0.0.1/8", "::1", "172.29.42.2", "10.0.5.7", "2001:db8::7", "192.0.2.0/24",
                              "198.51.100.7"]  # fmt: skip


def test_the_default_gateway_is_never_banned_only_where_the_inventory_says_so(project):
    assert "172.29.42.1" not in ignoreip(jail_file(project))
    assert ignoreip(jail_file(project, govmail_trust_default_gateway=True))[-1] == "172.29.42.1"


def test_the_ban_times_are_the_inventorys(project):
    text = jail_file(project, fail2ban_maxretry=3, fail2ban_findtime=60, fail2ban_bantime=120)
    assert re.findall(r"^(maxretry|findtime|bantime) = (\d+)$", text, re.MULTILINE) == [
        ("bantime", "120"), ("findtime", "60"), ("maxretry", "3")]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "expected"),
    [("mail1", ["govmail-dovecot", "govmail-postfix-sasl"]), ("mx2", ["govmail-postfix-sasl"])],
    ids=["mx-and-mailstore", "mx-only"],
)  # fmt: skip
def test_each_host_runs_the_jails_of_the_services_it_carries(project, host, expected):
    text = jail_file(project, host=host)
    assert jails(text) == expected
    assert text.count("port = 587,465,143,993,110,995,4190") == len(expected)


def test_a_bad_ignore_address_is_named(project):
    with pytest.raises(Exception, match=r"govmail_trusted_addresses: 'monitoring.example' is not an IP address"):
        jail_file(project, govmail_trusted_addresses=["monitoring.example"])


def webmail_site(project: Path, **inputs) -> str:
    view = RoleView(Site(project / "inventories" / "lab", project), "webmail")
    extra = {"inventory_hostname": "web1", "groups": GROUPS, "hostvars": HOSTVARS, "ansible_facts": FACTS, **inputs}
    return view.render("etc/nginx/conf.d/govmail-webmail.conf.j2", **extra)


def unslowed(text: str) -> list[str]:
    block = re.search(r"^geo \$govmail_login_unslowed \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL).group(1)
    return [line.split()[0] for line in block.splitlines() if line.strip() and "default" not in line]


def test_the_webmail_never_slows_the_addresses_fail2ban_never_bans(project):
    """One list (the shared facts govmail_trusted_addresses, govmail_trust_default_gateway) for
    both: nginx's login pace per address skips what fail2ban's ignoreip holds, but the webmail
    hosts (the mail hosts' exception)."""
    plain = webmail_site(project, govmail_trusted_addresses=["192.0.2.0/24"])
    assert unslowed(plain) == ["127.0.0.0/8", "::1", "172.29.42.2", "192.0.2.0/24"]
    assert unslowed(webmail_site(project, govmail_trust_default_gateway=True))[-1] == "172.29.42.1"
    assert re.search(r"limit_req zone=govmail_login burst=\d+ delay=\d+;", plain)

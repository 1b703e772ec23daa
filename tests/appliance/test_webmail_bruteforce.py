"""Brute force on the webmail (issue 12): repeated failed logins from one address are first held
back by Roundcube (it says so), then fail2ban on the webmail host refuses that address on 443 and
80 (jail govmail-roundcube, reading Roundcube's login log: Dovecot sees only the webmail host);
another client still logs in meanwhile, and `govmail unban ADDRESS` lifts the ban.

The attacker is the stack's backup host, posting Roundcube's login form over HTTPS as a browser
does (files/logins_from_here.py, protocol webmail); the controller's browser comes through the
Docker gateway, which the lab never bans (test_bruteforce.py explains). The numbers are the lab
inventory's, read through Ansible: webmail_login_rate_limit (2) failures of one account within a
minute make Roundcube hold it back, fail2ban_maxretry (3) failed logins ban the address.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import uuid
from pathlib import Path

import clients
import pytest
from conftest import PROJECT_DIR, ok_json
from test_bruteforce import attacker, banned_in  # noqa: F401 (fixture)
from test_webmail_browser import browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

from govmail.inventory import Site

JAIL = "govmail-roundcube"
WEB_PORTS = {"https": 443, "http": 80}  # fail2ban_webmail_ports
FAILED = "refused: Không đăng nhập được"  # Roundcube's own vi_VN "loginfailed"
HELD_BACK = "refused: Đăng nhập sai quá nhiều lần: hãy chờ một phút rồi thử lại."  # govmail_password's vi_VN


@pytest.fixture(scope="module")
def limits():
    site = Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR)
    held_back, ban = int(site.value("webmail_login_rate_limit")), int(site.value("fail2ban_maxretry"))
    assert 0 < held_back < ban, "the lab must hold an account back before it bans the address"
    return held_back, ban


@pytest.fixture
def owner(new_agency):
    """A person with their own password who has logged in to the webmail once (Roundcube counts
    failed logins only for the accounts it knows)."""
    password = f"Mat-Khau-{uuid.uuid4().hex[:8]}-A1!"
    return new_agency("Phòng Thử Đăng nhập Web", "dnweb").person("Phạm Văn Khoa", password=password)


@pytest.fixture
def unban_afterwards(mail_host, attacker):  # noqa: F811 (test_bruteforce's fixture)
    yield
    mail_host.run(f"fail2ban-client unban {attacker.address}")
    assert banned_in(mail_host, attacker.address) == []


def test_failed_webmail_logins_are_held_back_then_the_address_is_banned_while_others_log_in(
    attacker,  # noqa: F811
    owner,
    limits,
    mail_host,
    person,  # noqa: F811
    bob,
    govmail,
    unban_afterwards,
):
    held_back, ban = limits
    guess = "Doan-Mo-2026!"
    assert banned_in(mail_host, attacker.address) == []
    assert attacker("webmail", owner["address"], owner["password"], port=443) == ["ok"]

    outcomes = attacker("webmail", owner["address"], guess, times=ban, port=443)
    assert outcomes == [FAILED] * held_back + [HELD_BACK] * (ban - held_back)
    clients.wait_for(lambda: JAIL in banned_in(mail_host, attacker.address), timeout=30,
                     what=f"{JAIL} to ban {attacker.address}")  # fmt: skip
    refused = {name: attacker("connect", port=port)[0] for name, port in WEB_PORTS.items()}
    assert refused == dict.fromkeys(WEB_PORTS, "connection refused")
    assert attacker("connect", port=993) == ["ok"]  # a webmail ban closes the webmail only

    other = person(bob)  # through the Docker gateway, meanwhile
    other.log_in()

    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    inventory = Path(ephemeral) / "inventory" if ephemeral else PROJECT_DIR / "inventories" / "lab"
    document = ok_json(govmail("unban", attacker.address, "--inventory", str(inventory), "--json"))
    assert [JAIL] in [entry["jails"] for entry in document["unbanned"]]
    assert banned_in(mail_host, attacker.address) == []
    assert {name: attacker("connect", port=port)[0] for name, port in WEB_PORTS.items()} == dict.fromkeys(
        WEB_PORTS, "ok"
    )


def test_an_address_a_client_writes_in_a_header_never_reaches_the_login_log(mail_host, address, port, hostname, creds):
    """Roundcube appends X-Forwarded-For and X-Real-IP to the address it logs; nginx passes neither,
    so nobody can get another address banned by sending them (the controller: never banned)."""
    spec = importlib.util.spec_from_file_location("logins", Path(__file__).parent / "files" / "logins_from_here.py")
    logins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(logins)
    user = f"khong-co-{uuid.uuid4().hex[:8]}@example.org"
    forged = {"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "203.0.113.98"}
    context = ssl.create_default_context(cafile=creds["ca_certificate"])
    outcome = logins.webmail_login({"address": address, "port": port("https"), "hostname": hostname, "user": user,
                                    "password": "x", "headers": forged}, context)  # fmt: skip
    assert outcome == FAILED
    logged = mail_host.run(f"journalctl SYSLOG_IDENTIFIER=roundcube --no-pager -g 'Failed login for {user} '").stdout
    [line] = [text for text in logged.splitlines() if "Failed login" in text]
    gateway = mail_host.run("ip -4 route show default").stdout.split()[2]
    assert f" from {gateway} in session " in line and "203.0.113" not in line, line

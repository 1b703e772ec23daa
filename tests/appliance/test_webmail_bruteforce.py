"""Brute force on the webmail (issue 12): one address posting the login form fast is slowed, then
refused with 429, by nginx (whatever the accounts); repeated failed logins of one account are held
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
from concurrent.futures import ThreadPoolExecutor
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


@pytest.fixture(scope="module")
def pace():
    """The lab's login-form pace per address (roles/webmail): (undelayed, burst)."""
    site = Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR)
    return int(site.value("webmail_login_posts_undelayed")), int(site.value("webmail_login_posts_burst"))


def nginx_limit_lines(mail_host, client: str) -> dict[str, int]:
    """How many of the client's requests nginx delayed and refused in zone govmail_login (its
    error log: "delaying request" at warn, "limiting requests" at error)."""
    log = mail_host.run("cat /var/log/nginx/error.log").stdout.splitlines()
    mine = [line for line in log if 'zone "govmail_login"' in line and f"client: {client}," in line]
    return {kind: sum(kind in line for line in mine) for kind in ("delaying request", "limiting requests")}


REFUSED = "HTTP 429: Quá nhiều lượt đăng nhập"  # roles/webmail/files/usr/share/govmail-webmail/errors/429.html


def test_one_address_posting_the_login_form_fast_is_slowed_then_refused_while_others_are_not(
    attacker,  # noqa: F811
    pace,
    mail_host,
    address,
    port,
    hostname,
    creds,
):
    undelayed, burst = pace
    times = 1 + burst + 8  # the first, the burst nginx holds, and eight more, all at once
    before = nginx_limit_lines(mail_host, attacker.address)
    outcomes = attacker("webmail-post", times=times, port=443, parallel=True)
    # the refusal is the role's page, in Vietnamese (nginx's own says "429 Too Many Requests")
    assert set(outcomes) <= {"HTTP 200", REFUSED}, outcomes
    served, refused = outcomes.count("HTTP 200"), outcomes.count(REFUSED)
    assert served >= 1 + undelayed and refused >= 1, outcomes
    after = nginx_limit_lines(mail_host, attacker.address)
    assert after["delaying request"] > before["delaying request"]
    assert after["limiting requests"] - before["limiting requests"] == refused

    # the controller comes through the lab's gateway, never banned and so never slowed
    gateway = mail_host.run("ip -4 route show default").stdout.split()[2]
    spec = {"address": address, "port": port("https"), "hostname": hostname}
    context = ssl.create_default_context(cafile=creds["ca_certificate"])
    with ThreadPoolExecutor(max_workers=times) as pool:
        mine = list(pool.map(lambda _: logins_module().webmail_post(spec, context), range(times)))
    assert mine == ["HTTP 200"] * times
    assert nginx_limit_lines(mail_host, gateway) == {"delaying request": 0, "limiting requests": 0}


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


def logins_module():
    """files/logins_from_here.py, loaded to run its attempts from the controller."""
    spec = importlib.util.spec_from_file_location("logins", Path(__file__).parent / "files" / "logins_from_here.py")
    logins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(logins)
    return logins


def webmail_login_from_here(address, port, hostname, creds, user: str, password: str, headers=None) -> str:
    """One login posted to the webmail from the controller (through the Docker gateway, never
    banned), as files/logins_from_here.py does from the attacker: "ok" or "refused: <text>"."""
    context = ssl.create_default_context(cafile=creds["ca_certificate"])
    return logins_module().webmail_login({"address": address, "port": port("https"), "hostname": hostname, "user": user,
                                 "password": password, "headers": headers or {}}, context)  # fmt: skip


@pytest.mark.parametrize("password_set_by", ["owner", "administrator"])
def test_a_wrong_password_typed_in_the_webmail_counts_once_towards_the_lockout(
    new_agency, ldap_admin, address, port, hostname, creds, password_set_by
):
    """The directory locks an account after ppolicy's pwdMaxFailure failed binds (roles/openldap,
    from the policy profile). One wrong password in the webmail is one of them, whether the owner's password is in
    force (IMAP's bind alone: the password plugin does not bind) or an administrator's waits for
    its change (the plugin's bind alone: Dovecot's passdb filter skips the entry unbound)."""
    agency = new_agency("Phòng Thử Khoá Web", "khweb")
    if password_set_by == "owner":
        person = agency.person("Lê Thị Hoa", password=f"Mat-Khau-{uuid.uuid4().hex[:8]}-A1!")
    else:
        person = agency.person("Lê Thị Hoa")
    assert webmail_login_from_here(address, port, hostname, creds, person["address"], "Sai-Mat-Khau-9!") == FAILED
    ldap_admin.search(person["dn"], "(objectClass=*)", attributes=["pwdFailureTime"])
    assert len(ldap_admin.entries[0].pwdFailureTime.values) == 1


def test_an_address_a_client_writes_in_a_header_never_reaches_the_login_log(mail_host, address, port, hostname, creds):
    """Roundcube appends X-Forwarded-For and X-Real-IP to the address it logs; nginx passes neither,
    so nobody can get another address banned by sending them (the controller: never banned)."""
    user = f"khong-co-{uuid.uuid4().hex[:8]}@example.org"
    forged = {"X-Forwarded-For": "203.0.113.99", "X-Real-IP": "203.0.113.98"}
    outcome = webmail_login_from_here(address, port, hostname, creds, user, "x", forged)
    assert outcome == FAILED
    logged = mail_host.run(f"journalctl SYSLOG_IDENTIFIER=roundcube --no-pager -g 'Failed login for {user} '").stdout
    [line] = [text for text in logged.splitlines() if "Failed login" in text]
    gateway = mail_host.run("ip -4 route show default").stdout.split()[2]
    assert f" from {gateway} in session " in line and "203.0.113" not in line, line

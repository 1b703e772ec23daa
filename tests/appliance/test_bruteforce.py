"""Brute force (issue 13): repeated failed logins from one address get it refused on every login
port for a while (fail2ban with nftables, roles/fail2ban), other clients still log in, and
`govmail unban ADDRESS` lifts the ban.

The attacker is the stack's backup host: a container on the stack's own network, whose address the
mail host sees as it is. The controller's connections to the published ports arrive from the Docker
network's gateway, which the lab inventory never bans (govmail_trust_default_gateway): the
controller plays the other client that must still get in. Every ban is lifted when its test ends.
The lab inventory (linked by Molecule) bans after fail2ban_maxretry = 3 failures.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import uuid
from pathlib import Path

import clients
import pytest
from conftest import BACKUP_CONTAINER, MAIL_CONTAINER, PROJECT_DIR, imap_login_ok, ok_json

HERE = Path(__file__).resolve().parent
REMOTE_DIR = "/tmp/govmail-bruteforce"
CA = "/etc/ssl/govmail/ca.crt"  # govmail_tls_ca_certificate, on every host of the stack (roles/pki)
MAXRETRY = 3  # fail2ban_maxretry in inventories/lab/group_vars/all/vars.yml
JAILS = {"dovecot": "govmail-dovecot", "postfix": "govmail-postfix-sasl"}
LOGIN_PORTS = {"submission": 587, "submissions": 465, "imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995,
               "managesieve": 4190}  # fmt: skip


def _docker(*args: str, input: str | None = None) -> str:
    completed = subprocess.run(["docker", *args], input=input, capture_output=True, text=True, timeout=300,
                               check=False)  # fmt: skip
    assert completed.returncode == 0, f"docker {' '.join(args[:3])}: {completed.stderr.strip()}"
    return completed.stdout.strip()


def _address_of(container: str) -> str:
    networks = json.loads(_docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container))
    return next(iter(networks.values()))["IPAddress"]


@pytest.fixture(scope="module")
def attacker(hostname):
    """The backup host as a client of the mail host: ``attacker(protocol, user, password, times=1,
    port=None, parallel=False)`` -> the outcome of each attempt (files/logins_from_here.py; with
    ``parallel`` all at once), with ``.address`` its own address."""
    for name in ("clients.py", "files/logins_from_here.py"):
        _docker("exec", "-i", BACKUP_CONTAINER, "sh", "-c", f"mkdir -p {REMOTE_DIR} && cat > {REMOTE_DIR}/"
                f"{Path(name).name}", input=(HERE / name).read_text())  # fmt: skip
    target = _address_of(MAIL_CONTAINER)

    def run(
        protocol: str,
        user: str = "",
        password: str = "",
        times: int = 1,
        port: int | None = None,
        parallel: bool = False,
    ) -> list[str]:
        spec = {"protocol": protocol, "address": target, "hostname": hostname, "ca": CA, "user": user,
                "password": password, "times": times, "port": port or LOGIN_PORTS[protocol],
                "parallel": parallel}  # fmt: skip
        return json.loads(_docker("exec", BACKUP_CONTAINER, "python3", f"{REMOTE_DIR}/logins_from_here.py",
                                  json.dumps(spec)))  # fmt: skip

    run.address = _address_of(BACKUP_CONTAINER)
    return run


def banned_in(mail_host, address: str) -> list[str]:
    """The jails of the mail host that ban ``address`` (fail2ban-client banned)."""
    answer = mail_host.run(f"fail2ban-client banned {address}")
    assert answer.rc == 0, answer.stderr
    jails = ast.literal_eval(answer.stdout.strip())
    return sorted(jails[0] if jails and isinstance(jails[0], list) else jails)


@pytest.fixture
def unban_afterwards(mail_host, attacker):
    """Whatever a test banned, the backup host's address is free again when it ends."""
    yield
    mail_host.run(f"fail2ban-client unban {attacker.address}")
    assert banned_in(mail_host, attacker.address) == []


def stranger(domain: str) -> str:
    """An address no mailbox has: guessing there counts for fail2ban but never locks a real account
    (the directory locks one after 5 failures, and the other tests log in with these accounts)."""
    return f"khong-co-{uuid.uuid4().hex[:8]}@{domain}"


GUESS = "Mat-Khau-Doan-2026!"


@pytest.fixture(scope="module")
def banned_by_imap(mail_host, attacker, domain):
    """The backup host, banned after MAXRETRY failed IMAPS logins; one ban shared by the tests of
    what a ban does (the last of them lifts it with `govmail unban`), lifted at the end regardless."""
    outcomes = attacker("imaps", stranger(domain), GUESS, times=MAXRETRY)
    assert outcomes == ["refused"] * MAXRETRY
    clients.wait_for(lambda: JAILS["dovecot"] in banned_in(mail_host, attacker.address), timeout=30,
                     what=f"fail2ban to ban {attacker.address}")  # fmt: skip
    yield attacker
    mail_host.run(f"fail2ban-client unban {attacker.address}")


# --- failures on each protocol earn a ban -----------------------------------------------------

FAILING = {  # protocol the attacker fails on -> the jail that bans it
    "imaps": JAILS["dovecot"],
    "imap": JAILS["dovecot"],
    "pop3s": JAILS["dovecot"],
    "managesieve": JAILS["dovecot"],
    "submission": JAILS["postfix"],
}


@pytest.mark.parametrize(("protocol", "jail"), FAILING.items(), ids=list(FAILING))
def test_repeated_failed_logins_from_one_address_get_it_banned(
    mail_host, attacker, alice, domain, unban_afterwards, protocol, jail
):
    assert banned_in(mail_host, attacker.address) == []
    assert attacker(protocol, stranger(domain), GUESS, times=MAXRETRY) == ["refused"] * MAXRETRY
    clients.wait_for(lambda: jail in banned_in(mail_host, attacker.address), timeout=30,
                     what=f"{jail} to ban {attacker.address}")  # fmt: skip
    assert attacker(protocol, alice["address"], alice["password"]) == ["connection refused"]


def test_the_ban_comes_with_the_maxretryth_failure_not_before(mail_host, attacker, alice, domain, unban_afterwards):
    fewer = MAXRETRY - 1  # also shows that a failure is counted once (its auth line, not the login summary)
    assert attacker("imaps", stranger(domain), GUESS, times=fewer) == ["refused"] * fewer
    assert attacker("imaps", alice["address"], alice["password"]) == ["ok"]
    assert banned_in(mail_host, attacker.address) == []
    assert attacker("imaps", stranger(domain), GUESS) == ["refused"]  # the MAXRETRY-th: banned from now on
    clients.wait_for(lambda: banned_in(mail_host, attacker.address) == [JAILS["dovecot"]], timeout=30,
                     what=f"fail2ban to ban {attacker.address}")  # fmt: skip


# --- what a ban does ------------------------------------------------------------------------


def test_a_banned_address_is_refused_on_every_login_port(banned_by_imap):
    outcomes = {name: banned_by_imap("connect", port=port)[0] for name, port in LOGIN_PORTS.items()}
    assert outcomes == dict.fromkeys(LOGIN_PORTS, "connection refused")


def test_a_banned_address_still_reaches_port_25_for_mail_from_servers(banned_by_imap):
    assert banned_by_imap("connect", port=25) == ["ok"]


def test_another_client_still_logs_in_while_one_address_is_banned(
    banned_by_imap, mail_host, address, hostname, port, tls, bob
):
    assert imap_login_ok(address, hostname, port, tls, bob["address"], bob["password"])
    client = clients.SMTP(address, hostname, port("submission"))
    try:
        client.ehlo("client.example")
        client.starttls(context=tls)
        client.ehlo("client.example")
        assert client.login(bob["address"], bob["password"])[0] == 235
    finally:
        client.close()
    assert JAILS["dovecot"] in banned_in(mail_host, banned_by_imap.address)  # still banned meanwhile


def test_govmail_unban_lifts_the_ban_and_the_address_logs_in_again(banned_by_imap, govmail, mail_host, alice):
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    inventory = Path(ephemeral) / "inventory" if ephemeral else PROJECT_DIR / "inventories" / "lab"
    document = ok_json(govmail("unban", banned_by_imap.address, "--inventory", str(inventory), "--json"))
    assert document["address"] == banned_by_imap.address
    # every host that runs fail2ban is asked (the mail host; a webmail host too, with nothing to lift)
    lifted = {entry["host"]: entry["jails"] for entry in document["unbanned"]}
    banning = [jails for jails in lifted.values() if jails]
    assert len(banning) == 1 and JAILS["dovecot"] in banning[0], lifted
    assert banned_in(mail_host, banned_by_imap.address) == []
    assert banned_by_imap("imaps", alice["address"], alice["password"]) == ["ok"]
    assert banned_by_imap("connect", port=LOGIN_PORTS["imap"]) == ["ok"]


# --- never banned ---------------------------------------------------------------------------


def test_the_docker_gateway_the_controller_comes_from_is_never_banned(
    mail_host, address, hostname, port, tls, alice, domain
):
    gateway = mail_host.run("ip -4 route show default").stdout.split()[2]
    for _ in range(MAXRETRY + 1):
        assert not imap_login_ok(address, hostname, port, tls, stranger(domain), GUESS)
    assert imap_login_ok(address, hostname, port, tls, alice["address"], alice["password"])
    assert banned_in(mail_host, gateway) == []

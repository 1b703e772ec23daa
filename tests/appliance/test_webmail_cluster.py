"""The webmail on several hosts with one PostgreSQL database (issue 12, REQUIREMENTS A1, A4).

With more than one host in the inventory's ``webmail`` group, Roundcube on every one of them uses
one PostgreSQL database on ``webmail_database_host`` (roles/webmail, default the first webmail
host): sessions, settings and identities live there, so whichever host a request lands on, the
person is the same logged-in person with the same settings. PostgreSQL lets Roundcube's role in
only over TLS (verified against the CA, libpq ``sslmode=verify-full``) with scram-sha-256, and only
from the webmail hosts' addresses (pg_hba ``hostssl``).

The stack must publish a second webmail host: ``GOVMAIL_WEB2_HTTPS_PORT`` (its 443 on 127.0.0.1)
and ``GOVMAIL_WEB2_CONTAINER`` (molecule/<scenario>'s verifier env); with one webmail host every
test here is skipped, saying so. The database host is ``GOVMAIL_DATABASE_CONTAINER`` (default the
mail host's container; molecule/default: web2, not the directory host), the address not in pg_hba
the backup host's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
import yaml
from conftest import (
    BACKUP_CONTAINER,
    DATABASE_CONTAINER,
    MAIL_CONTAINER,
    PROJECT_DIR,
    SECRETS_DIR,
    WEB2_CONTAINER,
    WEB2_PORT,
)
from test_webmail_browser import Person, browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

from govmail import contract

# The webmail host that is not the database host: Roundcube there reaches the database over the network.
CLIENT_CONTAINER = MAIL_CONTAINER if DATABASE_CONTAINER == WEB2_CONTAINER else WEB2_CONTAINER
CA = "/etc/ssl/govmail/ca.crt"  # roles/govmail defaults govmail_tls_ca_certificate, on every host

pytestmark = pytest.mark.skipif(
    not (WEB2_PORT and WEB2_CONTAINER),
    reason="this stack has one webmail host (SQLite): the shared PostgreSQL database needs a second one,"
    " published through GOVMAIL_WEB2_HTTPS_PORT and GOVMAIL_WEB2_CONTAINER (molecule/<scenario>'s verifier env)",
)

# Roundcube's database as the roles define it (plain values of their defaults): its name is a
# shared fact (roles/govmail), the role and port are roles/webmail's
DATABASE = {
    **yaml.safe_load((PROJECT_DIR / "roles/webmail/defaults/main.yml").read_text()),
    **yaml.safe_load((PROJECT_DIR / "roles/govmail/defaults/main.yml").read_text()),
}
NAME = DATABASE["govmail_webmail_database_name"]
PROGRAM_DIR = DATABASE["govmail_program_dir"]  # the govmail package, on every backup client


def container_address(name: str) -> str:
    """The container's address on its (only) Docker network."""
    inspected = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return inspected.stdout.strip()


def database_password() -> str:
    secrets = SECRETS_DIR or str(PROJECT_DIR / ".lab" / "secrets")
    return contract.read_secret(secrets, "webmail-database")


def psql(container: str, conninfo: str, sql: str) -> subprocess.CompletedProcess:
    """psql on a host of the stack, the password in the environment (never on a command line)."""
    return subprocess.run(
        ["docker", "exec", "-e", "PGPASSWORD", container, "psql", "--no-psqlrc", "-XAtq", conninfo, "-c", sql],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PGPASSWORD": database_password()},
    )  # fmt: skip


def refused(client_address: str, encryption: str) -> str:
    """PostgreSQL's refusal of Roundcube's role from an address or a transport pg_hba does not list."""
    return (
        f'no pg_hba.conf entry for host "{client_address}", user "{DATABASE["webmail_database_user"]}",'
        f' database "{NAME}", {encryption}'
    )


# PostgreSQL's wire protocol (v3, https://www.postgresql.org/docs/17/protocol-flow.html) in the
# standard library, for a host without psql: optional SSLRequest and TLS verified against the CA,
# then the startup message; prints the server's first answer ("E <message>" or "R <auth code>").
STARTUP_PROBE = r"""
import socket, ssl, struct, sys
host, port, user, database, use_tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "tls"
sock = socket.create_connection((host, port), timeout=20)
if use_tls:
    sock.sendall(struct.pack("!ii", 8, 80877103))
    assert sock.recv(1) == b"S", "the server declined TLS"
    sock = ssl.create_default_context(cafile=sys.argv[6]).wrap_socket(sock, server_hostname=host)
params = b"user\0" + user.encode() + b"\0database\0" + database.encode() + b"\0\0"
sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
kind, length = struct.unpack("!ci", sock.recv(5))
body = b""
while len(body) < length - 4:
    body += sock.recv(length - 4 - len(body))
if kind == b"E":
    fields = {f[:1]: f[1:].decode() for f in body.split(b"\0") if f}
    print("E", fields[b"M"])
else:
    print(kind.decode(), struct.unpack("!i", body[:4])[0])
"""


def startup(container: str, use_tls: bool) -> str:
    """The database host's first answer to Roundcube's role, from a host of the stack."""
    probe = subprocess.run(
        ["docker", "exec", "-i", container, "python3", "-", DATABASE_CONTAINER, str(DATABASE["webmail_database_port"]),
         DATABASE["webmail_database_user"], NAME, "tls" if use_tls else "plain", CA],
        input=STARTUP_PROBE, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    return probe.stdout.strip()


@pytest.fixture(scope="module")
def web2_url(hostname):
    return f"https://{hostname}:{WEB2_PORT}/"


@pytest.fixture
def tab(person):  # noqa: F811 (test_webmail_browser's fixture, under this module's name)
    """``tab(account)``: a person's browser (their own cookies), starting on the first webmail host."""
    return person


@pytest.fixture(scope="module")
def clerk(module_agency):
    """A person of the module's own (settings changed here touch no seeded account)."""
    agency = module_agency("Phòng Thử Nhiều Máy", "cm")
    return agency.person("Hà Thị Cụm", password=f"Mat-Khau-{uuid.uuid4().hex[:8]}-A1!")


def open_mailbox(me: Person, url: str) -> None:
    with me.step("mailbox-on-" + url.rsplit(":", 1)[-1].strip("/")):
        me.page.goto(f"{url}?_task=mail&_mbox=INBOX")
        me.page.wait_for_selector("#mailboxlist li.inbox")
        me.page.wait_for_load_state("networkidle")


def test_a_login_on_one_webmail_host_opens_the_mailbox_on_the_other(tab, alice, web2_url):
    me = tab(alice)
    me.log_in()  # on the first webmail host
    open_mailbox(me, web2_url)  # the same cookies, the second host: no login form, the inbox
    assert me.page.locator("#rcmloginuser").count() == 0
    assert me.page.locator("html").get_attribute("lang") == "vi"


def test_the_second_webmail_host_asks_a_stranger_to_log_in(tab, alice, web2_url):
    stranger = tab(alice)  # a browser with no cookies
    with stranger.step("login-form-on-web2"):
        stranger.page.goto(f"{web2_url}?_task=mail&_mbox=INBOX")
        stranger.page.wait_for_selector("#rcmloginuser")
    assert stranger.page.locator("#mailboxlist").count() == 0


def test_logging_out_on_one_host_ends_the_session_on_the_other(tab, alice, web2_url):
    me = tab(alice)
    me.log_in()
    open_mailbox(me, web2_url)
    with me.step("log-out-on-web2"):
        me.page.click("#taskmenu a.logout")
        me.page.wait_for_selector("#rcmloginuser")
    with me.step("first-host-asks-again"):
        me.page.goto(f"{me.url}?_task=mail&_mbox=INBOX")
        me.page.wait_for_selector("#rcmloginuser")
    assert me.page.locator("#mailboxlist").count() == 0


def identity_name_field(me: Person, url: str):
    """Settings → Identities → the person's identity, as a person clicks; the form's name field."""
    with me.step("open-identity"):
        me.page.goto(f"{url}?_task=settings&_action=identities")
        me.page.locator("#identities-table tbody tr").first.click()
        frame = me.page.frame_locator("#preferences-frame")
        field = frame.locator("input[name=_name]")
        field.wait_for()
        return frame, field


def test_an_identity_saved_on_one_host_is_shown_on_the_other(tab, clerk, web2_url):
    me = tab(clerk)
    me.log_in()
    display_name = f"Hà Thị Cụm - Văn thư {uuid.uuid4().hex[:6]}"  # no RFC 5322 specials: shown unquoted
    frame, field = identity_name_field(me, me.url)
    with me.step("save-identity-on-first-host"):
        field.fill(display_name)
        frame.locator(".formbuttons button.submit, .formbuttons input.submit").first.click()
        me.page.locator("#identities-table tbody tr", has_text=display_name).first.wait_for()
    _, field = identity_name_field(me, web2_url)
    assert field.input_value() == display_name
    with me.step("compose-on-web2-sends-as-it"):
        me.page.goto(f"{web2_url}?_task=mail&_action=compose")
        sender = me.page.locator("#_from option").first.inner_text()
    assert sender == f"{display_name} <{clerk['address']}>"


def test_roundcube_s_role_reaches_the_database_over_verified_tls_from_a_webmail_host(web2_address):
    conninfo = (
        f"host={DATABASE_CONTAINER} port={DATABASE['webmail_database_port']} dbname={NAME}"
        f" user={DATABASE['webmail_database_user']} sslmode=verify-full sslrootcert={CA}"
    )
    answer = psql(CLIENT_CONTAINER, conninfo, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() in ("t|TLSv1.3", "t|TLSv1.2")


@pytest.fixture(scope="module")
def web2_address():
    """The address of the webmail host the database tests connect from (CLIENT_CONTAINER)."""
    return container_address(CLIENT_CONTAINER)


def test_postgresql_refuses_roundcube_s_role_without_tls_even_from_a_webmail_host(web2_address):
    conninfo = (
        f"host={DATABASE_CONTAINER} port={DATABASE['webmail_database_port']} dbname={NAME}"
        f" user={DATABASE['webmail_database_user']} sslmode=disable"
    )
    answer = psql(CLIENT_CONTAINER, conninfo, "SELECT 1")
    assert answer.returncode != 0
    assert f"FATAL:  {refused(web2_address, 'no encryption')}" in answer.stderr


def test_a_webmail_host_refuses_a_database_whose_certificate_names_another_host(web2_address):
    # libpq's verify-full, as in Roundcube's DSN: the address of the database host, a name its
    # certificate does not carry
    database_address = container_address(DATABASE_CONTAINER)
    conninfo = (
        f"host=db.invalid hostaddr={database_address} port={DATABASE['webmail_database_port']}"
        f" dbname={NAME} user={DATABASE['webmail_database_user']}"
        f" sslmode=verify-full sslrootcert={CA}"
    )
    answer = psql(CLIENT_CONTAINER, conninfo, "SELECT 1")
    assert answer.returncode != 0
    assert re.search(
        r'server certificate for "[^"]+" \(and \d+ other names?\) does not match host name "db.invalid"', answer.stderr
    ), answer.stderr


@pytest.mark.parametrize("use_tls", [True, False], ids=["tls", "plain"])
def test_postgresql_refuses_an_address_that_is_not_a_webmail_host(use_tls):
    backup_address = container_address(BACKUP_CONTAINER)
    answer = startup(BACKUP_CONTAINER, use_tls)
    assert answer == "E " + refused(backup_address, "SSL encryption" if use_tls else "no encryption")


# pg_restore reads the dump out of the archive (restic dump), as a restore would
ARCHIVED_DUMP = r"""
import subprocess, sys
from govmail import backup
config = backup.Config.load()
staged = f"{config['staging_dir']}/database/{sys.argv[2]}.pgdump"
dump = subprocess.run(
    ["restic", "dump", sys.argv[1], staged], env=config.environment(), capture_output=True, check=True
)
listed = subprocess.run(["pg_restore", "--list"], input=dump.stdout, capture_output=True, check=True)
sys.stdout.write(listed.stdout.decode())
"""


def test_the_backup_archive_holds_the_webmail_database():
    """Dumped by the backup client of the host that runs it (a webmail host of its own in
    molecule/default: its own archive, in its own repository)."""
    backed_up = subprocess.run(["docker", "exec", DATABASE_CONTAINER, "govmail-backup", "run", "--json"],
                               capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert backed_up.returncode == 0, backed_up.stderr
    python = f"{PROGRAM_DIR}/venv/bin/python"
    listed = subprocess.run(
        ["docker", "exec", "-i", DATABASE_CONTAINER, python, "-", json.loads(backed_up.stdout)["archive"], NAME],
        input=ARCHIVED_DUMP, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    tables = {line.split()[-2] for line in listed.stdout.splitlines() if " TABLE DATA public " in line}
    assert {"users", "session", "identities", "contacts"} <= tables, listed.stdout

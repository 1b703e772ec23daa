"""Fixtures for the appliance tests: they talk to a converged stack over real protocols.

Which stack: the lab by default (ports 127.0.0.1:1xxxx, secrets in .lab/secrets); Molecule's
verify step sets GOVMAIL_PORT_OFFSET=20000, GOVMAIL_SECRETS_DIR and GOVMAIL_MAIL_CONTAINER.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import functools
import imaplib
import json
import os
import random
import re
import ssl
import subprocess
import sys
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import clients
import ldap3
import pytest
import testinfra

from govmail import contract

PROJECT_DIR = Path(__file__).resolve().parents[2]
OFFSET = int(os.environ.get("GOVMAIL_PORT_OFFSET", contract.LAB_PORT_OFFSET))
SECRETS_DIR = os.environ.get("GOVMAIL_SECRETS_DIR") or None
MAIL_CONTAINER = os.environ.get("GOVMAIL_MAIL_CONTAINER", "govmail-lab-mail1")
BACKUP_CONTAINER = os.environ.get("GOVMAIL_BACKUP_CONTAINER", MAIL_CONTAINER.replace("mail1", "backup1"))
# A second webmail host, where the stack has one (molecule/default's verifier env): its 443 on
# 127.0.0.1 and its container. A webmail host is a backup client of its own (its logs).
WEB2_PORT = os.environ.get("GOVMAIL_WEB2_HTTPS_PORT")
WEB2_CONTAINER = os.environ.get("GOVMAIL_WEB2_CONTAINER")
# The host running the webmail's database (govmail_webmail_database_host; molecule/default: web2,
# the first webmail host there), a backup client that archives it.
DATABASE_CONTAINER = os.environ.get("GOVMAIL_DATABASE_CONTAINER", MAIL_CONTAINER)

# The nightly timers whose runs would change what a test compares while the session runs: a
# backup at 01:30 (roles/backup) becomes the newest archive that test_check and test_daily_mail
# expect to be their own, and a prune at 05:00 drops archives test_backup restores from and the
# drill's before it has copied them. CI runs at any hour: they are held for the session. (Not the
# directory host's own timers: `govmail check` reports those inactive, health.GROUP_TIMERS.)
NIGHTLY_TIMERS = {
    MAIL_CONTAINER: ("govmail-backup.timer",),
    BACKUP_CONTAINER: ("govmail-backup-prune.timer",),
    **({WEB2_CONTAINER: ("govmail-backup.timer",)} if WEB2_CONTAINER else {}),
}


def hold_timers(timers: dict[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """Stop each active timer of ``{container: (timer, ...)}``; the ``(container, timer)`` pairs
    stopped, for :func:`release_timers`. A container or timer that is not there is left alone."""
    held = []
    for container, names in timers.items():
        for name in names:
            active = ["docker", "exec", container, "systemctl", "is-active", "--quiet", name]
            if subprocess.run(active, capture_output=True, check=False).returncode != 0:
                continue
            stopped = subprocess.run(["docker", "exec", container, "systemctl", "stop", name], capture_output=True,
                                     text=True, check=False)  # fmt: skip
            assert stopped.returncode == 0, f"cannot stop {name} on {container}: {stopped.stderr.strip()}"
            held.append((container, name))
    return held


def release_timers(held: list[tuple[str, str]]) -> None:
    """Start again the timers :func:`hold_timers` stopped."""
    for container, name in held:
        subprocess.run(["docker", "exec", container, "systemctl", "start", name], capture_output=True, check=False)


@pytest.fixture(scope="session", autouse=True)
def nightly_timers_held():
    """:data:`NIGHTLY_TIMERS` stopped from the session's first test to its end, then started again."""
    held = hold_timers(NIGHTLY_TIMERS)
    yield held
    release_timers(held)


def pytest_collection_modifyitems(session, config, items):
    """test_drill.py's tests run last: its drill is built in the background from the session's
    first test on (``background_drill``), beside every other module (CI's time, README)."""
    items.sort(key=lambda item: item.module.__name__ == "test_drill")  # stable: the others keep their order


@pytest.fixture(scope="session", autouse=True)
def background_drill(request, nightly_timers_held):
    """When test_drill.py is among the selected tests, its drill (``test_drill.start``) starts
    before the first test and runs beside the others; ``None`` otherwise. What its tests compare
    with is captured when its archive is made (``test_drill.start``), and a test that prunes
    archives first waits until the drill has copied the repository (:func:`wait_copied`)."""
    if not any(item.module.__name__ == "test_drill" for item in request.session.items):
        yield None
        return
    import test_drill

    started = test_drill.start(request)
    yield started
    test_drill.stop(started)


def wait_copied(started: dict | None) -> None:
    """Returns once the background drill (``background_drill``'s value; None when no drill runs)
    has copied the site's repository into its own stack (its stderr shows ``drill: copy done``,
    govmail.drill's progress line) or has ended: from then on nothing done to the site's archives
    reaches it."""
    if started is None:
        return

    def copied() -> bool:
        return started["process"].poll() is not None or "drill: copy done" in started["stderr"].read_text()

    clients.wait_for(copied, timeout=1800, interval=2, what="the drill's copy of the repository")


@pytest.fixture(scope="session")
def status():
    return contract.status(offset=OFFSET, project_dir=PROJECT_DIR)


@pytest.fixture(scope="session")
def creds():
    return contract.credentials(secrets_dir=SECRETS_DIR, project_dir=PROJECT_DIR)


@pytest.fixture(scope="session")
def hostname(status):
    return status["mail_hostname"]


@pytest.fixture(scope="session")
def domain(status):
    return status["domain"]


@pytest.fixture(scope="session")
def port(status):
    return lambda service: status["endpoints"][service]["port"]


@pytest.fixture(scope="session")
def address(status):
    return status["endpoints"]["smtp"]["host"]


@pytest.fixture(scope="session")
def tls(creds):
    """A client context that trusts only the appliance's CA and checks the host name."""
    context = ssl.create_default_context(cafile=creds["ca_certificate"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@pytest.fixture(scope="session")
def personal(creds):
    people = [a for a in creds["accounts"] if a["kind"] == "personal"]
    assert len(people) >= 2, "the stack must seed at least two personal mailboxes"
    return people


@pytest.fixture(scope="session")
def alice(personal):
    return personal[0]


@pytest.fixture(scope="session")
def bob(personal):
    return personal[1]


@pytest.fixture(scope="session")
def agency(creds):
    return next(a for a in creds["accounts"] if a["kind"] == "agency")


@pytest.fixture(scope="session")
def mail_host():
    """testinfra view of the mail host (services, files), through the Docker engine."""
    return testinfra.get_host(f"docker://{MAIL_CONTAINER}")


# --- connections ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_backup(mail_host):
    """A backup of the mail host taken now (a fresh stack has none until its first nightly run, and
    `govmail check` and the daily mail judge its age); ``govmail-backup run --json``'s report."""
    backed_up = mail_host.run("govmail-backup run --json")
    assert backed_up.rc == 0, backed_up.stderr
    return json.loads(backed_up.stdout)


@pytest.fixture
def smtp(address, hostname, port):
    """Unauthenticated client on port 25, as another mail server would connect."""
    client = clients.SMTP(address, hostname, port("smtp"))
    yield client
    client.close()


@pytest.fixture
def submission(address, hostname, port, tls):
    """Client on 587 after STARTTLS, not yet authenticated."""
    client = clients.SMTP(address, hostname, port("submission"))
    client.ehlo("client.example")
    client.starttls(context=tls)
    client.ehlo("client.example")
    yield client
    client.close()


@pytest.fixture
def submissions(address, hostname, port, tls):
    client = clients.SMTP_SSL(address, hostname, port("submissions"), tls)
    client.ehlo("client.example")
    yield client
    client.close()


@pytest.fixture
def imaps(address, hostname, port, tls):
    """Opens an IMAPS session for an account: ``imaps(account)``."""
    opened = []

    def login(account):
        client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
        client.login(account["address"], account["password"])
        opened.append(client)
        return client

    yield login
    for client in opened:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


# --- the govmail command line, aimed at the stack under test ----------------------------------


def _govmail_command() -> list[str]:
    script = Path(sys.executable).with_name("govmail")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "govmail.cli"]


@pytest.fixture(scope="session")
def cli_env(address, port, creds):
    env = dict(os.environ)
    env["GOVMAIL_PROJECT_DIR"] = str(PROJECT_DIR)
    env["GOVMAIL_LDAP_URI"] = f"ldaps://{address}:{port('ldaps')}"
    env["GOVMAIL_SECRETS_DIR"] = str(Path(creds["ca_certificate"]).parent.parent)
    env.pop("GOVMAIL_LDAP_ADMIN_PASSWORD_FILE", None)
    env.pop("GOVMAIL_LDAP_CA_FILE", None)
    # commands that act on the directory host itself (lifecycle run, handover's kick)
    env["GOVMAIL_DIRECTORY_CONTAINER"] = MAIL_CONTAINER
    return env


@pytest.fixture(scope="session")
def govmail(cli_env):
    """``govmail("account", "show", addr, "--json")`` -> CompletedProcess (text)."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*_govmail_command(), *args], capture_output=True, text=True, cwd=PROJECT_DIR,
            env=env or cli_env, timeout=300, check=False,
        )  # fmt: skip

    return run


def ok_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govmail: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="session")
def ppolicy(address, port, hostname, creds):
    """Skip unless the directory's schema has pwdReset (the ppolicy overlay is loaded)."""
    import ssl

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=creds["ca_certificate"], valid_names=[hostname])
    server = ldap3.Server(address, port=port("ldaps"), use_ssl=True, tls=tls, get_info=ldap3.NONE, connect_timeout=20)
    admin = creds["ldap_admin"]
    conn = ldap3.Connection(server, user=admin["dn"], password=admin["password"], auto_bind=True)
    conn.search("cn=Subschema", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["attributeTypes"])
    types = " ".join(str(value) for entry in conn.entries for value in entry.attributeTypes.values)
    conn.unbind()
    if not re.search(r"NAME\s+'pwdReset'", types):
        pytest.fail("the directory has no password policy overlay (ppolicy: pwdReset unknown): converge the "
                    "stack with the current roles (govmail lab up --converge)")  # fmt: skip


@contextlib.contextmanager
def _agencies(govmail):
    """The factory of ``new_agency`` (below); everything it created is deleted on leaving."""
    created: list[str] = []

    class Agency(dict):
        def person(self, name: str, password: str | None = None) -> dict:
            document = ok_json(govmail("account", "add", name, "--agency", self["abbr"], "--json"))
            created.insert(0, document["address"])
            if password is None:
                return document
            changed = govmail(
                "account", "passwd", document["address"], "--old", document["initial_password"], "--new", password
            )
            assert changed.returncode == 0, changed.stderr
            return {**document, "password": password}

    def make(name: str, prefix: str) -> Agency:
        abbr = f"{prefix}{random.randrange(10**6):06d}"
        document = ok_json(govmail("account", "add", name, "--kind", "agency", "--abbreviation", abbr, "--json"))
        created.append(document["address"])
        return Agency(abbr=abbr, agency=document)

    try:
        yield make
    finally:
        for address_ in created:
            govmail("account", "delete", address_, "--force")


@pytest.fixture
def new_agency(govmail, ppolicy):
    """``new_agency(name, prefix)``: a new agency of the test's own, with ``.person(name)`` to add staff.

    The agency's abbreviation is ``prefix`` + six random digits; its people and the agency
    itself are deleted when the test ends. ``.person(name, password=P)`` also sets the person's
    own password P (as the owner does after an administrator's initial one) and returns it as
    ``"password"``.
    """
    with _agencies(govmail) as make:
        yield make


@pytest.fixture(scope="module")
def module_agency(govmail, ppolicy):
    """``new_agency`` for a whole module: people its tests share (one webmail login per person
    and module), deleted when the module ends."""
    with _agencies(govmail) as make:
        yield make


# --- helpers -------------------------------------------------------------------------------


def imap_login_ok(address, hostname, port, tls, user: str, password: str) -> bool:
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    try:
        client.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


@pytest.fixture
def login_ok(address, hostname, port, tls):
    return lambda user, password: imap_login_ok(address, hostname, port, tls, user, password)


def make_message(sender: str, recipient: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{uuid.uuid4()}@govmail.test>"
    message.set_content(body)
    return message


def imap_fetch(client, message_id: str, mailbox: str = "INBOX", header: str = "Message-ID") -> bytes | None:
    """The full message whose ``header`` (Message-ID; In-Reply-To for a reply) names ``message_id``,
    or None if it has not arrived (yet)."""
    client.select(mailbox)
    typ, data = client.search(None, "HEADER", header, message_id)
    ids = data[0].split() if typ == "OK" else []
    if not ids:
        return None
    typ, parts = client.fetch(ids[-1], "(BODY.PEEK[])")
    return parts[0][1]


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=email.policy.default).parsebytes(raw)


# --- directory ---------------------------------------------------------------------------


@functools.cache
def site_base_dn() -> str:
    """The stack's directory suffix as its inventory sets it (govmail_ldap_base_dn, through Ansible)."""
    return contract.site_values(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR)["base_dn"]


def mailbox_dn(domain: str, account: dict) -> str:
    return f"uid={account['address'].split('@')[0]},ou={account['agency']},ou=agencies,{site_base_dn()}"


@pytest.fixture(scope="session")
def ldaps_server(address, port, hostname, creds):
    import ldap3

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=creds["ca_certificate"], valid_names=[hostname])
    return ldap3.Server(address, port=port("ldaps"), use_ssl=True, tls=tls, get_info=ldap3.NONE, connect_timeout=20)


@pytest.fixture
def ldap_admin(ldaps_server, creds):
    import ldap3

    conn = ldap3.Connection(
        ldaps_server, user=creds["ldap_admin"]["dn"], password=creds["ldap_admin"]["password"], auto_bind=True
    )
    yield conn
    conn.unbind()


# --- quota ----------------------------------------------------------------------------------


def quota_kib(imaps, account) -> tuple[int, int]:
    """(used, limit) in KiB as IMAP GETQUOTAROOT reports them."""
    client = imaps(account)
    _, data = client.getquotaroot("INBOX")
    text = b" ".join(part for group in data for part in group if isinstance(part, bytes)).decode()
    used, limit = re.search(r"STORAGE (\d+) (\d+)", text).groups()
    return int(used), int(limit)


@pytest.fixture
def set_quota(ldap_admin, domain, personal):
    """Give the third demo person a quota of ``used + room_kib`` for one test, then its default back."""
    account = personal[2]
    dn = mailbox_dn(domain, account)

    def apply(imaps, room_kib: int) -> dict:
        used, _ = quota_kib(imaps, account)
        return limit(used + room_kib)

    def limit(limit_kib: int) -> dict:
        ldap_admin.modify(dn, {"govmailQuota": [(ldap3.MODIFY_REPLACE, [str(int(limit_kib) * 1024)])]})
        assert ldap_admin.result["description"] == "success"
        return account

    apply.limit = limit
    apply.used = lambda imaps: quota_kib(imaps, account)[0]
    yield apply
    ldap_admin.modify(dn, {"govmailQuota": [(ldap3.MODIFY_DELETE, [])]})


@pytest.fixture
def full_mailbox(smtp, imaps, set_quota):
    """The third person's mailbox, filled past its limit (the last message may take a mailbox over
    its limit: Dovecot's grace); the account, with ``filler_id`` the Message-ID of that message."""
    account = set_quota(imaps, room_kib=1)
    _, limit = quota_kib(imaps, account)
    filler = make_message("van.thu@ubnd.example.org", account["address"], "Tệp lớn", "x" * 4000 + "\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(filler) == {}
    clients.wait_for(lambda: quota_kib(imaps, account)[0] > limit, what="the mailbox to fill up")
    smtp.rset()
    account = dict(account, filler_id=filler["Message-ID"])
    return account

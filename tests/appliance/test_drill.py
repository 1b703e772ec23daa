"""The restore drill and a whole restore onto new hosts (O1, A4, issue 11).

The drill builds its disposable stack from the scenario's name: containers ``<scenario>-drill-*``
(``govmail-mol-drill-*`` for the default scenario), the subnet ``$GOVMAIL_DRILL_SUBNET`` (default
172.29.51.0/24) and ports at the scenario's offset + 1000 (21025/21993 for the default scenario),
so it touches neither the scenario's stack nor the lab. One drill runs, with ``--keep``, started
in the background before the session's first test (conftest ``background_drill``): its stack is
built while the other modules run, and this module's tests run last. Its
containers never saw the original and its secrets directory started with only what an operator
keeps away from the appliance (the repository's passphrase and the recovery passphrase; the
third thing, the inventory, is Molecule's), so the kept stack is also where the restore onto
brand-new hosts is proven (secrets and CA key byte for byte, the certificate against the original
CA, a user's every message and flag, a second restore changing nothing) before ``--remove`` takes
it away: one whole restore (minutes) serves both. Then a drill of an archive with one message
altered, and of one with a message removed, fails naming the mailbox and the message: its
``check`` phase compares the archive with its manifest before anything is built (seconds each).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import clients
import pytest
import testinfra
from clients import wait_for
from conftest import (
    DATABASE_CONTAINER,
    MAIL_CONTAINER,
    OFFSET,
    PROJECT_DIR,
    SECRETS_DIR,
    WEB2_CONTAINER,
    WEB2_PORT,
    _govmail_command,
    make_message,
    ok_json,
)
from test_backup import OUTSIDER, open_imaps, snapshot_of
from test_learning import learned, teach_spam
from test_webmail_database_backup import in_container, rows_of, webmail_database, write_contact_and_identity

PREFIX = MAIL_CONTAINER.removesuffix("-mail1") + "-drill"
SUBNET = os.environ.get("GOVMAIL_DRILL_SUBNET", "172.29.51.0/24")
STAGING = "/var/backups/govmail/staging"


def _inventory() -> Path:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral:
        pytest.skip("the drill test runs on a Molecule scenario (MOLECULE_EPHEMERAL_DIRECTORY)")
    return Path(ephemeral) / "inventory"


def on_mail_host(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", MAIL_CONTAINER, "sh", "-euc", script], capture_output=True, text=True,
                          check=False, timeout=600)  # fmt: skip


def drill_command(reports: Path, *extra: str) -> list[str]:
    return [*_govmail_command(), "drill", "--inventory", str(_inventory()), "--report", str(reports), "--prefix",
            PREFIX, "--subnet", SUBNET, "--port-base", str(OFFSET + 1000), "--json", *extra]  # fmt: skip


USAGE_DIR = "/var/lib/govmail/usage"  # govmail_usage_dir, the lab's and Molecule's default


def usage_files(container: str) -> dict[str, str]:
    """``{path: sha256}`` of the usage roll-ups on ``container``."""
    listing = subprocess.run(["docker", "exec", container, "sh", "-c", f"cd {USAGE_DIR} && find . -type f "
                              "-exec sha256sum {} +"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {path: digest for digest, path in (line.split(None, 1) for line in listing.splitlines())}


def start(request: pytest.FixtureRequest) -> dict:
    """Prepares a fresh archive holding mail for alice and starts its drill (``--keep``) as a
    background process (its output in files: a pipe nobody reads would stall it); conftest's
    ``background_drill`` calls it before the session's first test, so the disposable stack (most
    of this module's minutes) is built while the other modules run.

    Everything this module's tests compare with is captured here, when the archive is made: the
    other modules go on changing the scenario (test_crl reissues the CA's files, the retention
    test prunes archives, test_purge rewrites them).

    ``{"archive", "process": the drill (Popen), "stdout"/"stderr": its files, "before": alice's
    mailbox as snapshot_of gives it, "learned": the filter's learned counts in the archive,
    "secrets": the scenario's secrets directory as archived (``{relative path: bytes}``, or None),
    "usage", "webmail" (with "listed": the archived PostgreSQL dump's data as pg_restore prints
    it), "env", "reports": the report directory}``.
    """
    govmail, cli_env = request.getfixturevalue("govmail"), request.getfixturevalue("cli_env")
    address, hostname = request.getfixturevalue("address"), request.getfixturevalue("hostname")
    port, tls, alice = request.getfixturevalue("port"), request.getfixturevalue("tls"), request.getfixturevalue("alice")
    mail_host = request.getfixturevalue("mail_host")
    tag = uuid.uuid4().hex[:8]
    with clients.SMTP(address, hostname, port("smtp")) as smtp:
        smtp.ehlo("mx.example.org")
        assert smtp.send_message(make_message(OUTSIDER, alice["address"], f"Diễn tập {tag}", "Nội dung\n")) == {}
    client = open_imaps(address, hostname, port, tls, alice)
    client.select("INBOX")
    wait_for(lambda: len(client.search(None, "SUBJECT", tag)[1][0].split()) == 1, what="the delivery")
    # what alice taught the spam filter (a newsletter moved into Junk): learned state the restore brings back
    taught = teach_spam(client, mail_host)
    before = snapshot_of(client)
    client.logout()
    # a usage roll-up (yesterday's) in the archive: data a restore must put back in place
    started = on_mail_host("systemctl start govmail-usage-rollup.service")
    assert started.returncode == 0, started.stderr
    usage = usage_files(MAIL_CONTAINER)
    # a personal contact and a signature in the webmail's own database, on the host that runs it
    # (molecule/default: web2, whose own archive holds it)
    database = webmail_database(DATABASE_CONTAINER)
    webmail = database and {
        "database": database,
        "tag": tag,
        **write_contact_and_identity(DATABASE_CONTAINER, database, f"drill-{tag}@example.org", tag),
    }
    archive = ok_json(govmail("backup", "run", "--json"))["archive"]
    secrets = secrets_files(Path(SECRETS_DIR)) if SECRETS_DIR else None
    # a request only the second webmail host logged, then its own archive (a backup client of its
    # own, O2): restore.yml puts that archive's logs back on the drill's web2
    web2 = None
    if WEB2_CONTAINER and WEB2_PORT:
        marker = f"/drill-log-{tag}"
        logged = ssl.create_default_context()
        logged.check_hostname, logged.verify_mode = False, ssl.CERT_NONE  # a log line, not a TLS test
        with (
            socket.create_connection(("127.0.0.1", int(WEB2_PORT)), timeout=30) as raw,
            logged.wrap_socket(raw) as conn,
        ):
            conn.sendall(f"GET {marker} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
            assert conn.recv(64).startswith(b"HTTP/1.1 ")
        access_log = "/var/log/nginx/access.log"
        wait_for(lambda: in_container(WEB2_CONTAINER, 'grep -qF -- "$1" "$2"', marker, access_log).returncode == 0,
                 what="web2's access log line")  # fmt: skip
        backed_up = in_container(WEB2_CONTAINER, "govmail-backup run --json")
        assert backed_up.returncode == 0, backed_up.stderr
        web2 = {"archive": json.loads(backed_up.stdout)["archive"], "marker": marker}
    # the archive's dump lists the rows (SQLite: test_webmail_database_backup), in the archive of
    # the database's host (the drill restores that host from its archive nearest to ``archive``)
    if webmail and database["type"] == "pgsql":
        holder = web2["archive"] if web2 and DATABASE_CONTAINER == WEB2_CONTAINER else archive
        listed = in_container(DATABASE_CONTAINER, 'govmail-backup restic dump "$1" "$2" | pg_restore --data-only '
                              "--file=-", holder, f"{STAGING}/database/{database['name']}.pgdump")  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        webmail["listed"] = listed.stdout
    reports = request.getfixturevalue("tmp_path_factory").mktemp("drill")
    stdout, stderr = reports / "drill.stdout", reports / "drill.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(drill_command(reports, "--archive", archive, "--keep"), stdout=out, stderr=err,
                                   cwd=PROJECT_DIR, env=cli_env)  # fmt: skip
    return {"archive": archive, "process": process, "stdout": stdout, "stderr": stderr, "before": before,
            "learned": taught, "secrets": secrets, "usage": usage, "webmail": webmail, "env": cli_env,
            "reports": reports, "web2": web2}  # fmt: skip


def stop(started: dict) -> None:
    """At the session's end: a drill still running (the session was cut short) is stopped and its
    stack removed; the module's ``drill`` fixture removes the stack otherwise."""
    if started["process"].poll() is None:
        started["process"].terminate()
        started["process"].wait(timeout=60)
        subprocess.run(drill_command(started["reports"], "--remove"), capture_output=True, check=False, timeout=600,
                       cwd=PROJECT_DIR, env=started["env"])  # fmt: skip


@pytest.fixture(scope="module")
def drill(background_drill):
    """The background drill, once it has ended: :func:`start`'s dict plus ``"code"``, ``"stderr"``
    (its text) and ``"report"`` (its JSON); the kept stack is removed at the end of the module."""
    assert background_drill, "conftest's background_drill did not start the drill"
    code = background_drill["process"].wait(timeout=3600)
    stdout = background_drill["stdout"].read_text()
    yield {**background_drill, "code": code, "stderr": background_drill["stderr"].read_text(),
           "report": json.loads(stdout) if stdout.strip() else {}}  # fmt: skip
    subprocess.run(drill_command(background_drill["reports"], "--remove"), capture_output=True, check=False,
                   timeout=600, cwd=PROJECT_DIR, env=background_drill["env"])  # fmt: skip


def test_a_drill_of_a_healthy_archive_passes(drill):
    assert drill["code"] == 0, drill["stderr"][-2000:]
    report = drill["report"]
    assert report["result"] == "pass", report["mismatches"]
    assert report["archive"] == drill["archive"]
    assert report["mismatches"] == []
    assert report["mailboxes"] and all(row["ok"] for row in report["mailboxes"])
    assert sum(row["messages"] for row in report["mailboxes"]) >= 1
    assert report["directory"]["ok"] and report["directory"]["entries"] > 0
    assert report["filter"]["ok"] and report["filter"]["keys"] > 0


def test_the_filter_has_learned_on_the_new_hosts_what_users_taught_it_on_the_old(drill):
    """The restored mx host's Valkey holds the archived learned counts (what alice taught it)."""
    kept_mail_host = testinfra.get_host(f"docker://{PREFIX}-{MAIL_CONTAINER}")
    assert learned(kept_mail_host) == drill["learned"]


def test_the_drill_measures_rto_and_rpo_and_compares_rto_with_a4(drill):
    report = drill["report"]
    assert 0 < report["rto_seconds"] < report["rto_bound_seconds"] == 4 * 3600
    assert report["rto_within_bound"] is True
    assert 0 <= report["rpo_seconds"] < 3600
    # with --keep there is no "remove" phase: the stack stays for the tests below
    assert [p["name"] for p in report["phases"]] == [
        "check", "create", "copy", "restore", "verify", "login", "delivery"
    ]  # fmt: skip


def test_the_drill_shows_each_phase_on_stderr(drill):
    for phase in ("check", "create", "copy", "restore", "verify", "login", "delivery"):
        assert f"drill: {phase}..." in drill["stderr"]


def test_the_drill_writes_an_html_report_with_a_phase_chart_and_agencies(drill):
    page = Path(drill["report"]["report_html"]).read_text()
    assert "Restore drill: PASS" in page and "<svg" in page and "<h2>Agencies</h2>" in page
    assert Path(drill["report"]["report_html"]).with_suffix(".json").is_file()


def tampered_archive(change: str) -> tuple[str, str, str]:
    """An archive whose manifest is the latest one's but one stored INBOX message is changed.

    ``change`` is ``alter`` (one byte appended) or ``remove``. Returns (archive, address, message
    base name). Built on the mail host with restic and its own append-only credential.
    """
    script = f"""
rm -rf {STAGING}
govmail-backup restic restore latest --tag govmail --target / --include {STAGING} >/dev/null
file=$(ls -d {STAGING}/vmail/*/*/Maildir/cur/* {STAGING}/vmail/*/*/Maildir/new/* 2>/dev/null | head -n1)
echo "$file"
if [ {change} = alter ]; then printf x >> "$file"; else rm "$file"; fi
govmail-backup restic backup --json --tag govmail --host tampered {STAGING} | tail -n1
rm -rf {STAGING}
"""
    completed = on_mail_host(script)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.strip().splitlines()
    path, summary = lines[0], json.loads(lines[-1])
    parts = path.split("/")
    address = f"{parts[-4]}@{parts[-5]}"
    return summary["snapshot_id"][:8], address, parts[-1].split(":")[0]


@pytest.fixture(scope="module")
def normal_archive_afterwards(govmail):
    yield
    ok_json(govmail("backup", "run", "--json"))  # later tests and `latest` see an honest archive


@pytest.mark.parametrize("change", ["alter", "remove"])
def test_a_drill_of_an_archive_with_a_message_altered_or_removed_fails_naming_it(
    drill, normal_archive_afterwards, change, tmp_path
):
    archive, address, message = tampered_archive(change)
    completed = subprocess.run(drill_command(tmp_path, "--archive", archive), capture_output=True, text=True,
                               check=False, timeout=1800, cwd=PROJECT_DIR, env=drill["env"])  # fmt: skip
    assert completed.returncode == 1, completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    assert report["result"] == "fail" and report["archive"] == archive
    word = "altered" if change == "alter" else "missing"
    assert any(line.startswith(f"{address}: folder 'INBOX': message {message} {word}") for line in
               report["mismatches"]), report["mismatches"]  # fmt: skip
    assert [row["ok"] for row in report["mailboxes"] if row["address"] == address] == [False]
    assert f"govmail: drill mismatch: {address}: folder 'INBOX': message {message} {word}" in completed.stderr
    # found before anything was built: no stack, no restore, no RTO
    assert [phase["name"] for phase in report["phases"]] == ["check"]
    assert report["rto_seconds"] is None
    page = Path(report["report_html"]).read_text()
    assert "Restore drill: FAIL" in page and message in page


# --- the kept stack: a whole restore onto brand-new hosts -----------------------------------------


def secrets_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_restored_hosts_are_new_containers_of_their_own(drill):
    kept = drill["report"]["kept"]
    assert kept["containers"] and all(c.startswith(f"{PREFIX}-") for c in kept["containers"])
    inspect = ["docker", "inspect", "--format", "{{.Id}} {{.Config.Image}}"]
    original = subprocess.run([*inspect, MAIL_CONTAINER], capture_output=True, text=True, check=True).stdout.split()[0]
    for container in kept["containers"]:
        container_id, image = subprocess.run([*inspect, container], capture_output=True, text=True,
                                             check=True).stdout.split()  # fmt: skip
        assert container_id != original and image == "govmail/trixie-systemd:latest", container


def test_every_secret_and_the_ca_key_come_back_byte_for_byte(drill):
    if not SECRETS_DIR:
        pytest.skip("needs the scenario's secrets directory (GOVMAIL_SECRETS_DIR)")
    original = drill["secrets"]  # as archived: test_crl has since reissued the CA's files
    restored = secrets_files(Path(drill["report"]["kept"]["secrets"]))
    assert original["pki/ca.key"] and restored["pki/ca.key"] == original["pki/ca.key"]
    for name in ("pki/ca.crt", "ldap-admin", "backup-client-" + MAIL_CONTAINER):
        if name in original:
            assert restored.get(name) == original[name], name
    # the CA's record of what it issued gains the new hosts' certificates; everything else is as it was
    changed = [n for n, data in original.items() if restored.get(n) != data]
    assert all(n.startswith("pki/issued/") for n in changed), changed


def test_the_new_host_certificate_verifies_against_the_original_ca(drill, creds, hostname):
    context = ssl.create_default_context(cafile=creds["ca_certificate"])  # the scenario's CA, not the drill's copy
    with (
        socket.create_connection(("127.0.0.1", drill["report"]["kept"]["ports"]["imaps"]), timeout=20) as sock,
        context.wrap_socket(sock, server_hostname=hostname) as conn,
    ):
        assert conn.getpeercert()["subjectAltName"]


def test_users_log_in_with_their_old_passwords_and_find_their_mail_byte_for_byte(drill, hostname, tls, alice):
    client = clients.IMAP_SSL("127.0.0.1", hostname, drill["report"]["kept"]["ports"]["imaps"], tls)
    client.login(alice["address"], alice["password"])
    after = snapshot_of(client)
    client.logout()
    for folder, messages in drill["before"].items():
        if folder == "INBOX":  # the drill's own delivery phase added one message to its account's INBOX
            assert set(messages) <= set(after[folder]), "INBOX lost messages in the restore"
        else:
            assert after.get(folder) == messages, f"{folder} differs after the restore"


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {"host": {"ok": N, "changed": N, "failed": N, ...}}."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)  # colour codes, should any remain
    return {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE)
    }


def test_the_usage_roll_ups_come_back_in_place_and_the_old_logs_beside_the_new(drill):
    restored_host = f"{PREFIX}-{MAIL_CONTAINER}"  # <prefix>-<inventory host name>
    assert drill["usage"], "the scenario had no usage roll-up to back up"
    own_run = subprocess.run(["docker", "exec", restored_host, "systemctl", "show", "-p", "ExecMainStartTimestamp",
                              "--value", "govmail-usage-rollup.service"], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    restored = usage_files(restored_host)
    for path, digest in drill["usage"].items():
        assert path in restored, f"usage roll-up {path} was not restored"
        if not own_run:  # the new host's own timer may have written its own roll-up of that day since
            assert restored[path] == digest, path
    logs = f"/var/log/govmail-restored/{drill['archive']}/var/log/journal"
    journals = subprocess.run(["docker", "exec", restored_host, "find", logs, "-name", "*.journal"],
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert journals.returncode == 0 and journals.stdout.strip(), f"no journal of the old host in {logs}"


def test_a_webmail_host_s_own_logs_come_back_from_its_own_archive_beside_the_new_ones(drill):
    """The second webmail host backs itself up (roles/backup's client on every webmail host); a
    whole restore puts its archive of the same night back there (restore.yml, restore-client)."""
    web2 = drill["web2"]
    if not web2:
        pytest.skip("the stack has no webmail host of its own (GOVMAIL_WEB2_CONTAINER, GOVMAIL_WEB2_HTTPS_PORT)")
    restored = f"{PREFIX}-{WEB2_CONTAINER}"  # <prefix>-<inventory host name>
    logs = f"/var/log/govmail-restored/{web2['archive']}/var/log/nginx"
    found = in_container(restored, 'grep -rlF -- "$1" "$2"', web2["marker"], logs)
    assert found.returncode == 0 and found.stdout.strip(), f"{web2['marker']} is not in {logs} on {restored}"
    # the new host's own log never saw that request
    assert in_container(restored, 'grep -cF -- "$1" /var/log/nginx/access.log', web2["marker"]).stdout.strip() in (
        "",
        "0",
    )


def test_the_webmail_s_personal_contact_and_signature_are_archived_and_come_back(drill):
    webmail = drill["webmail"]
    if not webmail:
        pytest.skip(f"{MAIL_CONTAINER} runs no webmail database")
    database, tag = webmail["database"], webmail["tag"]
    wanted = ([[webmail["contact"], webmail["email"]]], [[webmail["email"], webmail["signature"]]])
    if database["type"] == "pgsql":  # listed when the archive was made (start): it may since have been pruned
        assert webmail["contact"] in webmail["listed"] and webmail["signature"] in webmail["listed"]
    restored = f"{PREFIX}-{DATABASE_CONTAINER}"  # <prefix>-<inventory host name>: runs the database there too
    assert webmail_database(restored) == database
    assert rows_of(restored, database, tag) == wanted


def test_restoring_the_same_archive_twice_changes_nothing(drill):
    # site.yml's own idempotence is Molecule's idempotence step; here the restore's part
    # (secrets, directory, mailboxes) runs again on the kept stack: tags backup.
    kept = drill["report"]["kept"]
    # Molecule's verify exports ANSIBLE_FORCE_COLOR: the recap must come back without colours
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "GOVMAIL_SECRETS_DIR": kept["secrets"]}
    for name in ("GOVMAIL_MAIL_CONTAINER", "GOVMAIL_DIRECTORY_CONTAINER"):
        env.pop(name, None)
    second = subprocess.run(
        [shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook", "-i",
         kept["inventory"], "playbooks/restore.yml", "--tags", "backup",
         "-e", f"backup_restore_archive={drill['archive']}", "-e", f"govmail_secrets_dir={kept['secrets']}"],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=False, timeout=3600, env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:]
    assert f"archive {drill['archive']}:" in second.stdout
    counters = recap(second.stdout)
    changed = [line for line in second.stdout.splitlines() if line.startswith(("TASK [", "changed:"))]
    changed = [task for task, line in itertools.pairwise(changed) if line.startswith("changed:")]
    assert counters and all(c["changed"] == 0 for c in counters.values()), (counters, changed)


def test_the_drills_own_clerk_is_gone_from_the_restored_directory(drill):
    # the drill logs in with a temporary clerk of its own (no user's password needed) and deletes it
    directory = f"{PREFIX}-{MAIL_CONTAINER}"  # <prefix>-<inventory host name>
    ldif = subprocess.run(["docker", "exec", directory, "slapcat", "-o", "ldif-wrap=no"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert "dn: uid=" in ldif and "govmail-drill-" not in ldif


def test_drill_remove_takes_the_kept_stack_and_its_secrets_away(drill, cli_env):
    kept = drill["report"]["kept"]
    completed = subprocess.run(drill_command(drill["reports"], "--remove"), capture_output=True, text=True,
                               check=False, timeout=600, cwd=PROJECT_DIR, env=cli_env)  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert sorted(json.loads(completed.stdout)["removed"]) == sorted(kept["containers"])
    names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    assert not [n for n in names if n.startswith(PREFIX)]
    networks = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True,
                              check=True).stdout.split()  # fmt: skip
    assert f"{PREFIX}-net" not in networks
    assert not Path(kept["secrets"]).exists(), "the kept stack's decrypted secrets were left behind"

"""Backups and restores (O1, issue 11): append-only archives, byte-identical mail after a restore.

One archive is written for the whole module (a backup of the seeded stack takes a few seconds);
the mailbox used for the destroy-and-restore test is filled first with mail in several folders,
with flags, so the archive holds something to compare.
"""

from __future__ import annotations

import imaplib
import json
import re
import shlex
import uuid
from datetime import UTC, datetime, timedelta

import clients
import pytest
import testinfra
from clients import wait_for
from conftest import (
    BACKUP_CONTAINER,
    DATABASE_CONTAINER,
    MAIL_CONTAINER,
    WEB2_CONTAINER,
    mailbox_dn,
    make_message,
    ok_json,
    wait_copied,
)
from test_learning import learned, teach_spam

FOLDER = "Báo cáo 2025"  # a folder with Vietnamese letters and a space: stored in modified UTF-7
FLAGGED = (r"\Seen", r"\Flagged")
OUTSIDER = "van.thu@ubnd.example.org"  # mail from another organisation, on port 25


@pytest.fixture(scope="module")
def backup_host():
    return testinfra.get_host(f"docker://{BACKUP_CONTAINER}")


def snapshot_of(client) -> dict[str, list[tuple[bytes, frozenset[str]]]]:
    """Every folder's messages as (bytes, flags), sorted: what a user sees of a mailbox."""
    seen = {}
    typ, folders = client.list()
    assert typ == "OK"
    for line in folders:
        name = re.match(rb'.*\) "[^"]*" (.*)$', line).group(1).decode()
        name = name.strip('"')
        typ, data = client.select(f'"{name}"', readonly=True)
        if typ != "OK":
            continue  # \Noselect parents
        count = int(data[0])
        data = client.fetch("1:*", "(FLAGS BODY.PEEK[])")[1] if count else []
        messages = []
        for part in data:
            if isinstance(part, tuple):
                flags = frozenset(f.decode() for f in imaplib.ParseFlags(part[0]) if f != rb"\Recent")
                messages.append((part[1], flags))
        seen[name] = sorted(messages, key=lambda m: m[0])
    return seen


def open_imaps(address, hostname, port, tls, account):
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    client.login(account["address"], account["password"])
    return client


@pytest.fixture(scope="module")
def archive(govmail, address, hostname, port, tls, alice, bob):
    """Alice's mailbox with mail in INBOX (one seen) and in FOLDER (flagged), then one archive.

    Returns {"report": the JSON of `govmail backup run`, "before": snapshot_of(alice's mailbox)}.
    """
    tag = uuid.uuid4().hex[:8]
    with clients.SMTP(address, hostname, port("smtp")) as smtp:
        smtp.ehlo("mx.example.org")
        for number in range(3):
            message = make_message(OUTSIDER, alice["address"], f"Sao lưu {tag} {number}", f"Nội dung {number}\n")
            assert smtp.send_message(message) == {}
    client = open_imaps(address, hostname, port, tls, alice)
    client.select("INBOX")
    wait_for(lambda: len(client.search(None, "SUBJECT", tag)[1][0].split()) == 3, what="3 deliveries")
    client.store(client.search(None, "SUBJECT", tag)[1][0].split()[0], "+FLAGS", r"(\Seen)")
    client.create(f'"{clients.imap_utf7(FOLDER)}"')
    for number in range(2):
        raw = make_message(alice["address"], alice["address"], f"Lưu trữ {number}", "Công văn\n").as_bytes()
        assert client.append(f'"{clients.imap_utf7(FOLDER)}"', "(" + " ".join(FLAGGED) + ")", None, raw)[0] == "OK"
    before = snapshot_of(client)
    client.logout()
    return {"report": ok_json(govmail("backup", "run", "--json")), "before": before}


def test_backup_run_reports_the_archive_it_wrote(govmail, archive):
    report = archive["report"]
    assert set(report) == {"archive", "time", "mailboxes", "messages", "bytes_added"}
    assert report["mailboxes"] >= 1  # the mailboxes with a Maildir (used at least once), alice's at least
    assert report["messages"] >= 5
    archives = ok_json(govmail("backup", "list", "--json"))
    assert archives[-1]["archive"] == report["archive"]
    assert archives[-1]["messages"] == report["messages"]
    assert [a["time"] for a in archives] == sorted(a["time"] for a in archives)


@pytest.mark.parametrize(
    "command",
    [["forget", "{archive}"], ["forget", "--keep-last", "1", "--prune"]],
    ids=["delete-archive", "prune"],
)
def test_mail_host_credential_cannot_delete_or_prune(mail_host, govmail, archive, command):
    before = [a["archive"] for a in ok_json(govmail("backup", "list", "--json"))]
    if len(before) < 2:  # with a single archive, --keep-last 1 has nothing to delete and asks nothing
        ok_json(govmail("backup", "run", "--json"))
        before = [a["archive"] for a in ok_json(govmail("backup", "list", "--json"))]
    args = " ".join(shlex.quote(part.format(archive=archive["report"]["archive"])) for part in command)
    result = mail_host.run(f"govmail-backup restic {args}")
    assert "403 Forbidden" in result.stderr  # restic 0.18's forget reports it, yet may exit 0
    after = [a["archive"] for a in ok_json(govmail("backup", "list", "--json"))]
    assert after == before


def test_retention_prunes_on_the_backup_host_and_keeps_the_latest_archive(backup_host, govmail, archive,
                                                                          background_drill):  # fmt: skip
    wait_copied(background_drill)  # the drill's archive is not pruned before it has its copy
    result = backup_host.run("systemctl start govmail-backup-prune.service")
    assert result.rc == 0, result.stderr
    journal = backup_host.run("journalctl -u govmail-backup-prune.service --no-pager -n 400").stdout
    assert re.search(r"keep \d+ snapshots", journal)
    assert archive["report"]["archive"] in [a["archive"] for a in ok_json(govmail("backup", "list", "--json"))]


def test_destroyed_mailbox_comes_back_byte_identical_with_flags_and_folders(mail_host, govmail, archive, imaps, alice):
    local, domain = alice["address"].split("@")
    mail_host.run_test(f"doveadm kick {shlex.quote(alice['address'])} >/dev/null 2>&1 || true")
    assert mail_host.run(f"rm -rf /var/vmail/{domain}/{local}").rc == 0
    assert clients.imap_utf7(FOLDER) not in snapshot_of(imaps(alice))
    result = ok_json(govmail("restore", "--mailbox", alice["address"], "--json"))
    assert result["mailboxes"][0]["restored"] == sum(len(m) for m in archive["before"].values())
    after = snapshot_of(imaps(alice))
    assert after == archive["before"]
    assert {flags for _, flags in after[clients.imap_utf7(FOLDER)]} == {frozenset(FLAGGED)}


def test_the_restored_mailbox_gets_its_full_text_index_back_before_anyone_searches(mail_host, archive, alice):
    """Archives leave Dovecot's full-text index out (govmail.backup.SKIPPED_DIRS); the restore
    above queued ``doveadm index`` for the mailbox, so the index catches up with INBOX without a
    search (``doveadm fts flatcurve stats``: ``... last_uid=N messages=N ...``)."""
    user = shlex.quote(alice["address"])

    def caught_up() -> bool:
        status = mail_host.run(f"doveadm mailbox status -u {user} uidnext INBOX")
        stats = mail_host.run(f"doveadm fts flatcurve stats -u {user} INBOX")
        indexed = re.search(r"\blast_uid=(\d+)", stats.stdout)
        return bool(indexed) and int(indexed.group(1)) >= int(status.stdout.split("=")[-1]) - 1

    wait_for(caught_up, timeout=120, what="the restored INBOX to be indexed again")


def test_restore_into_a_folder_leaves_newer_mail_alone_and_twice_adds_nothing(
    smtp, govmail, archive, imaps, alice, bob
):
    newer = make_message(OUTSIDER, alice["address"], "Thư mới hơn", "mới\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(newer) == {}
    client = imaps(alice)
    client.select("INBOX")
    wait_for(lambda: client.search(None, "HEADER", "Message-ID", newer["Message-ID"])[1][0], what="the newer mail")
    inbox_before = snapshot_of(client)["INBOX"]
    result = ok_json(govmail("restore", "--mailbox", alice["address"], "--into-folder", "--json"))
    folder = result["mailboxes"][0]["folder"]
    today = datetime.now(UTC).date()  # the host's day (UTC): today, or yesterday if midnight just passed
    assert folder in {f"Restored/{day.isoformat()}" for day in (today, today - timedelta(days=1))}, folder
    after = snapshot_of(imaps(alice))
    assert after["INBOX"] == inbox_before
    assert after[f"{folder}/INBOX"] == archive["before"]["INBOX"]
    assert after[f"{folder}/{clients.imap_utf7(FOLDER)}"] == archive["before"][clients.imap_utf7(FOLDER)]
    again = ok_json(govmail("restore", "--mailbox", alice["address"], "--into-folder", "--json"))
    if again["mailboxes"][0]["folder"] == folder:  # (past midnight it is a new day's folder, filled anew)
        assert again["mailboxes"][0]["restored"] == 0


def test_backup_that_cannot_reach_the_backup_host_fails_in_the_journal(mail_host, backup_host):
    """On the mail host (mailed through its own Postfix) and on a webmail host of its own, which
    has no Postfix and hands the failure mail to the MX over STARTTLS (govmail.backup.notify_failure)."""
    hosts = [mail_host, *([testinfra.get_host(f"docker://{WEB2_CONTAINER}")] if WEB2_CONTAINER else [])]
    backup_host.run_test("systemctl stop restic-rest-server")
    try:
        for host in hosts:
            result = host.run("systemctl start govmail-backup.service")
            assert result.rc != 0
            assert host.run("systemctl is-failed govmail-backup.service").stdout.strip() == "failed"
            journal = host.run("journalctl -u govmail-backup.service --no-pager -n 20").stdout
            assert "govmail-backup: restic" in journal
        for host in hosts:
            wait_for(
                lambda host=host: "told postmaster@" in host.run(
                    "journalctl -u govmail-backup-failed.service --no-pager -n 5").stdout,
                timeout=30,
                what="the operators' failure mail",
            )  # fmt: skip
    finally:
        backup_host.run_test("systemctl start restic-rest-server")
        for host in hosts:
            host.run("systemctl reset-failed govmail-backup.service")


@pytest.fixture(scope="module")
def web2_host():
    if not WEB2_CONTAINER:
        pytest.skip("the stack has no webmail host of its own (GOVMAIL_WEB2_CONTAINER)")
    return testinfra.get_host(f"docker://{WEB2_CONTAINER}")


def test_a_webmail_host_archives_its_own_logs_and_its_credential_cannot_delete_them(web2_host):
    """A webmail host of its own is a backup client (O2: its logs are in the backup): no mail, no
    directory, its nginx log; its own credential is refused deletion like the mail host's."""
    backed_up = web2_host.run("govmail-backup run --json")
    assert backed_up.rc == 0, backed_up.stderr
    report = json.loads(backed_up.stdout)
    assert (report["mailboxes"], report["messages"]) == (0, 0)
    listed = web2_host.run(f"govmail-backup restic ls {report['archive']} /var/log/nginx")
    assert listed.rc == 0, listed.stderr
    assert "/var/log/nginx/access.log" in listed.stdout.splitlines()
    assert "/var/vmail" not in web2_host.run(f"govmail-backup restic ls {report['archive']}").stdout
    before = [a["archive"] for a in json.loads(web2_host.run("govmail-backup list --json").stdout)]
    refused = web2_host.run(f"govmail-backup restic forget {report['archive']}")
    assert "403 Forbidden" in refused.stderr
    assert [a["archive"] for a in json.loads(web2_host.run("govmail-backup list --json").stdout)] == before


def test_undelete_brings_back_an_expunged_message(govmail, imaps, alice):
    raw = make_message(alice["address"], alice["address"], "Xoá nhầm", "Công văn quan trọng\n").as_bytes()
    client = imaps(alice)
    client.select("INBOX")
    assert client.append("INBOX", r"(\Seen)", None, raw)[0] == "OK"
    message_id = parse_id(raw)
    uid = client.search(None, "HEADER", "Message-ID", message_id)[1][0].split()[-1]
    client.store(uid, "+FLAGS", r"(\Deleted)")
    client.expunge()
    assert not client.search(None, "HEADER", "Message-ID", message_id)[1][0]
    result = ok_json(govmail("mailbox", "undelete", alice["address"], "--since", yesterday(), "--json"))
    assert result["restored"] >= 1
    client.select("INBOX")
    found = client.search(None, "HEADER", "Message-ID", message_id)[1][0].split()
    assert len(found) == 1
    assert client.fetch(found[0], "(BODY.PEEK[])")[1][0][1] == raw


def yesterday() -> str:
    """The day before the controller's UTC day: a ``--since`` that holds whatever side of midnight
    the hosts' clocks (UTC) are on."""
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def parse_id(raw: bytes) -> str:
    return re.search(rb"^Message-ID: (.*?)\r?$", raw, re.M | re.I).group(1).decode()


def test_directory_restore_undoes_a_later_change_keeps_passwords_and_again_changes_nothing(
    govmail, ldaps_server, creds, domain, alice, imaps
):
    import ldap3

    archived = ok_json(govmail("backup", "run", "--json"))["archive"]
    dn = mailbox_dn(domain, alice)
    admin = dict(user=creds["ldap_admin"]["dn"], password=creds["ldap_admin"]["password"], auto_bind=True)
    with ldap3.Connection(ldaps_server, **admin) as conn:
        assert conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["đổi sau khi sao lưu"])]})
    result = ok_json(govmail("restore", "--directory", "--archive", archived, "--json"))
    assert result["directory"]["changed"] is True
    conn = wait_for(lambda: _bound(ldaps_server, admin), timeout=30, what="slapd back after the restore")
    conn.search(dn, "(objectClass=*)", attributes=["description"])
    assert conn.entries[0].entry_attributes_as_dict.get("description", []) == []
    conn.unbind()
    again = ok_json(govmail("restore", "--directory", "--archive", archived, "--json"))
    assert again["directory"]["changed"] is False
    imaps(alice)  # the old password still works (the login then changes authTimestamp: lastbind)


def _bound(server, admin):
    import ldap3

    try:
        return ldap3.Connection(server, **admin)
    except ldap3.core.exceptions.LDAPException:
        return None


def test_restoring_everything_from_the_latest_archive_over_the_same_data_changes_nothing(govmail):
    written = ok_json(govmail("backup", "run", "--json"))
    result = ok_json(govmail("restore", "--all", "--json"))
    assert result["archive"] == written["archive"]
    assert result["directory"]["changed"] is False
    assert len(result["mailboxes"]) == written["mailboxes"]
    assert [m["restored"] for m in result["mailboxes"]] == [0] * written["mailboxes"]
    # the webmail's own database too, where the directory host runs it (the lab)
    runs_it = DATABASE_CONTAINER == MAIL_CONTAINER
    assert [(d["archived"], d["changed"]) for d in result["databases"]] == ([(True, False)] if runs_it else [])
    if not runs_it:  # molecule/default: web2 runs it and restores it from its own archive
        web2 = testinfra.get_host(f"docker://{DATABASE_CONTAINER}")
        assert web2.run("govmail-backup run --json").rc == 0
        own = web2.run("govmail-backup restore --all")
        assert own.rc == 0, own.stderr
        answer = json.loads(own.stdout)
        assert (answer["directory"], answer["mailboxes"]) == (None, [])
        assert [(d["archived"], d["changed"]) for d in answer["databases"]] == [(True, False)]
    # and the filter's learned state, which the archive holds as it is now
    assert (result["filter"]["archived"], result["filter"]["changed"]) == (True, False)


def test_what_users_taught_the_spam_filter_comes_back_after_its_store_is_lost(govmail, imaps, alice, mail_host):
    """Rspamd's Bayes data (what users taught it by moving mail into Junk, C3; Valkey on the mx
    host) is archived: after the store loses it, `restore --all` brings back the exact learned
    counts, and `verify --live` finds the filter's state as archived."""
    taught = teach_spam(imaps(alice), mail_host)
    written = ok_json(govmail("backup", "run", "--json"))
    assert mail_host.run("valkey-cli FLUSHALL").rc == 0  # the store's data lost
    assert learned(mail_host) == {"BAYES_SPAM": 0, "BAYES_HAM": 0}
    result = ok_json(govmail("restore", "--all", "--json"))
    assert result["archive"] == written["archive"]
    assert result["filter"]["archived"] and result["filter"]["changed"] and result["filter"]["keys"] > 0
    assert learned(mail_host) == taught
    verified = mail_host.run("govmail-backup verify --live --json")
    assert verified.rc == 0, verified.stdout[-500:] + verified.stderr
    assert json.loads(verified.stdout)["filter"] == {"keys": result["filter"]["keys"], "ok": True}

"""The webmail's own database in the archives and back on restore (issue 11 "nothing lost", O1).

Roundcube keeps each person's personal address book, identities (signatures) and settings in
its own database, not in the mailbox nor the directory. A single webmail host uses SQLite (Debian's
dbconfig-common file, govmail_webmail_sqlite_dir): its backup client copies it with SQLite's
online backup into the archive (``database/roundcube.sqlite3``) and ``govmail-backup restore
--all|--databases`` puts it back into the same file. With several webmail hosts it is one
PostgreSQL database, dumped on its host and put back with ``pg_restore``: that path is proven
on the restored stack of the drill (test_drill.py, the default scenario has two webmail hosts).

This module needs a stack whose webmail uses SQLite (one webmail host, e.g. a private copy of the
default scenario without govmail-mol-web2) and skips elsewhere, saying so. The personal contact
and the identity are written with Roundcube's own tables (sqlite3 as www-data, as Roundcube
writes them); that they are back is shown in the real webmail (Debian's chromium,
test_webmail_browser's fixtures).
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from conftest import MAIL_CONTAINER, ok_json
from test_webmail_browser import browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

BACKUP_CONFIG = "/etc/govmail/backup.json"
STAGING = "/var/backups/govmail/staging"  # backup_staging_dir, the lab's and Molecule's default


def in_container(container: str, script: str, *args: str) -> subprocess.CompletedProcess:
    """``sh -euc script sh args...`` in ``container`` (arguments stay out of the shell's parsing)."""
    return subprocess.run(["docker", "exec", container, "sh", "-euc", script, "sh", *args], capture_output=True,
                          text=True, check=False, timeout=600)  # fmt: skip


def webmail_database(container: str) -> dict | None:
    """Where ``container``'s backup client finds the webmail's database, from its backup.json.

    ``{"type": "sqlite3", "name": N, "path": P}``, ``{"type": "pgsql", "name": N}`` or None (this
    host does not run it).
    """
    read = in_container(container, f"cat {BACKUP_CONFIG}")
    assert read.returncode == 0, read.stderr
    config = json.loads(read.stdout)
    for name, path in (config.get("sqlite_databases") or {}).items():
        return {"type": "sqlite3", "name": name, "path": path}
    for name in config.get("postgresql_databases") or []:
        return {"type": "pgsql", "name": name}
    return None


def sql(container: str, database: dict, statement: str, *, path: str | None = None) -> list[list[str]]:
    """Rows of ``statement`` run in Roundcube's database on ``container``, every value as text.

    SQLite: ``sqlite3`` as www-data on ``path`` (default the live file), as Roundcube writes it;
    PostgreSQL: ``psql`` as the postgres role over the local socket (root maps to it).
    """
    if database["type"] == "sqlite3":
        done = in_container(container, 'runuser -u www-data -- sqlite3 -bail -separator "|" "$1" "$2"',
                            path or database["path"], statement)  # fmt: skip
    else:
        done = in_container(container, 'psql --username=postgres --no-psqlrc -v ON_ERROR_STOP=1 -At -F "|" '
                            '--dbname="$1" --command="$2"', database["name"], statement)  # fmt: skip
    assert done.returncode == 0, f"{statement}: {done.stderr}"
    return [line.split("|") for line in done.stdout.splitlines() if line and not re.match(r"^(INSERT|DELETE) ", line)]


def write_contact_and_identity(container: str, database: dict, username: str, tag: str) -> dict:
    """A personal contact and an identity with a signature, both carrying ``tag``, for Roundcube user ``username``.

    The user row is created when missing (``mail_host`` "govmail-test": a user no login reaches).
    Returns ``{"contact": NAME, "email": E, "signature": S}``.
    """
    row = {"contact": f"Nguyễn Thị Lưu {tag}", "email": f"luu-{tag}@example.vn", "signature": f"Trân trọng, {tag}"}
    sql(container, database, f"INSERT INTO users (username, mail_host, created) SELECT '{username}', 'govmail-test', "
        f"CURRENT_TIMESTAMP WHERE NOT EXISTS (SELECT 1 FROM users WHERE username = '{username}')")  # fmt: skip
    user = f"(SELECT min(user_id) FROM users WHERE username = '{username}')"
    sql(container, database, f"INSERT INTO contacts (user_id, changed, name, email, words) VALUES ({user}, "
        f"CURRENT_TIMESTAMP, '{row['contact']}', '{row['email']}', '{row['email']}')")  # fmt: skip
    sql(container, database, f"INSERT INTO identities (user_id, changed, name, email, signature) VALUES ({user}, "
        f"CURRENT_TIMESTAMP, 'Lưu {tag}', '{row['email']}', '{row['signature']}')")  # fmt: skip
    return row


def rows_of(container: str, database: dict, tag: str, *, path: str | None = None) -> tuple[list, list]:
    """(contacts, identities) rows carrying ``tag``: ``[[name, email]]``, ``[[email, signature]]``."""
    contacts = sql(container, database, f"SELECT name, email FROM contacts WHERE email LIKE '%{tag}%' AND del = 0",
                   path=path)  # fmt: skip
    identities = sql(container, database, f"SELECT email, signature FROM identities WHERE email LIKE '%{tag}%' "
                     "AND del = 0", path=path)  # fmt: skip
    return contacts, identities


@pytest.fixture(scope="module")
def sqlite_webmail():
    database = webmail_database(MAIL_CONTAINER)
    if database is None or database["type"] != "sqlite3":
        pytest.skip(
            f"the webmail's database on {MAIL_CONTAINER} is not SQLite ({database and database['type']}: several "
            "webmail hosts); test_drill.py proves the PostgreSQL one"
        )
    return database


def test_a_personal_contact_and_a_signature_are_archived_and_come_back_in_the_webmail(
    sqlite_webmail,
    person,  # noqa: F811 (test_webmail_browser's fixture)
    alice,
    mail_host,
    govmail,
):
    database, tag = sqlite_webmail, uuid.uuid4().hex[:8]
    me = person(alice)
    me.log_in()  # the first login makes alice's Roundcube user (as on a real site)
    row = write_contact_and_identity(MAIL_CONTAINER, database, alice["address"], tag)
    wanted = ([[row["contact"], row["email"]]], [[row["email"], row["signature"]]])
    live = mail_host.file(database["path"])
    owner = (live.user, live.group, live.mode)
    archive = ok_json(govmail("backup", "run", "--json"))["archive"]

    # the archive holds the rows: restic dump of the staged copy, read with sqlite3
    copy = f"/tmp/govmail-test-{tag}.sqlite3"
    dumped = in_container(MAIL_CONTAINER, 'govmail-backup restic dump "$1" "$2" > "$3" && chmod 644 "$3"', archive,
                          f"{STAGING}/database/{database['name']}.sqlite3", copy)  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr
    try:
        assert rows_of(MAIL_CONTAINER, database, tag, path=copy) == wanted
    finally:
        in_container(MAIL_CONTAINER, 'rm -f "$1"', copy)

    # lost on the host (a person deleted them, or a new host)...
    sql(MAIL_CONTAINER, database, f"DELETE FROM contacts WHERE email LIKE '%{tag}%'")
    sql(MAIL_CONTAINER, database, f"DELETE FROM identities WHERE email LIKE '%{tag}%'")
    assert rows_of(MAIL_CONTAINER, database, tag) == ([], [])
    # ... and back from the archive, into the same file (owner and mode as dbconfig-common made it)
    restored = mail_host.run(f"govmail-backup restore --archive {archive} --databases")
    assert restored.rc == 0, restored.stderr
    assert json.loads(restored.stdout)["databases"] == [
        {"name": database["name"], "type": "sqlite3", "archived": True, "changed": True}
    ]
    assert rows_of(MAIL_CONTAINER, database, tag) == wanted
    live = mail_host.file(database["path"])
    assert (live.user, live.group, live.mode) == owner == ("www-data", "www-data", 0o660)
    again = mail_host.run(f"govmail-backup restore --archive {archive} --databases")
    assert again.rc == 0 and json.loads(again.stdout)["databases"][0]["changed"] is False, again.stdout + again.stderr

    # shown to alice in the webmail: her personal address book and her identities
    page = me.page
    with me.step("personal-address-book"):
        page.goto(f"{me.url}?_task=addressbook&_source=0")
        page.wait_for_selector("#contacts-table tbody tr td.name")
        page.locator("#contacts-table tbody tr td.name", has_text=row["contact"]).wait_for()
    with me.step("identities"):
        page.goto(f"{me.url}?_task=settings&_action=identities")
        page.locator("#identities-table tbody tr", has_text=row["email"]).wait_for()

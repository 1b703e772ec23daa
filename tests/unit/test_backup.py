"""The backup agent's staging, manifest and mailbox restore on a Maildir tree in a temporary directory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import stat
import tarfile

import pytest

from govmail import backup
from govmail.backup import BackupError


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def vmail(tmp_path):
    """Two mailboxes: INBOX with a seen and a new message, a Vietnamese folder, a Sieve script."""
    root = tmp_path / "vmail"
    home = root / "quangtri.gov.vn" / "alice"
    write(home / "Maildir/cur/1.M1.h,S=5:2,S", b"one\r\n")
    write(home / "Maildir/new/2.M2.h,S=5", b"two\r\n")
    write(home / "Maildir/B&AOE-o c&AOE-o/cur/3.M3.h,S=7:2,FS", b"three\r\n")
    write(home / "Maildir/B&AOE-o c&AOE-o/maildirfolder", b"")
    (home / "Maildir/B&AOE-o c&AOE-o/new").mkdir()
    (home / "Maildir/tmp").mkdir()
    write(home / "Maildir/tmp/9.M9.h", b"half a delivery")
    write(home / "Maildir/dovecot.index.log", b"cache")
    write(home / "Maildir/fts-flatcurve/index.1/docdata.glass", b"xapian")
    write(home / "Maildir/B&AOE-o c&AOE-o/fts-flatcurve/current.2/postlist.glass", b"xapian")
    write(home / "Maildir/dovecot-uidlist", b"3 V1 N4\n")
    write(home / "sieve/main.sieve", b"keep;\n")
    (home / ".dovecot.sieve").symlink_to("sieve/main.sieve")
    write(root / "quangtri.gov.vn/bob/Maildir/cur/4.M4.h:2,", b"four\r\n")
    return root


def test_modified_utf7_folder_names_are_decoded():
    assert backup.decode_mutf7("B&AOE-o c&AOE-o 2025.1") == "Báo cáo 2025.1"
    assert backup.decode_mutf7("A&-B") == "A&B"
    with pytest.raises(BackupError, match="modified UTF-7"):
        backup.decode_mutf7("bad&name")


def test_staging_links_messages_and_leaves_out_indexes_full_text_indexes_and_deliveries_in_progress(vmail, tmp_path):
    staged = tmp_path / "staging"
    backup.stage_mailboxes(vmail, staged)
    home = staged / "quangtri.gov.vn" / "alice"
    original = vmail / "quangtri.gov.vn/alice/Maildir/cur/1.M1.h,S=5:2,S"
    assert os.path.samefile(home / "Maildir/cur/1.M1.h,S=5:2,S", original)
    assert not (home / "Maildir/dovecot.index.log").exists()
    assert not (home / "Maildir/fts-flatcurve").exists()
    assert not (home / "Maildir/B&AOE-o c&AOE-o/fts-flatcurve").exists()
    assert (home / "Maildir/tmp").is_dir() and not list((home / "Maildir/tmp").iterdir())
    assert (home / "Maildir/dovecot-uidlist").read_bytes() == b"3 V1 N4\n"
    assert os.readlink(home / ".dovecot.sieve") == "sieve/main.sieve"


def test_manifest_counts_and_digests_every_mailbox_and_folder(vmail, tmp_path):
    staged = tmp_path / "staging"
    backup.stage_mailboxes(vmail, staged / "vmail")
    write(staged / "directory/data.ldif", b"dn: dc=a\ndc: a\n\n# comment\ndn: uid=x,dc=a\nuid: x\n\n")
    manifest = backup.build_manifest(staged, host="mail1")
    alice = manifest["mailboxes"]["alice@quangtri.gov.vn"]
    assert manifest["totals"] == {"mailboxes": 2, "messages": 4}
    assert sorted(alice["folders"]) == ["Báo cáo", "INBOX"]
    assert alice["folders"]["INBOX"]["messages"] == 2
    assert alice["folders"]["Báo cáo"]["files"]["3.M3.h,S=7"]["flags"] == "FS"
    assert manifest["directory"]["entries"] == 2


def test_a_digest_changes_when_one_message_byte_changes_and_not_with_flags(vmail, tmp_path):
    home = vmail / "quangtri.gov.vn" / "alice"
    before = backup.mailbox_manifest(home)
    (home / "Maildir/cur/1.M1.h,S=5:2,S").rename(home / "Maildir/cur/1.M1.h,S=5:2,RS")
    assert backup.mailbox_manifest(home)["digest"] == before["digest"]
    write(home / "Maildir/new/2.M2.h,S=5", b"tw0\r\n")
    after = backup.mailbox_manifest(home)
    assert after["digest"] != before["digest"]
    assert after["folders"]["INBOX"]["digest"] != before["folders"]["INBOX"]["digest"]
    assert after["folders"]["Báo cáo"]["digest"] == before["folders"]["Báo cáo"]["digest"]


def test_restore_into_place_brings_back_missing_messages_only_and_twice_changes_nothing(vmail, tmp_path):
    source = vmail / "quangtri.gov.vn" / "alice"
    target = tmp_path / "new" / "alice"
    write(target / "Maildir/cur/1.M1.h,S=5:2,RS", b"one\r\n")  # still there, flags changed since
    write(target / "Maildir/new/5.M5.h,S=5", b"newer")
    owner = (os.getuid(), os.getgid())
    assert backup.restore_mailbox_tree(source, target / "Maildir", owner) == 2
    assert (target / "Maildir/new/2.M2.h,S=5").read_bytes() == b"two\r\n"
    assert (target / "Maildir/B&AOE-o c&AOE-o/cur/3.M3.h,S=7:2,FS").read_bytes() == b"three\r\n"
    assert (target / "Maildir/new/5.M5.h,S=5").exists()
    assert not (target / "Maildir/cur/1.M1.h,S=5:2,S").exists()
    assert os.readlink(target / ".dovecot.sieve") == "sieve/main.sieve"
    assert backup.restore_mailbox_tree(source, target / "Maildir", owner) == 0


def test_restore_into_a_folder_puts_inbox_and_folders_below_it(vmail, tmp_path):
    source = vmail / "quangtri.gov.vn" / "alice"
    target = tmp_path / "alice" / "Maildir"
    owner = (os.getuid(), os.getgid())
    assert backup.restore_mailbox_tree(source, target, owner, into="Restored/2026-11-29") == 3
    assert (target / "Restored/2026-11-29/INBOX/cur/1.M1.h,S=5:2,S").read_bytes() == b"one\r\n"
    assert (target / "Restored/2026-11-29/B&AOE-o c&AOE-o/cur/3.M3.h,S=7:2,FS").exists()
    assert (target / "Restored/2026-11-29/INBOX/maildirfolder").exists()
    assert not (target / "dovecot-uidlist").exists()


def test_a_configuration_without_a_key_is_named(tmp_path):
    path = tmp_path / "backup.json"
    path.write_text('{"host": "mail1"}')
    with pytest.raises(BackupError, match="lacks repository"):
        backup.Config.load(str(path))


def test_the_database_directory_is_read_from_the_archived_cn_config():
    config = (
        "dn: olcDatabase={0}config,cn=config\nolcDatabase: {0}config\n\n"
        "dn: olcDatabase={1}mdb,cn=config\nolcDatabase: {1}mdb\nolcDbDirectory: /var/lib/ldap\n"
        "olcSuffix: dc=quangtri,dc=gov,dc=vn\n\n"
    )
    assert backup._database_directory(config, "DC=quangtri,dc=gov,dc=vn") == "/var/lib/ldap"
    with pytest.raises(BackupError, match="no database for dc=other"):
        backup._database_directory(config, "dc=other")


def test_the_directory_digest_ignores_login_times_but_not_content(tmp_path):
    entry = "dn: uid=x,dc=a\nuid: x\ndescription: một\nauthTimestamp: 20261129000000Z\nentryCSN: 1#000\n\n"
    first = write(tmp_path / "a.ldif", entry.encode())
    later = write(tmp_path / "b.ldif", entry.replace("20261129", "20261130").replace("1#000", "2#000").encode())
    changed = write(tmp_path / "c.ldif", entry.replace("một", "hai").encode())
    digest = backup.directory_manifest(first)["digest"]
    assert backup.directory_manifest(later)["digest"] == digest
    assert backup.directory_manifest(changed)["digest"] != digest


# --- verification: the drill's proof ----------------------------------------------------------


def _mailboxes(root):
    return {
        f"{home.name}@{home.parent.name}": backup.mailbox_manifest(home)
        for home in sorted(root.glob("*/*"))
        if (home / "Maildir").is_dir()
    }


DIRECTORY = {"entries": 3, "digest": "d" * 64}


def test_an_identical_copy_has_no_mismatch(vmail):
    manifest = {"mailboxes": _mailboxes(vmail), "directory": DIRECTORY}
    report = backup.compare(manifest, _mailboxes(vmail), DIRECTORY)
    assert report["mismatches"] == []
    assert report["mailboxes"] == [
        {"address": "alice@quangtri.gov.vn", "messages": 3, "ok": True},
        {"address": "bob@quangtri.gov.vn", "messages": 1, "ok": True},
    ]
    assert report["directory"] == {"entries": 3, "ok": True}


def test_an_altered_message_is_named_with_its_mailbox_and_folder_and_flags_do_not_count(vmail):
    manifest = {"mailboxes": _mailboxes(vmail), "directory": DIRECTORY}
    folder = vmail / "quangtri.gov.vn/alice/Maildir/B&AOE-o c&AOE-o/cur"
    (folder / "3.M3.h,S=7:2,FS").write_bytes(b"threE\r\n")
    (vmail / "quangtri.gov.vn/bob/Maildir/cur/4.M4.h:2,").rename(vmail / "quangtri.gov.vn/bob/Maildir/cur/4.M4.h:2,S")
    report = backup.compare(manifest, _mailboxes(vmail), DIRECTORY)
    assert len(report["mismatches"]) == 1
    assert report["mismatches"][0].startswith(
        "alice@quangtri.gov.vn: folder 'Báo cáo': message 3.M3.h,S=7 altered (sha256 "
    )
    assert [row["ok"] for row in report["mailboxes"]] == [False, True]


def test_a_removed_message_a_lost_mailbox_and_another_directory_are_named(vmail):
    manifest = {"mailboxes": _mailboxes(vmail), "directory": DIRECTORY}
    (vmail / "quangtri.gov.vn/alice/Maildir/new/2.M2.h,S=5").unlink()
    copy = _mailboxes(vmail)
    del copy["bob@quangtri.gov.vn"]
    report = backup.compare(manifest, copy, {"entries": 2, "digest": "e" * 64})
    assert report["mismatches"] == [
        "alice@quangtri.gov.vn: folder 'INBOX': message 2.M2.h,S=5 missing",
        "bob@quangtri.gov.vn: mailbox missing (1 messages in the manifest)",
        "directory: 2 entries, digest eeeeeeeeeeee... here, the manifest says 3 entries, digest dddddddddddd...",
    ]
    assert report["directory"] == {"entries": 3, "ok": False}


def _tar_of(root, prefix: str, *, link_bob_to_alice: bool = False) -> io.BytesIO:
    """A tar stream of ``root`` as ``restic dump`` writes one (directories, then their files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(root, arcname=prefix)
        if link_bob_to_alice:
            link = tarfile.TarInfo(f"{prefix}/quangtri.gov.vn/bob/Maildir/cur/6.M6.h,S=5:2,S")
            link.type = tarfile.LNKTYPE
            link.linkname = f"{prefix}/quangtri.gov.vn/alice/Maildir/cur/1.M1.h,S=5:2,S"
            archive.addfile(link)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("prefix", ["/var/backups/govmail-staging/vmail", "vmail"])
def test_a_tar_stream_of_the_mail_gives_the_manifest_of_the_tree_it_came_from(vmail, tmp_path, prefix):
    staged = tmp_path / "staging"
    backup.stage_mailboxes(vmail, staged)
    streamed = backup.tar_mailboxes(_tar_of(staged, prefix))
    assert streamed == _mailboxes(staged)
    assert sorted(streamed["alice@quangtri.gov.vn"]["folders"]) == ["Báo cáo", "INBOX"]


def test_a_hard_link_in_the_stream_counts_with_its_targets_bytes(vmail, tmp_path):
    streamed = backup.tar_mailboxes(_tar_of(vmail, "vmail", link_bob_to_alice=True))
    bob = streamed["bob@quangtri.gov.vn"]["folders"]["INBOX"]["files"]
    assert bob["6.M6.h,S=5"] == {"sha256": hashlib.sha256(b"one\r\n").hexdigest(), "flags": "S"}


def test_an_altered_message_in_the_stream_is_named_against_the_manifest(vmail):
    manifest = {"mailboxes": _mailboxes(vmail), "directory": DIRECTORY}
    write(vmail / "quangtri.gov.vn/alice/Maildir/B&AOE-o c&AOE-o/cur/3.M3.h,S=7:2,FS", b"thre3\r\n")
    report = backup.compare(manifest, backup.tar_mailboxes(_tar_of(vmail, "vmail")), DIRECTORY)
    assert [line.split(" (")[0] for line in report["mismatches"]] == [
        "alice@quangtri.gov.vn: folder 'Báo cáo': message 3.M3.h,S=7 altered"
    ]


def test_a_stream_that_is_not_a_tar_is_refused_in_one_line():
    with pytest.raises(BackupError, match="not a readable tar stream"):
        backup.tar_mailboxes(io.BytesIO(b"restic: repository not found\n" * 40))


def test_a_message_the_manifest_does_not_know_is_named(vmail):
    manifest = {"mailboxes": _mailboxes(vmail), "directory": DIRECTORY}
    write(vmail / "quangtri.gov.vn/bob/Maildir/new/5.M5.h,S=4", b"new\r\n")
    assert backup.compare(manifest, _mailboxes(vmail), DIRECTORY)["mismatches"] == [
        "bob@quangtri.gov.vn: folder 'INBOX': message 5.M5.h,S=4 not in the manifest"
    ]


def test_merge_missing_puts_back_only_what_the_host_lacks(tmp_path):
    source, target = tmp_path / "archive", tmp_path / "host"
    (source / "2026" / "11").mkdir(parents=True)
    (source / "2026" / "11" / "2026-11-28.json.gz").write_bytes(b"archived 28")
    (source / "2026" / "11" / "2026-11-29.json.gz").write_bytes(b"archived 29")
    (source / "old.tar.gz").write_bytes(b"deleted mailbox")
    os.utime(source / "old.tar.gz", (1_700_000_000, 1_700_000_000))
    (target / "2026" / "11").mkdir(parents=True)
    (target / "2026" / "11" / "2026-11-29.json.gz").write_bytes(b"written since")
    assert backup.merge_missing(source, target) == 2
    assert (target / "2026" / "11" / "2026-11-28.json.gz").read_bytes() == b"archived 28"
    assert (target / "2026" / "11" / "2026-11-29.json.gz").read_bytes() == b"written since"  # newer data wins
    assert (target / "old.tar.gz").read_bytes() == b"deleted mailbox"
    assert (target / "old.tar.gz").stat().st_mtime == 1_700_000_000
    assert backup.merge_missing(source, target) == 0  # a second restore changes nothing


def test_the_staging_mirror_follows_the_mailboxes_and_leaves_unchanged_messages_alone(vmail, tmp_path):
    staged = tmp_path / "staging"
    backup.stage_mailboxes(vmail, staged)
    cur = vmail / "quangtri.gov.vn/alice/Maildir/cur"
    kept = staged / "quangtri.gov.vn/bob/Maildir/cur/4.M4.h:2,"
    before = kept.stat().st_ctime_ns
    (cur / "1.M1.h,S=5:2,S").rename(cur / "1.M1.h,S=5:2,RS")  # a flag changed
    (vmail / "quangtri.gov.vn/alice/Maildir/new/2.M2.h,S=5").unlink()  # expunged
    write(cur / "6.M6.h,S=3:2,", b"six")  # arrived
    assert backup.stage_mailboxes(vmail, staged) == 2
    mirror = staged / "quangtri.gov.vn/alice/Maildir"
    assert sorted(p.name for p in (mirror / "cur").iterdir()) == ["1.M1.h,S=5:2,RS", "6.M6.h,S=3:2,"]
    assert not list((mirror / "new").iterdir())
    assert kept.stat().st_ctime_ns == before
    assert backup.stage_mailboxes(vmail, staged) == 0


def test_digests_are_reused_only_for_the_same_inode_size_and_times(vmail, tmp_path):
    home = vmail / "quangtri.gov.vn" / "alice"
    first = backup.DigestCache()
    manifest = backup.mailbox_manifest(home, first)
    again = backup.DigestCache(first.seen)
    assert backup.mailbox_manifest(home, again) == manifest
    assert (again.hits, again.reads) == (3, 0)
    write(home / "Maildir/new/2.M2.h,S=5", b"tw0\r\n")  # rewritten in place: new ctime
    third = backup.DigestCache(again.seen)
    assert backup.mailbox_manifest(home, third)["digest"] != manifest["digest"]
    assert (third.hits, third.reads) == (2, 1)


def _fake_pg_dump(tmp_path, monkeypatch, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "pg_dump"
    program.write_text("#!/bin/sh\n" + script)
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_each_webmail_database_is_dumped_in_custom_format_as_postgres(tmp_path, monkeypatch):
    # the fake pg_dump records its arguments in the file it is told to write
    _fake_pg_dump(
        tmp_path, monkeypatch, 'for a; do case "$a" in --file=*) f="${a#--file=}";; esac; done\necho "$@" > "$f"\n'
    )
    written = backup.dump_databases(["roundcube"], tmp_path / "database")
    assert written == [tmp_path / "database" / "roundcube.pgdump"]
    assert written[0].read_text().split() == [
        "--username=postgres", "--no-password", "--format=custom", f"--file={written[0]}", "roundcube",
    ]  # fmt: skip


def test_a_failed_dump_names_the_database_and_pg_dump_s_words(tmp_path, monkeypatch):
    _fake_pg_dump(
        tmp_path,
        monkeypatch,
        "echo 'pg_dump: error: connection to server failed: FATAL:  role \"root\" does not exist' >&2\nexit 1\n",
    )
    with pytest.raises(
        backup.BackupError, match=r'^pg_dump roundcube failed: pg_dump: error: .*role "root" does not exist$'
    ):
        backup.dump_databases(["roundcube"], tmp_path / "database")


def test_a_message_larger_than_one_read_has_the_sha256_of_all_its_bytes(tmp_path):
    data = os.urandom(200_000)  # four reads of 64 KiB
    message = write(tmp_path / "cur/5.M5.h,S=200000:2,", data)
    assert backup._file_sha256(message) == hashlib.sha256(data).hexdigest()
    assert backup._file_sha256(str(message)) == hashlib.sha256(data).hexdigest()


def test_the_digest_cache_survives_its_file_and_a_cache_of_the_first_format_is_still_used(vmail, tmp_path, monkeypatch):
    monkeypatch.setattr(backup, "CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backup, "DIGEST_CACHE", str(tmp_path / "cache/manifest-digests.json"))
    config = {"repository": "rest:https://backup1:8000/mail1/"}
    home = vmail / "quangtri.gov.vn" / "alice"
    first = backup.DigestCache()
    manifest = backup.mailbox_manifest(home, first)
    backup._save_digests(config, "abc123", first)
    saved = json.loads((tmp_path / "cache/manifest-digests.json").read_text())
    assert saved["version"] == 2 and saved["snapshot"] == "abc123"
    assert stat.S_IMODE((tmp_path / "cache/manifest-digests.json").stat().st_mode) == 0o600
    parent, again = backup._load_digests(config)
    assert parent == "abc123"
    assert backup.mailbox_manifest(home, again) == manifest
    assert (again.hits, again.reads) == (3, 0)
    # version 1 (lists per file), as hosts backed up before this format still have it
    saved["files"] = {d: {n: [*map(int, v.split()[:4]), v.split()[4]] for n, v in names.items()}
                      for d, names in saved["files"].items()}  # fmt: skip
    del saved["version"]
    (tmp_path / "cache/manifest-digests.json").write_text(json.dumps(saved))
    parent, old = backup._load_digests(config)
    assert parent == "abc123"
    assert backup.mailbox_manifest(home, old) == manifest
    assert (old.hits, old.reads) == (3, 0)
    # another repository's cache, or a damaged one, is not used
    assert backup._load_digests({"repository": "rest:https://elsewhere/"})[0] is None
    (tmp_path / "cache/manifest-digests.json").write_text('{"repository": "x", "snapshot": "y", "files": {"d": [1]}}')
    assert backup._load_digests({"repository": "x"})[0] is None


def test_a_cached_digest_is_not_taken_when_one_time_differs_by_a_digit(vmail):
    home = vmail / "quangtri.gov.vn" / "alice"
    first = backup.DigestCache()
    manifest = backup.mailbox_manifest(home, first)
    directory = str(home / "Maildir/cur")
    inode, size, mtime, ctime, digest = first.seen[directory]["1.M1.h,S=5:2,S"].split()
    tampered = {d: dict(names) for d, names in first.seen.items()}
    tampered[directory]["1.M1.h,S=5:2,S"] = f"{inode} {size} {mtime} {ctime}1 {digest}"
    again = backup.DigestCache(tampered)
    assert backup.mailbox_manifest(home, again) == manifest
    assert (again.hits, again.reads) == (2, 1)


def test_staging_follows_a_symlink_that_changes_and_a_folder_that_appears(vmail, tmp_path):
    staged = tmp_path / "staging"
    backup.stage_mailboxes(vmail, staged)
    home = vmail / "quangtri.gov.vn" / "alice"
    (home / ".dovecot.sieve").unlink()
    (home / ".dovecot.sieve").symlink_to("sieve/other.sieve")
    write(home / "Maildir/Sent/cur/7.M7.h,S=5:2,S", b"sent\n")
    (home / "Maildir/Sent/new").mkdir()
    assert backup.stage_mailboxes(vmail, staged) == 2
    mirror = staged / "quangtri.gov.vn/alice"
    assert os.readlink(mirror / ".dovecot.sieve") == "sieve/other.sieve"
    assert os.path.samefile(mirror / "Maildir/Sent/cur/7.M7.h,S=5:2,S", home / "Maildir/Sent/cur/7.M7.h,S=5:2,S")
    assert (mirror / "Maildir/Sent/new").is_dir()


def test_a_message_renamed_or_expunged_between_listing_and_linking_is_staged_under_its_new_name_or_not_at_all(
    vmail, tmp_path
):
    cur = vmail / "quangtri.gov.vn/alice/Maildir/cur"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (listed,) = [entry for entry in os.scandir(cur) if entry.name == "1.M1.h,S=5:2,S"]
    (cur / "1.M1.h,S=5:2,S").rename(cur / "1.M1.h,S=5:2,RS")  # a flag changed after the listing
    assert backup._link_message(str(cur), str(mirror), listed) == 1
    assert [p.name for p in mirror.iterdir()] == ["1.M1.h,S=5:2,RS"]
    assert os.path.samefile(mirror / "1.M1.h,S=5:2,RS", cur / "1.M1.h,S=5:2,RS")
    (gone,) = [entry for entry in os.scandir(cur) if entry.name == "1.M1.h,S=5:2,RS"]
    (cur / "1.M1.h,S=5:2,RS").unlink()  # expunged after the listing
    (mirror / "1.M1.h,S=5:2,RS").unlink()
    assert backup._link_message(str(cur), str(mirror), gone) == 0
    assert not list(mirror.iterdir())


# --- the webmail's SQLite database (single webmail host) -------------------------------------------

ROUNDCUBE_TABLES = """
CREATE TABLE users (user_id integer PRIMARY KEY, username varchar(128) NOT NULL, mail_host varchar(128) NOT NULL);
CREATE TABLE contacts (contact_id integer PRIMARY KEY, name varchar(128) NOT NULL DEFAULT '',
                       email text NOT NULL DEFAULT '', user_id integer NOT NULL);
CREATE TABLE identities (identity_id integer PRIMARY KEY, user_id integer NOT NULL, email varchar(128) NOT NULL,
                         signature text);
INSERT INTO users VALUES (1, 'alice@quangtri.gov.vn', 'mail1');
INSERT INTO contacts VALUES (1, 'Nguyễn Văn Long', 'long@example.vn', 1);
INSERT INTO identities VALUES (1, 1, 'alice@quangtri.gov.vn', 'Trân trọng, Alice');
"""


@pytest.fixture
def roundcube_db(tmp_path):
    """A Roundcube-like SQLite file (a personal contact, a signature), mode 0660 as dbconfig-common makes it."""
    path = tmp_path / "live" / "roundcube"
    path.parent.mkdir()
    with sqlite3.connect(path) as connection:
        connection.executescript(ROUNDCUBE_TABLES)
    connection.close()
    path.chmod(0o660)
    return path


def rows(path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def test_the_sqlite_copy_is_taken_while_a_writer_holds_an_open_transaction(roundcube_db, tmp_path):
    # Roundcube in the middle of a write: the copy holds the last committed state, not the half
    writer = sqlite3.connect(roundcube_db, isolation_level=None)
    writer.execute("BEGIN")
    writer.execute("INSERT INTO contacts VALUES (2, 'uncommitted', 'x@example.vn', 1)")
    try:
        written = backup.stage_sqlite({"roundcube": str(roundcube_db)}, tmp_path / "database")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert written == [tmp_path / "database" / "roundcube.sqlite3"]
    assert rows(written[0], "SELECT name, email FROM contacts") == [("Nguyễn Văn Long", "long@example.vn")]
    assert rows(written[0], "SELECT signature FROM identities") == [("Trân trọng, Alice",)]
    assert rows(written[0], "PRAGMA integrity_check") == [("ok",)]


def test_a_missing_sqlite_database_is_named(tmp_path):
    with pytest.raises(BackupError, match=r"^the SQLite database roundcube is not at /nowhere/roundcube: converge"):
        backup.stage_sqlite({"roundcube": "/nowhere/roundcube"}, tmp_path / "database")


def test_the_sqlite_restore_puts_the_rows_back_into_the_same_file_and_a_second_changes_nothing(roundcube_db, tmp_path):
    archived = backup.stage_sqlite({"roundcube": str(roundcube_db)}, tmp_path / "database")[0]
    with contextlib.closing(sqlite3.connect(roundcube_db)) as connection, connection:
        connection.execute("DELETE FROM contacts")
        connection.execute("UPDATE identities SET signature = 'changed'")
    before = roundcube_db.stat()
    assert backup.restore_sqlite(archived, roundcube_db) is True
    assert rows(roundcube_db, "SELECT name, email FROM contacts") == [("Nguyễn Văn Long", "long@example.vn")]
    assert rows(roundcube_db, "SELECT signature FROM identities") == [("Trân trọng, Alice",)]
    after = roundcube_db.stat()  # the same file: its inode, owner and mode (dbconfig-common's www-data 0660)
    assert (after.st_ino, after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_ino, before.st_uid, before.st_gid, 0o660,
    )  # fmt: skip
    mtime = after.st_mtime_ns
    assert backup.restore_sqlite(archived, roundcube_db) is False
    assert roundcube_db.stat().st_mtime_ns == mtime


def test_a_restore_onto_a_host_without_the_webmail_database_says_what_to_converge(roundcube_db, tmp_path):
    archived = backup.stage_sqlite({"roundcube": str(roundcube_db)}, tmp_path / "database")[0]
    with pytest.raises(BackupError, match=r"^the SQLite database .*/absent is missing: converge the webmail role"):
        backup.restore_sqlite(archived, tmp_path / "absent")


def test_pg_dump_s_random_restrict_key_is_not_a_difference():
    one = "\\restrict AbC\nCREATE TABLE users ();\n\\unrestrict AbC\n"
    two = "\\restrict XyZ\nCREATE TABLE users ();\n\\unrestrict XyZ\n"
    assert backup._plain_sql(one) == backup._plain_sql(two) == "CREATE TABLE users ();"
    assert backup._plain_sql(one) != backup._plain_sql(one.replace("users", "contacts"))


def test_roundcube_s_sessions_and_caches_are_not_a_difference_its_own_garbage_collection_would_make():
    users = "COPY public.users (user_id) FROM stdin;\n1\n\\.\n"
    dump = "CREATE TABLE users ();\nCOPY public.session (sess_id, vars) FROM stdin;\nabc\tx\n\\.\n\n" + users
    collected = "CREATE TABLE users ();\nCOPY public.session (sess_id, vars) FROM stdin;\n\\.\n\n" + users
    assert backup._plain_sql(dump) == backup._plain_sql(collected)
    assert "1" in backup._plain_sql(dump).splitlines()  # a persistent table's rows count
    assert backup._plain_sql(dump) != backup._plain_sql(collected.replace("\n1\n", "\n2\n"))


def test_a_sqlite_restore_does_not_count_sessions_the_garbage_collection_removed(roundcube_db, tmp_path):
    with contextlib.closing(sqlite3.connect(roundcube_db)) as connection, connection:
        connection.execute("CREATE TABLE session (sess_id varchar(128) PRIMARY KEY, vars text)")
        connection.execute("INSERT INTO session VALUES ('old', 'x')")
    archived = backup.stage_sqlite({"roundcube": str(roundcube_db)}, tmp_path / "database")[0]
    with contextlib.closing(sqlite3.connect(roundcube_db)) as connection, connection:
        connection.execute("DELETE FROM session")  # roundcube-gc.timer
    assert backup.restore_sqlite(archived, roundcube_db) is False
    with contextlib.closing(sqlite3.connect(roundcube_db)) as connection, connection:
        connection.execute("DELETE FROM contacts")
    assert backup.restore_sqlite(archived, roundcube_db) is True
    assert rows(roundcube_db, "SELECT sess_id FROM session") == [("old",)]


CONFIG = {
    "host": "mail1", "domain": "quangtri.gov.vn", "repository": "rest:https://backup1:8000/mail1/",
    "username": "mail1", "password_file": "/etc/govmail/backup-client.password",
    "repository_password_file": "/etc/govmail/backup-repository.password",
    "ca_certificate": "/etc/ssl/govmail/ca.crt", "vmail_dir": "/var/vmail", "base_dn": "dc=quangtri,dc=gov,dc=vn",
    "staging_dir": "/var/backups/govmail/staging", "paths": ["/etc", "/var/log"],
    "operators": "postmaster@quangtri.gov.vn",
}  # fmt: skip

ARCHIVES = [
    {"archive": "aaaa1111", "time": "2026-11-30T01:41:02.123456789Z", "mailboxes": 3, "messages": 9},
    {"archive": "bbbb2222", "time": "2026-12-01T01:33:40.5Z", "mailboxes": 3, "messages": 9},
    {"archive": "cccc3333", "time": "2026-12-01T09:00:00Z", "mailboxes": 3, "messages": 9},
]


@pytest.mark.parametrize(
    ("archive", "expected"),
    [("latest", "cccc3333"), ("bbbb", "bbbb2222"), ("near:2026-12-01T01:52:10Z", "bbbb2222"),
     ("near:2026-11-30T01:40:00+00:00", "aaaa1111"), ("near:2026-12-01T08:00:00", "cccc3333")],
)  # fmt: skip
def test_an_archive_is_named_latest_by_its_prefix_or_by_the_time_nearest_to_it(monkeypatch, archive, expected):
    """near:TIME: another client's archive of the same night (playbooks/restore.yml, restore-client)."""
    monkeypatch.setattr(backup, "list_archives", lambda config: ARCHIVES)
    assert backup._resolve(backup.Config(CONFIG), archive) == expected


def test_a_bad_near_time_is_named(monkeypatch):
    monkeypatch.setattr(backup, "list_archives", lambda config: ARCHIVES)
    with pytest.raises(BackupError, match=r"--archive near:yesterday: give near: and a time"):
        backup._resolve(backup.Config(CONFIG), "near:yesterday")


def test_restore_all_on_a_webmail_host_touches_no_directory_and_no_mailbox(monkeypatch):
    """A host without ``base_dn`` and ``vmail_dir`` (a webmail host) gets its files and database back only."""
    calls = []
    monkeypatch.setattr(backup, "list_archives", lambda config: ARCHIVES)
    for name in ("restore_directory", "restore"):
        monkeypatch.setattr(backup, name, lambda *args, name=name, **kwargs: calls.append(name))
    monkeypatch.setattr(
        backup, "restore_files", lambda config, name: {"data_files": 0, "logs": f"/x/{name}", "logs_changed": True}
    )
    monkeypatch.setattr(backup, "restore_databases", lambda config, name: {"archive": name, "databases": []})
    monkeypatch.setattr(
        backup, "restore_filter", lambda config, name: {"archive": name, "archived": False, "keys": 0, "changed": False}
    )
    result = backup.restore_all(backup.Config({**CONFIG, "vmail_dir": "", "base_dn": ""}), "near:2026-12-01T01:40:00Z")
    assert calls == []
    assert result == {"archive": "bbbb2222", "mailboxes": [], "directory": None,
                      "files": {"data_files": 0, "logs": "/x/bbbb2222", "logs_changed": True}, "databases": [],
                      "filter": {"archived": False, "keys": 0, "changed": False}}  # fmt: skip


def test_a_host_without_postfix_mails_a_failed_backup_to_the_mx(monkeypatch):
    sent = []
    monkeypatch.setattr(backup, "SENDMAIL", "/nonexistent/sendmail")
    monkeypatch.setattr(backup, "_send_over_smtp", lambda relay, message, ca: sent.append((relay, message, ca)))
    monkeypatch.setattr(backup.subprocess, "run", lambda *a, **k: type("R", (), {"stdout": "journal line\n"})())
    config = backup.Config({**CONFIG, "host": "web2", "relay": "mail1:25"})
    assert backup.notify_failure(config) == CONFIG["operators"]
    ((relay, message, ca),) = sent
    assert (relay, ca) == ("mail1:25", CONFIG["ca_certificate"])
    assert message["Subject"] == "[govmail] backup of web2 FAILED" and "journal line" in message.get_content()

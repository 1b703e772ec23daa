"""Any folder name a person types works; mailboxes of the old layout are migrated intact (issue 10, fault 3)."""

from __future__ import annotations

import random
import re
import uuid

import clients
import pytest
from conftest import make_message

NAMES = {
    "dot": "v1.0",
    "vietnamese_with_dot": "Báo cáo 2025.1",
    "ampersand": "Tài chính & Kế toán",
    "leading_space_inside": "Hồ sơ  (2 dấu cách)",
    "hierarchy": "Dự án/Năm 2025/Quý 1.2",
    "dots_everywhere": "a.b.c...d",
}


def quoted(name: str) -> str:
    return '"' + clients.imap_utf7(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _listed(client, pattern: str = "*", command: str = "LIST") -> list[str]:
    typ, data = client.list('""', pattern) if command == "LIST" else client.lsub('""', pattern)
    assert typ == "OK", data
    names = []
    for line in data:
        if line is None:
            continue
        match = re.search(rb'\) "?[^ "]*"? (.*)$', line)
        names.append(match.group(1).decode().strip('"'))
    return names


NEW_PASSWORD = "Thu-Muc#2026a"


@pytest.fixture
def person(new_agency, govmail, mail_host):
    """A new person of a new agency, password changed so it can log in; deleted with its Maildir afterwards."""
    given = "".join(random.choice("bcdghklmnpqrstvx") for _ in range(6)).capitalize()
    person = new_agency("Văn phòng Kiểm thử Thư mục", "tm").person(f"Nguyễn Thư {given}")
    old = person["initial_password"]
    changed = govmail("account", "passwd", person["address"], "--old", old, "--new", NEW_PASSWORD)
    assert changed.returncode == 0, changed.stderr
    home = mail_host.run(f"doveadm user -f home {person['address']}").stdout.strip()
    yield {**person, "password": NEW_PASSWORD}
    if home.startswith("/var/vmail/"):
        mail_host.run(f"rm -rf {_sh(home)}")


@pytest.mark.parametrize("name", NAMES.values(), ids=list(NAMES))
def test_folder_with_any_typed_name_can_be_created_used_and_listed(name, imaps, person, smtp):
    client = imaps(person)
    typ, data = client.create(quoted(name))
    assert typ == "OK", data
    assert clients.imap_utf7(name) in _listed(client)
    typ, data = client.subscribe(quoted(name))
    assert typ == "OK", data
    assert clients.imap_utf7(name) in _listed(client, command="LSUB")
    message = make_message("van.thu@ubnd.example.org", person["address"], f"Vào {name}", "Nội dung.\n")
    typ, data = client.append(quoted(name), "(\\Flagged)", None, message.as_bytes())
    assert typ == "OK", data
    typ, data = client.select(quoted(name))
    assert typ == "OK" and data[0] == b"1", data
    typ, data = client.rename(quoted(name), quoted(name + " (cũ)"))
    assert typ == "OK", data
    # Within the tests' usual 20 s: mail saved over IMAP is indexed at the next search, not by the
    # indexer in the background, whose writes into the folder a RENAME right after the APPEND used
    # to pull away and stall this SELECT for more than 100 s (roles/dovecot README, "Indexed at
    # delivery").
    typ, data = client.select(quoted(name + " (cũ)"))
    assert typ == "OK" and data[0] == b"1", data


# --- migration of mailboxes created under the old (Maildir++) layout -----------------------

OLD_FOLDERS = ["Báo cáo 2024", "Dự án/Cầu Hiền Lương", "Dự án", "Công văn & Tờ trình"]


def test_mailbox_of_the_old_layout_is_migrated_without_losing_mail_flags_or_subscriptions(mail_host, person, imaps):
    """Built with Dovecot itself under the old layout (mailbox_list_layout=maildir++), then migrated."""
    user = person["address"]
    old = "-o mailbox_list_layout=maildir++"
    ids = {}
    for folder in ["INBOX", *OLD_FOLDERS]:
        if folder != "INBOX":
            created = mail_host.run(f"doveadm {old} mailbox create -s -u {user} {_sh(folder)}")
            assert created.rc == 0, created.stderr
        message_id = f"<{uuid.uuid4()}@migration.test>"
        ids[folder] = message_id
        raw = f"From: a@example.org\nSubject: {folder}\nMessage-ID: {message_id}\n\nNội dung.\n"
        saved = mail_host.run(f"printf %s {_sh(raw)} | doveadm {old} save -u {user} -m {_sh(folder)}")
        assert saved.rc == 0, saved.stderr
        flagged = mail_host.run(f"doveadm {old} flags add -u {user} '\\Flagged $Label1' mailbox {_sh(folder)} all")
        assert flagged.rc == 0, flagged.stderr
    home = mail_host.run(f"doveadm user -f home {user}").stdout.strip()
    # the old layout really is on disk: one ".Name.Sub" directory per folder
    nested = ".".join(clients.imap_utf7(part) for part in ["Dự án", "Cầu Hiền Lương"])
    assert mail_host.file(f"{home}/Maildir/.{nested}").is_directory

    migrated = mail_host.run("/usr/local/lib/govmail/maildir-layout migrate --json /var/vmail")
    assert migrated.rc == 0, migrated.stderr
    assert user in migrated.stdout
    again = mail_host.run("/usr/local/lib/govmail/maildir-layout migrate --json /var/vmail")
    assert again.rc == 0 and user not in again.stdout, again.stdout

    client = imaps(person)
    subscribed = _listed(client, command="LSUB")
    for folder in OLD_FOLDERS:
        assert clients.imap_utf7(folder) in subscribed
    for folder, message_id in ids.items():
        typ, data = client.select(quoted(folder) if folder != "INBOX" else "INBOX")
        assert typ == "OK", (folder, data)
        typ, data = client.search(None, "HEADER", "Message-ID", message_id)
        assert typ == "OK" and data[0], (folder, data)
        typ, data = client.fetch(data[0].split()[0], "(FLAGS)")
        assert b"\\Flagged" in data[0] and b"$Label1" in data[0], (folder, data)


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"

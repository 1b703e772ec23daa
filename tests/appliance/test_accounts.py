"""`govmail account ...` against a converged stack: what the commands do is seen over real protocols.

The CLI runs as a subprocess aimed at the stack under test (GOVMAIL_LDAP_URI at its published
LDAPS port, GOVMAIL_SECRETS_DIR at its secrets). Every person created here is a new, uniquely
named mailbox of the agency sokhcn, deleted again afterwards (its entry and mail archived into the
lifecycle's archive on the mail store, as `account delete` promises). Tests that need the
directory's password policy (pwdReset, history) skip with the reason when the server has no ppolicy overlay.
"""

from __future__ import annotations

import json
import random
import re
import socket

import clients
import ldap3
import pytest
from conftest import imap_fetch, make_message, ok_json, one_line_error

AGENCY = "sokhcn"
GIVEN_NAMES = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Khánh", "Lâm", "Minh", "Ngọc", "Phúc", "Quang",
               "Sơn", "Trang", "Uyên", "Vinh", "Xuân", "Yến", "Đạt", "Ưng", "Ơn", "Ấn", "Ảnh", "Ẩn"]  # fmt: skip
NEW_PASSWORD = "Kiem#Thu-2026a"
OTHER_PASSWORD = "Doi-Mat-Khau!27b"
GIB = 1024**3


@pytest.fixture
def new_person(govmail, ppolicy):
    """A fresh person in sokhcn with an initial password: ``{"address", "dn", "initial_password"}``."""
    created = []

    def make() -> dict:
        name = f"Phạm Thị Kiểm Thử {random.choice(GIVEN_NAMES)}"
        document = ok_json(govmail("account", "add", name, "--agency", AGENCY, "--json"))
        created.append(document["address"])
        return document

    yield make
    for address_ in created:
        govmail("account", "delete", address_, "--force")


@pytest.fixture
def person(new_person, govmail):
    """A fresh person who has already replaced the initial password with NEW_PASSWORD."""
    document = new_person()
    result = govmail("account", "passwd", document["address"], "--old", document["initial_password"],
                     "--new", NEW_PASSWORD)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {**document, "password": NEW_PASSWORD}


# --- without ppolicy: reading and refusing -------------------------------------------------------


def test_show_json_describes_a_seeded_mailbox(govmail, alice):
    document = ok_json(govmail("account", "show", alice["address"], "--json"))
    assert {
        "address", "dn", "name", "kind", "agency", "quota_bytes", "status", "last_login", "password_changed",
        "must_change_password", "delegates",
    } <= set(document)  # fmt: skip
    assert document["address"] == alice["address"] and document["name"] == alice["name"]
    assert document["kind"] == "personal" and document["agency"] == alice["agency"]
    assert document["status"] == "active" and document["quota_bytes"] >= 2 * GIB
    assert document["dn"].startswith(f"uid={alice['uid']},ou={alice['agency']},ou=agencies,")


def test_list_json_includes_every_seeded_mailbox(govmail, creds):
    addresses = {doc["address"] for doc in ok_json(govmail("account", "list", "--agency", AGENCY, "--json"))}
    assert {account["address"] for account in creds["accounts"]} <= addresses


def test_quota_below_the_regulation_minimum_is_refused(govmail, alice):
    line = one_line_error(govmail("account", "set-quota", alice["address"], "1G"))
    assert "below the minimum" in line and "2G" in line


def test_unknown_mailbox_is_one_line_naming_it(govmail, domain):
    line = one_line_error(govmail("account", "show", f"khongtontai@{domain}"))
    assert f"khongtontai@{domain}" in line


def test_unreachable_directory_names_the_uri_and_what_to_do(govmail, cli_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {**cli_env, "GOVMAIL_LDAP_URI": f"ldaps://127.0.0.1:{closed}"}
    line = one_line_error(govmail("account", "list", env=env))
    assert f"ldaps://127.0.0.1:{closed}" in line and "make up" in line


# --- with ppolicy: the account's life over IMAP and SMTP ---------------------------------------------


def test_initial_password_is_refused_over_imaps_until_the_owner_changes_it(new_person, govmail, login_ok):
    account = new_person()
    assert not login_ok(account["address"], account["initial_password"])
    result = govmail("account", "passwd", account["address"], "--old", account["initial_password"],
                     "--new", NEW_PASSWORD)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert login_ok(account["address"], NEW_PASSWORD)


def test_passwd_refuses_a_weak_password_naming_the_rule(new_person, govmail, login_ok):
    account = new_person()
    line = one_line_error(govmail("account", "passwd", account["address"], "--old", account["initial_password"],
                                  "--new", "khongdu1"))  # fmt: skip
    assert "upper-case letter" in line and "special character" in line
    assert ok_json(govmail("account", "show", account["address"], "--json"))["must_change_password"] is True


def test_passwd_with_a_wrong_old_password_changes_nothing(new_person, govmail):
    account = new_person()
    line = one_line_error(govmail("account", "passwd", account["address"], "--old", "Sai#MatKhau-1",
                                  "--new", NEW_PASSWORD))  # fmt: skip
    assert "old password is wrong" in line


def test_passwd_surfaces_the_directorys_refusal_of_a_recent_password(person, govmail):
    line = one_line_error(govmail("account", "passwd", person["address"], "--old", NEW_PASSWORD,
                                  "--new", person["initial_password"]))  # fmt: skip
    assert "refused the new password" in line and "history" in line.lower()


def test_show_json_follows_the_password_and_the_first_login(new_person, govmail, login_ok):
    account = new_person()
    fresh = ok_json(govmail("account", "show", account["address"], "--json"))
    assert fresh["must_change_password"] is True and fresh["status"] == "active"
    assert fresh["kind"] == "personal" and fresh["agency"] == AGENCY and fresh["quota_bytes"] == 2 * GIB
    assert fresh["name"].startswith("Phạm Thị Kiểm Thử ") and fresh["delegates"] == []
    govmail("account", "passwd", account["address"], "--old", account["initial_password"], "--new", NEW_PASSWORD)
    assert login_ok(account["address"], NEW_PASSWORD)
    used = ok_json(govmail("account", "show", account["address"], "--json"))
    assert used["must_change_password"] is False
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", used["password_changed"] or "")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", used["last_login"] or "")


def test_locked_mailbox_refuses_login_and_unlock_restores_it_with_its_mail(
    person, govmail, login_ok, smtp, ldaps_server, address, hostname, port, tls
):
    message = make_message("van.thu@ubnd.example.org", person["address"], "Công văn trước khi khoá", "Nội dung.\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(message) == {}
    inbox = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    inbox.login(person["address"], person["password"])
    clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="delivery before the lock")
    inbox.logout()

    assert ok_json(govmail("account", "lock", person["address"], "--json"))["status"] == "locked"
    assert not login_ok(person["address"], person["password"])
    # the directory refuses the owner too (address book, password change), not only mail
    dn = ok_json(govmail("account", "show", person["address"], "--json"))["dn"]
    assert not ldap3.Connection(ldaps_server, user=dn, password=person["password"]).bind()

    assert ok_json(govmail("account", "unlock", person["address"], "--json"))["status"] == "active"
    inbox = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    inbox.login(person["address"], person["password"])
    assert imap_fetch(inbox, message["Message-ID"]) is not None
    inbox.logout()


def test_set_quota_3g_shows_in_getquotaroot(person, govmail, address, hostname, port, tls):
    assert ok_json(govmail("account", "set-quota", person["address"], "3G", "--json"))["quota_bytes"] == 3 * GIB
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    client.login(person["address"], person["password"])
    typ, data = client.getquotaroot("INBOX")
    client.logout()
    assert typ == "OK"
    text = b" ".join(part for group in data for part in group if isinstance(part, bytes)).decode()
    assert re.search(r"STORAGE \d+ (\d+)", text).group(1) == str(3 * 1024 * 1024)


def test_terminated_mailbox_refuses_login_and_mail_with_5xx(person, govmail, login_ok, smtp):
    smtp.ehlo("mx.example.org")
    smtp.mail("van.thu@ubnd.example.org")
    assert smtp.rcpt(person["address"])[0] == 250
    smtp.rset()

    assert ok_json(govmail("account", "terminate", person["address"], "--json"))["status"] == "terminated"
    assert not login_ok(person["address"], person["password"])
    smtp.mail("van.thu@ubnd.example.org")
    code, text = smtp.rcpt(person["address"])
    assert (code, text.decode()) == (
        550,
        f"5.1.1 <{person['address']}>: Recipient address rejected: "
        "This mailbox has been closed / Hop thu nay da bi dong",
    )


def test_reset_password_forces_a_new_change_before_login(person, govmail, login_ok):
    initial = ok_json(govmail("account", "reset-password", person["address"], "--json"))["initial_password"]
    assert not login_ok(person["address"], person["password"])
    assert not login_ok(person["address"], initial)
    result = govmail("account", "passwd", person["address"], "--old", initial, "--new", OTHER_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert login_ok(person["address"], OTHER_PASSWORD)


def test_import_creates_people_whose_initial_passwords_must_be_changed(govmail, ppolicy, tmp_path, login_ok):
    names = [f"Phạm Thị Nhập Khẩu {random.choice(GIVEN_NAMES)}" for _ in range(2)]
    staff = tmp_path / "staff.csv"
    staff.write_text("Họ và tên,Cơ quan\n" + "".join(f"{name},{AGENCY}\n" for name in names), encoding="utf-8")
    planned = ok_json(govmail("account", "import", str(staff), "--dry-run", "--json"))
    assert [row["row"] for row in planned["rows"]] == [2, 3] and not any(r["initial_password"] for r in planned["rows"])
    result = ok_json(govmail("account", "import", str(staff), "--json"))
    try:
        assert [row["address"] for row in result["rows"]] == [row["address"] for row in planned["rows"]]
        for row in result["rows"]:
            assert ok_json(govmail("account", "show", row["address"], "--json"))["must_change_password"] is True
            assert not login_ok(row["address"], row["initial_password"])
    finally:
        for row in result["rows"]:
            govmail("account", "delete", row["address"], "--force")


def test_import_with_a_bad_row_changes_nothing(govmail, tmp_path, domain):
    staff = tmp_path / "staff.csv"
    staff.write_text(f"Phạm Thị Nhập Khẩu Một,{AGENCY}\nPhạm Văn 2,{AGENCY}\n", encoding="utf-8")
    before = ok_json(govmail("account", "list", "--json"))
    result = govmail("account", "import", str(staff), "--json")
    assert result.returncode == 1
    assert [error["row"] for error in json.loads(result.stdout)["errors"]] == [2]
    assert ok_json(govmail("account", "list", "--json")) == before


def test_a_deleted_address_given_again_starts_empty_and_its_old_mail_is_archived(
    govmail, ppolicy, smtp, mail_host, address, hostname, port, tls
):
    name = f"Phạm Thị Xoá Lại {random.choice(GIVEN_NAMES)}"
    first = ok_json(govmail("account", "add", name, "--agency", AGENCY, "--json"))
    try:
        assert govmail("account", "passwd", first["address"], "--old", first["initial_password"],
                       "--new", NEW_PASSWORD).returncode == 0  # fmt: skip
        message = make_message("van.thu@ubnd.example.org", first["address"], "Thư của người trước", "Riêng tư.\n")
        smtp.ehlo("mx.example.org")
        assert smtp.send_message(message) == {}
        inbox = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
        inbox.login(first["address"], NEW_PASSWORD)
        clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="delivery before the deletion")
        inbox.logout()

        deleted = ok_json(govmail("account", "delete", first["address"], "--force", "--json"))
        assert deleted["address"] == first["address"] and deleted["deleted"] is True
        archived = mail_host.run(
            f"tar -xzOf {deleted['archive']} --wildcards 'home/*' | grep -c -F -- '{message['Message-ID']}'"
        )
        assert archived.rc == 0 and int(archived.stdout) >= 1, archived.stderr  # the message is in the archive

        second = ok_json(govmail("account", "add", name, "--agency", AGENCY, "--json"))
        assert second["address"] == first["address"]  # the directory gives the free address again
        assert govmail("account", "passwd", second["address"], "--old", second["initial_password"],
                       "--new", OTHER_PASSWORD).returncode == 0  # fmt: skip
        inbox = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
        inbox.login(second["address"], OTHER_PASSWORD)
        typ, data = inbox.select("INBOX")
        assert (typ, data) == ("OK", [b"0"])  # nothing of the previous owner's mail
        inbox.logout()
    finally:
        govmail("account", "delete", first["address"], "--force")

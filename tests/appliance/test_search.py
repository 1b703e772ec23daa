"""Full-text search without diacritics, over IMAP and in the webmail (issue 12, REQUIREMENTS A5).

Dovecot's fts_flatcurve index (roles/dovecot, ``dovecot_fts_*``) folds every word with ICU
(tone marks removed, đ -> d, lower case) when it indexes and when it searches, so
``SEARCH CHARSET UTF-8 TEXT "bao cao"`` finds "Báo cáo" and "dang" finds "Đặng". One person of
an agency of the module's own receives three messages over SMTP (port 25, as from another
government server) and logs in once; every IMAP test searches that one session. The messages:

- ``report``: subject "Báo cáo tổng kết năm 2026", a body naming "bà Đặng Thị Hạnh" and saying
  "báo cáo" again;
- ``meeting``: names "ông Nguyễn Văn Bình"; its text/plain attachment alone says "Cửa Tùng";
- ``notice``: "Thông báo lịch trực Tết" (has "báo", not "cáo": "bao cao" must not find it).

The browser test (Debian's chromium, fixtures of test_webmail_browser.py) types "bao cao" in the
webmail's search box and sees the report in the list, not the notice.
"""

from __future__ import annotations

import contextlib
import email.policy
import email.utils
import imaplib
import re
import uuid
from email.message import EmailMessage

import clients
import pytest
from playwright import sync_api as playwright_api
from test_webmail_browser import TIMEOUT_MS, Person, browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

SENDER = "van.thu@ubnd.example.org"


def message(recipient: str, subject: str, body: str, attachment: tuple[str, str] | None = None) -> EmailMessage:
    built = EmailMessage(policy=email.policy.SMTP)
    built["From"] = f"Văn thư UBND <{SENDER}>"
    built["To"] = recipient
    built["Subject"] = subject
    built["Date"] = email.utils.formatdate(localtime=False)
    built["Message-ID"] = f"<{uuid.uuid4()}@ubnd.example.org>"
    built.set_content(body)
    if attachment:
        name, text = attachment
        built.add_attachment(text, subtype="plain", filename=name)
    return built


@pytest.fixture(scope="module")
def searcher(module_agency):
    """A person with their own password and the three messages in INBOX: ``{"account", "ids"}``
    where ``ids`` maps ``report``/``meeting``/``notice`` to Message-IDs."""
    agency = module_agency("Phòng Thử Tìm Kiếm", "tk")
    account = agency.person("Phan Thị Lụa", password=f"Tim-Kiem-{uuid.uuid4().hex[:8]}-A1!")
    to = account["address"]
    messages = {
        "report": message(
            to,
            "Báo cáo tổng kết năm 2026",
            "Kính gửi bà Đặng Thị Hạnh,\n\nXin gửi bà bản báo cáo tổng kết của Sở.\n",
        ),
        "meeting": message(
            to,
            "Lịch họp giao ban tuần",
            "Chủ trì: ông Nguyễn Văn Bình.\nTài liệu kèm theo.\n",
            attachment=("du-toan.txt", "Dự toán kè biển Cửa Tùng, huyện Vĩnh Linh.\n"),
        ),
        "notice": message(to, "Thông báo lịch trực Tết", "Phòng trực: tầng 2, nhà B.\n"),
    }
    return {"account": account, "messages": messages, "ids": {k: m["Message-ID"] for k, m in messages.items()}}


@pytest.fixture(scope="module")
def session(searcher, address, hostname, port, tls):
    """The searcher's one IMAP session, INBOX selected once the three messages are there (counted
    by SELECT, never by a search: autoindexing must not be helped by one). A mailbox deleted from
    the directory keeps its mail (``account delete``), so an earlier run's namesake may have left
    messages in INBOX: the tests look only at this run's three."""
    client = clients.IMAP_SSL(address, hostname, port("imaps"), tls)
    client.login(searcher["account"]["address"], searcher["account"]["password"])
    _, data = client.select("INBOX")
    before = int(data[0])
    smtp = clients.SMTP(address, hostname, port("smtp"))
    smtp.ehlo("mx.ubnd.example.org")
    for built in searcher["messages"].values():
        assert smtp.send_message(built) == {}
    smtp.quit()

    def arrived() -> bool:
        typ, data = client.select("INBOX")
        return typ == "OK" and int(data[0]) >= before + len(searcher["messages"])

    clients.wait_for(arrived, timeout=120, what="the three messages in INBOX")
    yield client
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        client.logout()


@pytest.fixture(scope="module")
def labels(session, searcher):
    """UID -> label (``report``, ``meeting``, ``notice``) of this run's messages, by Message-ID."""
    typ, data = session.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    assert typ == "OK"
    by_id = {mid: label for label, mid in searcher["ids"].items()}
    found = {}
    for item in data:
        if isinstance(item, tuple):
            uid = re.search(rb"UID (\d+)", item[0]).group(1).decode()
            mid = re.search(rb"<[^>]+>", item[1]).group(0).decode()
            if mid in by_id:
                found[uid] = by_id[mid]
    assert sorted(found.values()) == sorted(by_id.values()), data
    return found


def search(session, labels, key: str, words: str) -> set[str]:
    """``UID SEARCH CHARSET UTF-8 <key> {literal}``: the labels of this run's messages found."""
    session.literal = words.encode("utf-8")
    typ, data = session.uid("SEARCH", "CHARSET", "UTF-8", key)
    assert typ == "OK", data
    return {labels[uid] for uid in data[0].decode().split() if uid in labels}


def test_delivered_mail_is_indexed_before_anyone_searches(mail_host, searcher, labels):
    """fts_autoindex: the indexer takes each delivered message without waiting for a search. Asked
    of the index itself before this module's first SEARCH (pytest runs a module's tests in file
    order; the fixtures only SELECT and FETCH): ``doveadm fts flatcurve stats`` prints
    ``INBOX guid=... last_uid=3 messages=3 shards=1 version=1``."""
    user = searcher["account"]["address"]
    newest = max(int(uid) for uid in labels)

    def last_indexed() -> int:
        stats = mail_host.run(f"doveadm fts flatcurve stats -u {user} INBOX")
        assert stats.rc == 0, stats.stderr
        found = re.search(r"\blast_uid=(\d+)", stats.stdout)
        return int(found.group(1)) if found else 0

    clients.wait_for(lambda: last_indexed() >= newest, timeout=120, what="the indexer to index the delivered messages")


SEARCHES = [
    # (id, IMAP key, what the person types, the messages found)
    ("bao-cao-finds-the-subject-Bao-cao", "SUBJECT", "bao cao", {"report"}),
    ("bao-cao-finds-the-body-bao-cao", "BODY", "bao cao", {"report"}),
    ("bao-cao-in-the-whole-text", "TEXT", "bao cao", {"report"}),
    ("dang-finds-Dang-with-d-stroke", "BODY", "dang", {"report"}),
    ("Nguyen-typed-with-diacritics", "TEXT", "Nguyễn", {"meeting"}),
    ("nguyen-typed-without", "TEXT", "nguyen", {"meeting"}),
    ("NGUYEN-in-capitals", "BODY", "NGUYEN", {"meeting"}),
    ("Hanh-typed-with-another-tone-mark", "BODY", "Hành", {"report"}),
    ("a-word-only-in-the-text-attachment", "BODY", "cua tung", {"meeting"}),
    ("a-word-that-is-nowhere-finds-nothing", "TEXT", "tàu ngầm", set()),
]


@pytest.mark.parametrize(("key", "words", "expected"), [s[1:] for s in SEARCHES], ids=[s[0] for s in SEARCHES])
def test_search_ignores_diacritics_and_case(session, labels, key, words, expected):
    assert search(session, labels, key, words) == expected


def test_the_index_does_not_count_against_the_quota(mail_host, searcher, session, labels):
    """Quota (driver count) sums the messages' sizes; the index beside them on disk is not in it."""
    user = searcher["account"]["address"]
    local, domain = user.split("@")
    typ, data = session.uid("FETCH", "1:*", "(RFC822.SIZE)")
    assert typ == "OK"
    total = sum(int(re.search(rb"RFC822.SIZE (\d+)", item).group(1)) for item in data if item)
    typ, quota = session.getquotaroot("INBOX")
    text = b" ".join(part for group in quota for part in group if isinstance(part, bytes)).decode()
    used_kib = int(re.search(r"STORAGE (\d+) \d+", text).group(1))
    index = mail_host.run(f"du -sb /var/vmail/{domain}/{local}/Maildir/fts-flatcurve")
    assert index.rc == 0, "no full-text index on disk"
    index_bytes = int(index.stdout.split()[0])
    assert index_bytes > 10 * 1024, "the index is too small for this test to tell anything"
    assert used_kib == total // 1024 or used_kib == -(-total // 1024), (used_kib, total, index_bytes)


def test_the_index_is_not_listed_as_a_folder(session):
    typ, folders = session.list()
    assert typ == "OK"
    assert not [f for f in folders if b"fts-flatcurve" in f], folders


def webmail_search(me: Person, words: str, shown: str, hidden: list[str]) -> None:
    """Type ``words`` in the search box and press Enter; the message list then shows a row with
    ``shown`` and none with any of ``hidden`` (Playwright's expect waits for the list's update)."""
    box = me.page.locator("#mailsearchform")
    box.fill(words)
    box.press("Enter")
    rows = me.page.locator("#messagelist tbody tr")
    playwright_api.expect(rows.filter(has_text=shown).first).to_be_visible(timeout=TIMEOUT_MS)
    for subject in hidden:
        playwright_api.expect(rows.filter(has_text=subject)).to_have_count(0, timeout=TIMEOUT_MS)


def test_the_webmail_search_box_finds_bao_cao(person, searcher, session):  # noqa: F811 (fixture)
    """A person types "bao cao" in the webmail's search box and sees the report, not the notice
    ("Thông báo"); then "cua tung", a word only in the meeting's text attachment: Roundcube asks
    Dovecot with IMAP SEARCH TEXT (roles/webmail webmail_search_mods), not only the headers."""
    me: Person = person(searcher["account"])
    me.log_in()
    report, meeting, notice = "Báo cáo tổng kết năm 2026", "Lịch họp giao ban tuần", "Thông báo lịch trực Tết"
    with me.step("search-bao-cao"):
        webmail_search(me, "bao cao", shown=report, hidden=[notice, meeting])
    with me.step("search-cua-tung"):
        webmail_search(me, "cua tung", shown=meeting, hidden=[report, notice])


def test_mail_filed_over_imap_is_found_without_diacritics_and_its_folder_renamed_at_once(session, searcher):
    """A client files a message into a new folder (APPEND), renames the folder at once and
    searches it: mail saved over IMAP is indexed by that search (roles/dovecot
    ``dovecot_fts_autoindex_imap``: not by the background indexer, whose writes the RENAME used
    to pull away), and the search still folds "bao cao" and "dang" (header and body)."""
    folder = f"Luu tru {uuid.uuid4().hex[:6]}"
    filed = message(searcher["account"]["address"], "Báo cáo lưu trữ", "Người ký: bà Đặng Thị Hạnh.\n")
    try:
        assert session.create(f'"{folder}"')[0] == "OK"
        typ, data = session.append(f'"{folder}"', None, None, filed.as_bytes())
        assert typ == "OK", data
        typ, data = session.rename(f'"{folder}"', f'"{folder} cu"')
        assert typ == "OK", data
        typ, data = session.select(f'"{folder} cu"')
        assert typ == "OK" and data[0] == b"1", data
        for key, words in (("SUBJECT", "bao cao"), ("BODY", "dang")):
            session.literal = words.encode("utf-8")
            typ, data = session.uid("SEARCH", "CHARSET", "UTF-8", key)
            assert typ == "OK" and len(data[0].split()) == 1, (key, words, data)
    finally:
        session.select("INBOX")
        session.delete(f'"{folder} cu"')

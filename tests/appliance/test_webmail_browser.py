"""The webmail in a real browser, as a person uses it (issue 12, REQUIREMENTS A1, A5, M7, M9).

Debian's chromium (``/usr/bin/chromium``, installed by scripts/setup.sh), headless, driven by
Playwright from PyPI; nothing downloads a browser. One browser for the module; each person gets a
context of their own (their own cookies). The browser resolves the mail host name to 127.0.0.1
(``--host-resolver-rules``) and trusts the stack's CA through an NSS database in a home directory
of its own (certutil), so it verifies the certificate as any browser would: no certificate error
is ignored. A step that fails leaves a screenshot under the artifacts directory
(``GOVMAIL_ARTIFACTS_DIR``, default ``.lab/artifacts/browser``).
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import os
import re
import subprocess
import time
import uuid
from email.parser import BytesParser
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, make_message, ok_json
from playwright import sync_api as playwright_api
from test_folder_names import quoted  # folder names in modified UTF-7, as Thunderbird and Outlook send them

from govmail.inventory import Site

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("GOVMAIL_ARTIFACTS_DIR") or PROJECT_DIR / ".lab" / "artifacts" / "browser")
TIMEOUT_MS = 60_000  # one step on a loaded 2-core machine (a 5 MB upload, a send through submissions)
ATTACHMENT_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def browser_home(tmp_path_factory, creds):
    """A HOME whose NSS database trusts only the stack's CA (chromium reads ~/.pki/nssdb)."""
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{nssdb}"]
    subprocess.run([*certutil, "-N", "--empty-password"], check=True, capture_output=True, timeout=60)
    subprocess.run(
        [*certutil, "-A", "-t", "C,,", "-n", "govmail stack CA", "-i", creds["ca_certificate"]],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return home


@pytest.fixture(scope="module")
def browser(browser_home, hostname):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/setup.sh` (Debian package chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[f"--host-resolver-rules=MAP {hostname} 127.0.0.1"],
            env={**os.environ, "HOME": str(browser_home)},
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def webmail_url(hostname, port):
    return f"https://{hostname}:{port('https')}/"


class Person:
    """One person's browser tab on the webmail; ``step`` keeps a screenshot of a failing step."""

    def __init__(self, browser, url: str, account: dict, test_name: str) -> None:
        self.context = browser.new_context(locale="vi-VN", accept_downloads=True)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.url = url
        self.account = account
        self.test_name = test_name

    @contextlib.contextmanager
    def step(self, name: str):
        try:
            yield
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test_name}-{self.account['address']}-{name}")
            self.page.screenshot(path=str(ARTIFACTS / f"{time.strftime('%Y%m%dT%H%M%S')}-{slug}.png"), full_page=True)
            raise

    def log_in(self) -> None:
        with self.step("log-in"):
            self.page.goto(self.url)
            self.page.fill("#rcmloginuser", self.account["address"])
            self.page.fill("#rcmloginpwd", self.account["password"])
            self.page.click("#rcmloginsubmit")
            self.page.wait_for_url(re.compile(r"_task=mail"))
            self.page.wait_for_selector("#mailboxlist li.inbox")
            # the mailbox page's own requests (message list, unread counts) write the session: a click
            # while they are under way loses what the next page stores there (Roundcube's compose id)
            self.page.wait_for_load_state("networkidle")

    def compose(self) -> None:
        """Open a new message from the task menu ("Soạn thư"), as a person does."""
        self.page.click("#taskmenu a.compose")
        self.page.wait_for_selector("#compose-subject")
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def person(browser, webmail_url, request):
    opened: list[Person] = []

    def open_for(account: dict) -> Person:
        opened.append(Person(browser, webmail_url, account, request.node.name))
        return opened[-1]

    yield open_for
    for one in opened:
        one.close()


def test_login_shows_the_mailbox_in_vietnamese(person, alice):
    me = person(alice)
    me.log_in()
    with me.step("inbox-in-vietnamese"):
        assert me.page.locator("html").get_attribute("lang") == "vi"
        inbox = me.page.locator("#mailboxlist li.inbox a").first.inner_text()  # name, then any unread count
        assert inbox.splitlines()[0].strip() == "Hộp thư"
        assert me.page.locator("#taskmenu a.compose").first.inner_text().strip() == "Soạn thư"


def test_a_5_mb_attachment_sent_from_the_browser_arrives_byte_identical(person, alice, bob, tmp_path, imaps):
    payload = os.urandom(ATTACHMENT_BYTES)
    attachment = tmp_path / "bao-cao-quy-4.bin"
    attachment.write_bytes(payload)
    token = uuid.uuid4().hex[:12]
    subject = f"Báo cáo quý 4 {token}"

    sender = person(alice)
    sender.log_in()
    page = sender.page
    with sender.step("compose"):
        sender.compose()
        page.locator("#compose_to input").first.fill(bob["address"] + ", ")
        page.fill("#compose-subject", subject)
        page.fill("#composebody", "Kính gửi anh/chị,\nBáo cáo đính kèm.\n")
    with sender.step("upload-limit-shown"):  # M7: the one shared fact, as Roundcube tells the person
        limit_mb = int(Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR).value("govmail_attachment_limit_mb"))
        assert page.evaluate("rcmail.env.max_filesize") == limit_mb * 1024 * 1024
        assert page.locator(".hint", has_text="tối đa").first.inner_text().strip() == (
            f"Dung lượng tập tin tối đa cho phép là {limit_mb} MB"
        )
    with sender.step("attach-5-mb"):
        page.locator("input[type=file][name='_attachments[]']").first.set_input_files(str(attachment))
        page.wait_for_selector(f"#attachment-list li:not(.uploading) >> text={attachment.name}")
    with sender.step("send"):
        page.locator("#compose-content button.send, .formbuttons button.send, a.button.send").first.click()
        page.wait_for_url(re.compile(r"_task=mail(?!.*_action=compose)"))

    receiver = person(bob)
    receiver.log_in()
    with receiver.step("see-message-and-attachment"):
        row = receiver.page.locator("#messagelist tr", has_text=subject)
        row.first.wait_for()
        row.first.dblclick()
        receiver.page.wait_for_selector(f"text={attachment.name}")
    # the bytes Bob's mailbox holds, read over IMAP: the attachment is the file Alice chose
    imap = imaps(bob)
    imap.select("INBOX", readonly=True)
    _, found = imap.search(None, "SUBJECT", token)
    uids = found[0].split()
    assert len(uids) == 1, found
    _, data = imap.fetch(uids[0], "(BODY.PEEK[])")
    message = BytesParser(policy=email.policy.default).parsebytes(data[0][1])
    parts = [p for p in message.iter_attachments() if p.get_filename() == attachment.name]
    assert message["Subject"] == subject and len(parts) == 1
    assert hashlib.sha256(parts[0].get_content()).hexdigest() == hashlib.sha256(payload).hexdigest()


# what a person types in the To: field -> the name the address book must offer (M9)
AUTOCOMPLETE = {
    "nguyen van long": "Nguyễn Văn Long",
    "long": "Nguyễn Văn Long",
    "Nguyễn": "Nguyễn Văn Long",
    "le duc": "Lê Đức",
}


@pytest.mark.parametrize("typed", AUTOCOMPLETE, ids=[t.replace(" ", "_") for t in AUTOCOMPLETE])
def test_compose_autocomplete_finds_a_colleague_typed_without_diacritics(person, creds, typed):
    writer = next(a for a in creds["accounts"] if a.get("name") == "Trần Thị Thu Hương")
    wanted = AUTOCOMPLETE[typed]
    colleague = next(a for a in creds["accounts"] if a.get("name") == wanted)
    me = person(writer)
    me.log_in()
    page = me.page
    with me.step(f"autocomplete-{typed}"):
        me.compose()
        field = page.locator("#compose_to input").first
        field.wait_for()
        field.press_sequentially(typed, delay=50)
        offer = page.locator("#rcmKSearchpane li", has_text=wanted)
        offer.first.wait_for()
        assert colleague["address"] in offer.first.inner_text()


def webmail_users(mail_host) -> str:
    """Roundcube's users on the mail host, one ``address (imap host)`` a line (its own deluser.sh)."""
    listed = mail_host.run("runuser -u www-data -- /usr/share/roundcube/bin/deluser.sh --age=-1 --dry-run")
    assert listed.rc == 0, listed.stderr
    return listed.stdout


def test_a_deleted_mailbox_takes_its_webmail_settings_with_it(person, new_agency, govmail, mail_host):
    account = new_agency("Sở Xoá Thử", "xoa").person("Lê Văn Xoá", password="Xoa#Thu-2026a")
    tab = person(account)
    tab.log_in()
    assert f"{account['address']} (" in webmail_users(mail_host)  # the first login made its Roundcube user

    deleted = ok_json(govmail("account", "delete", account["address"], "--force", "--json"))
    assert deleted["webmail"] == "removed"
    # settings, identities and contacts gone: whoever gets the address later starts afresh
    assert f"{account['address']} (" not in webmail_users(mail_host)


# Created in this (scrambled) order; Vietnamese order is a < á < c < d < đ < e, where UTF-8's byte
# order (and a plain PHP sort) would put "Ánh" and "Đề" after "Em".
FOLDERS = ["Em út", "Đề xuất", "Công văn đến", "Ánh sáng", "Dự thảo"]
FOLDERS_IN_ORDER = ["Ánh sáng", "Công văn đến", "Dự thảo", "Đề xuất", "Em út"]


def test_folders_and_subjects_in_vietnamese_are_shown_as_written_and_folders_sorted_in_vietnamese_order(
    person, new_agency, imaps
):
    account = new_agency("Sở Thử Thư mục", "thumuc").person("Phan Văn Thư", password="Thu-Muc#2026a")
    client = imaps(account)
    for name in FOLDERS:
        assert client.create(quoted(name))[0] == "OK"
        assert client.subscribe(quoted(name))[0] == "OK"
    subject = f"Đề xuất ngân sách quý 1 - {uuid.uuid4().hex[:6]}"
    raw = bytes(make_message(account["address"], account["address"], subject, "Nội dung\n"))
    assert client.append(quoted("Đề xuất"), None, None, raw)[0] == "OK"
    me = person(account)
    me.log_in()
    with me.step("folder-list"):
        listed = [text.splitlines()[0].strip() for text in me.page.locator("#mailboxlist li a").all_inner_texts()]
        assert [name for name in listed if name in FOLDERS] == FOLDERS_IN_ORDER, listed
    with me.step("open-folder"):
        me.page.locator("#mailboxlist li a", has_text="Đề xuất").first.click()
        row = me.page.locator("#messagelist tbody tr", has_text=subject)
        playwright_api.expect(row.first).to_be_visible(timeout=TIMEOUT_MS)
        assert "Đề xuất" in me.page.title()


def test_logging_out_ends_the_session(person, alice):
    tab = person(alice)
    tab.log_in()
    with tab.step("log-out"):
        tab.page.click("#taskmenu a.logout")  # "Đăng xuất"
        tab.page.wait_for_selector("#rcmloginuser")
    with tab.step("back-to-the-mailbox"):
        # the browser still holds the old cookies: the server has ended that session
        tab.page.goto(f"{tab.url}?_task=mail&_mbox=INBOX")
        tab.page.wait_for_selector("#rcmloginuser")
    assert tab.page.locator("#mailboxlist").count() == 0

"""Filters, vacation reply, forwarding and junk in the webmail, in a real browser (issue 12, C3, C5).

Roundcube's managesieve plugin talks to the mail store's ManageSieve (STARTTLS, verified against
the CA) and shows Settings → "Trả lời tự động khi vắng mặt", "Chuyển tiếp thư" and "Bộ lọc" in
Vietnamese (the texts Debian's plugin lacks come from the project's plugin govmail_filters). A
redirect outside the own domain and govmail_forward_allowed_suffixes cannot be saved from the
forwarding form or a filter's "redirect" action: the webmail names the address and the rule,
and ManageSieve holds no script with it. The markasjunk plugin's buttons move a message into
Junk and back; the mail store learns from the move (IMAPSieve, as in test_learning.py).

People of an agency the module creates (deleted afterwards), never the demo accounts; each
person logs in once for the module. Browser fixtures (Debian's chromium, the stack's CA,
screenshots of failing steps) come from test_webmail_browser.py.
"""

from __future__ import annotations

import email.policy
import random
import re
import uuid
from email.parser import BytesParser

import clients
import pytest
import yaml
from conftest import PROJECT_DIR, imap_fetch, make_message
from test_learning import WORDS, append, changes_to, learned, uid_of
from test_webmail_browser import Person, browser, browser_home, webmail_url  # noqa: F401 (fixtures)

OUTSIDER = "van.thu@ubnd.example.org"
OUTSIDE_TARGET = "someone@outside.example"
# What the webmail says: Roundcube's and the project's vi_VN texts
# (roles/webmail/files/var/lib/roundcube/plugins/govmail_filters/{localization,l10n/*}/vi_VN.inc)
VACATION = "Trả lời tự động khi vắng mặt"
FORWARDING = "Chuyển tiếp thư"
FILTERS = "Bộ lọc"
VACATION_SAVED = "Đã lưu thiết lập trả lời tự động khi vắng mặt."
FORWARD_SAVED = "Đã lưu thiết lập chuyển tiếp thư."
REFUSED = (
    "Không lưu được: không được tự động chuyển tiếp thư tới {address}. Theo quy định, thư chỉ được tự động"
    " chuyển tiếp tới hộp thư công vụ của cơ quan nhà nước: {allowed}."
)
REPORTED_JUNK = "Đã báo thư rác"
REPORTED_NOT_JUNK = "Đã báo không phải thư rác"


def refusal(domain: str, address: str) -> str:
    """The refusal naming the address and the rule: the own domain and the allowed suffixes, read
    from the one place they are defined (roles/govmail/defaults/main.yml)."""
    facts = yaml.safe_load((PROJECT_DIR / "roles/govmail/defaults/main.yml").read_text())
    allowed = ", ".join([domain, *(f"*{suffix}" for suffix in facts["govmail_forward_allowed_suffixes"])])
    return REFUSED.format(address=address, allowed=allowed)


@pytest.fixture(scope="module")
def staff(module_agency):
    """Three people of one agency with passwords of their own: who goes on leave, who forwards,
    and their colleague."""
    agency = module_agency("Phòng Thử Bộ Lọc", "bl")
    names = {"away": "Đỗ Thị Hà", "forwarder": "Vũ Minh Khoa", "colleague": "Lý Thị Mai"}
    return {role: agency.person(name, password=f"Mat-Khau-{uuid.uuid4().hex[:8]}-A1!") for role, name in names.items()}


@pytest.fixture(scope="module")
def logged_in(browser, webmail_url):  # noqa: F811 (test_webmail_browser's fixtures)
    """``logged_in(account)``: that person's tab, logged in once for the module."""
    tabs: dict[str, Person] = {}

    def tab(account: dict) -> Person:
        if account["address"] not in tabs:
            tabs[account["address"]] = Person(browser, webmail_url, account, "test_webmail_filters")
            tabs[account["address"]].log_in()
        return tabs[account["address"]]

    yield tab
    for one in tabs.values():
        one.close()


@pytest.fixture
def tab(logged_in, request):
    """``tab(account)``: the person's logged-in tab; screenshots carry this test's name."""

    def get(account: dict) -> Person:
        one = logged_in(account)
        one.test_name = request.node.name
        return one

    return get


@pytest.fixture
def sieve_scripts(address, hostname, port, tls):
    """``sieve_scripts(account)``: {name: text} of the person's scripts, over ManageSieve."""

    def read(account: dict) -> dict[str, str]:
        client = clients.ManageSieve(address, hostname, port("managesieve"))
        try:
            assert client.starttls(tls).upper().startswith("OK")
            assert client.authenticate(account["address"], account["password"]).upper().startswith("OK")
            return {name: client.get_script(name) for name in client.list_scripts()}
        finally:
            client.close()

    return read


def open_settings(me: Person, label: str, action: str):
    """Settings → the section with this Vietnamese label, as a person clicks; the page."""
    with me.step(f"open-{action}"):
        if "_task=settings" not in me.page.url:  # the current task's button is disabled
            me.page.click("#taskmenu a.settings")
            me.page.wait_for_load_state("networkidle")
        me.page.locator("#settings-menu a", has_text=label).first.click()
        me.page.wait_for_url(re.compile(rf"_action={re.escape(action)}"))
        me.page.wait_for_load_state("networkidle")
        return me.page


def shown(me: Person, text: str, name: str) -> None:
    """Waits until the webmail's message area shows exactly this text."""
    with me.step(name):
        me.page.locator("#messagestack div", has_text=text).first.wait_for()
        said = [t.strip() for t in me.page.locator("#messagestack div").all_inner_texts()]
        assert text in said, said


def save_forwarding(me: Person, target: str) -> None:
    page = open_settings(me, FORWARDING, "plugin.managesieve-forward")
    with me.step("fill-forwarding"):
        page.select_option("#forward_action", "redirect")
        page.fill("#action_target", target)
        page.select_option("#forward_status", "on")
        page.locator(".formbuttons .submit").first.click()


def test_a_vacation_reply_set_in_the_webmail_answers_a_colleague(tab, staff, domain, submission, imaps):
    away, colleague = staff["away"], staff["colleague"]
    token = uuid.uuid4().hex[:10]
    me = tab(away)
    page = open_settings(me, VACATION, "plugin.managesieve-vacation")
    with me.step("fill-vacation"):
        page.fill("#vacation_subject", f"Vắng mặt {token}")
        page.fill("#vacation_reason", "Tôi nghỉ phép đến hết tuần. Việc gấp xin liên hệ văn thư.")
        page.select_option("#vacation_status", "on")
        page.locator(".formbuttons .submit").first.click()
    shown(me, VACATION_SAVED, "vacation-saved")

    # the colleague writes over SMTP submission; the reply comes back to her INBOX
    submission.login(colleague["address"], colleague["password"])
    message = make_message(colleague["address"], away["address"], f"Họp giao ban {token}", "Chị dự họp thứ Hai nhé.\n")
    assert submission.send_message(message) == {}
    inbox = imaps(colleague)

    def reply():
        inbox.select("INBOX", readonly=True)
        _, found = inbox.search(None, "SUBJECT", token, "FROM", away["address"])
        ids = found[0].split()
        return inbox.fetch(ids[-1], "(BODY.PEEK[])")[1][0][1] if ids else None

    raw = clients.wait_for(reply, timeout=90, what="the vacation reply in the colleague's INBOX")
    answer = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert answer["Subject"] == f"Vắng mặt {token}"
    assert answer["In-Reply-To"] == message["Message-ID"]
    assert answer["Auto-Submitted"].startswith("auto-replied")  # RFC 3834, as Pigeonhole marks it
    assert "Tôi nghỉ phép đến hết tuần." in answer.get_body(("plain",)).get_content()


def test_the_forwarding_form_refuses_an_address_outside_government(tab, staff, domain, sieve_scripts):
    forwarder = staff["forwarder"]
    me = tab(forwarder)
    save_forwarding(me, OUTSIDE_TARGET)
    shown(me, refusal(domain, OUTSIDE_TARGET), "forwarding-refused")
    # nothing reached the server: no script of the person mentions the address
    scripts = sieve_scripts(forwarder)
    assert not [name for name, text in scripts.items() if OUTSIDE_TARGET in text], scripts


def test_a_filter_that_redirects_outside_government_cannot_be_saved(tab, staff, domain, sieve_scripts):
    forwarder = staff["forwarder"]
    me = tab(forwarder)
    page = open_settings(me, FILTERS, "plugin.managesieve")
    with me.step("new-filter"):
        page.locator("#layout-content .toolbar a.create").first.click()
        form = page.frame_locator("#filter-box")
        form.locator("#_name").fill("Chuyển thư ra ngoài")
        form.locator("#_join").select_option("any")  # every message: no rule to fill in
        form.locator("#action_type0").select_option("redirect")
        form.locator("#action_target0").fill(OUTSIDE_TARGET)
        form.locator(".formbuttons .submit").first.click()
    shown(me, refusal(domain, OUTSIDE_TARGET), "filter-refused")
    scripts = sieve_scripts(forwarder)
    assert not [name for name, text in scripts.items() if OUTSIDE_TARGET in text], scripts


def test_forwarding_to_a_colleague_is_saved_and_forwards_mail(tab, staff, smtp, imaps, sieve_scripts):
    forwarder, colleague = staff["forwarder"], staff["colleague"]
    me = tab(forwarder)
    save_forwarding(me, colleague["address"])
    shown(me, FORWARD_SAVED, "forwarding-saved")
    scripts = sieve_scripts(forwarder)
    assert [name for name, text in scripts.items() if f'redirect "{colleague["address"]}"' in text], scripts

    smtp.ehlo("mx.example.org")
    message = make_message(OUTSIDER, forwarder["address"], "Công văn chuyển tiếp", "Kính gửi anh,\ncông văn số 12.\n")
    assert smtp.send_message(message) == {}
    inbox = imaps(colleague)
    assert clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), timeout=90, what="the forwarded copy")


def select_in_list(me: Person, folder: str, subject: str) -> None:
    """Opens the folder in the folder list and clicks the message's row."""
    with me.step(f"select-in-{folder}"):
        if "_task=mail" not in me.page.url:
            me.page.click("#taskmenu a.mail")
            me.page.wait_for_load_state("networkidle")
        me.page.locator(f"#mailboxlist li.{folder.lower()} a").first.click()
        me.page.wait_for_load_state("networkidle")
        row = me.page.locator("#messagelist tr", has_text=subject).first
        row.wait_for()
        row.click()
        # Roundcube ignores commands while the preview loads (rcmail.busy): wait until it shows
        me.page.frame_locator("#messagecontframe").locator(".subject", has_text=subject).first.wait_for()
        me.page.wait_for_load_state("networkidle")


def in_folder(client, folder: str, raw: bytes) -> bool:
    """Whether the message (by its Message-ID) is in the folder, over IMAP."""
    try:
        return bool(uid_of(client, folder, raw))
    except AssertionError:
        return False


def test_mark_as_junk_moves_the_message_into_junk_and_not_junk_back(tab, staff, imaps, mail_host):
    away = staff["away"]
    subject = f"Bản tin tuần {uuid.uuid4().hex[:10]}"
    # words Bayes can learn (at least 11 tokens) that it has never seen (as test_learning's newsletter)
    words = [random.choice(WORDS) for _ in range(60)] + [uuid.uuid4().hex for _ in range(5)]
    raw = make_message(OUTSIDER, away["address"], subject, " ".join(words) + "\n").as_bytes()
    reader = imaps(away)
    append(reader, "INBOX", raw)  # the message a person received (no SMTP in the way)
    me = tab(away)

    def mark(folder: str, button: str, answer: str, destination: str) -> None:
        """Select the message in ``folder``, click the toolbar's ``button``, see ``answer``, and
        find the message (over IMAP) in ``destination`` and no longer in ``folder``."""
        select_in_list(me, folder, subject)
        with me.step(f"mark-{button}"):
            # the button works once the selection enabled its command (Roundcube drops the class)
            me.page.locator(f"#toolbar-menu a.{button}:not(.disabled)").first.click()
        shown(me, answer, f"reported-{button}")
        # the webmail moves it after the plugin's answer
        clients.wait_for(
            lambda: in_folder(reader, destination, raw) and not in_folder(reader, folder, raw),
            what=f"the message moved to {destination}",
        )

    before = learned(mail_host)
    mark("INBOX", "junk", REPORTED_JUNK, "Junk")
    as_spam = changes_to(lambda: learned(mail_host), before, {"BAYES_SPAM": 1, "BAYES_HAM": 0})
    mark("Junk", "notjunk", REPORTED_NOT_JUNK, "INBOX")
    changes_to(lambda: learned(mail_host), as_spam, {"BAYES_SPAM": -1, "BAYES_HAM": 1})

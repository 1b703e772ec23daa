"""Passwords in the webmail, in a real browser (issue 12, REQUIREMENTS P1, P2).

The owner changes the password in Settings → Mật khẩu: the change is an LDAP Password Modify
as the owner with the password-policy control, so the directory's own reason for a refusal is
shown in Vietnamese (too weak, too short, reused), and after a change IMAP, POP3 and SMTP take
the new password. An account fresh from ``govmail account add`` (its password set by an
administrator) is taken to a change form at its first webmail login and reaches the mailbox
only after a valid change. Every test uses people of an agency it creates (deleted afterwards),
never the demo accounts. Browser fixtures (Debian's chromium, the stack's CA, screenshots of
failing steps) come from test_webmail_browser.py.
"""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import smtplib
import uuid

import clients
import ldap3
import pytest
from conftest import PROJECT_DIR, imap_login_ok
from test_webmail_browser import Person, browser, browser_home, person, webmail_url  # noqa: F401 (fixtures)

from govmail.inventory import Site

# What the webmail says (roles/webmail/files/var/lib/roundcube/plugins/govmail_password/localization/vi_VN.inc)
REFUSED = "Máy chủ danh bạ không chấp nhận mật khẩu mới:"  # the password plugin's prefix in Settings
SAID = {
    "quality": "Mật khẩu mới chưa đủ mạnh: phải có đủ các loại ký tự nêu dưới đây.",
    "tooshort": "Mật khẩu mới quá ngắn: phải có ít nhất {n} ký tự.",
    "history": "Mật khẩu mới trùng với một mật khẩu đã dùng gần đây: hãy chọn mật khẩu khác.",
    "mustchange": "Mật khẩu của bạn do quản trị viên đặt: hãy đổi sang mật khẩu của riêng bạn trước khi vào hộp thư.",
}
SAVED = "Đã lưu thành công"  # Roundcube's own vi_VN "successfullysaved"


@pytest.fixture(scope="module")
def policy():
    """The policy profile the stack was converged with (govmail_policy, through Ansible)."""
    return Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR).value("govmail_policy")


@pytest.fixture
def tab(person):  # noqa: F811 (test_webmail_browser's fixture, under this module's name)
    """``tab(account)``: a browser tab (context) of that person's own, closed after the test."""
    return person


def strong() -> str:
    """A password the policy accepts and no earlier run used."""
    return f"Mat-Khau-{uuid.uuid4().hex[:8]}-A1!"


def make_owner(new_agency, ldaps_server, name: str) -> dict:
    """A person of a new agency whose password is the owner's own (changed once from the
    administrator's initial one, as ``govmail account passwd`` does): ``{"address", "password",
    "dn", "earlier"}`` where ``earlier`` is the initial password, now in the history."""
    document = new_agency("Phòng Thử Mật Khẩu", "mk").person(name)
    initial, own = document["initial_password"], strong()
    conn = ldap3.Connection(ldaps_server, user=document["dn"], password=initial, auto_bind=True)
    assert conn.extend.standard.modify_password(document["dn"], initial, own), conn.result
    conn.unbind()
    return {"address": document["address"], "password": own, "dn": document["dn"], "earlier": initial}


@pytest.fixture
def owner(new_agency, ldaps_server):
    return make_owner(new_agency, ldaps_server, "Phạm Minh Tuấn")


@pytest.fixture
def english_owner(new_agency, ldaps_server):
    """Another name: Roundcube keeps a user's settings (the language) by address, after the
    directory entry is gone, and a later namesake would inherit them."""
    return make_owner(new_agency, ldaps_server, "Đinh Quang Huy")


def open_password_settings(me: Person):
    """Settings → Mật khẩu, as a person clicks (the password plugin's page replaces the settings
    page: no frame); the page."""
    with me.step("open-password-settings"):
        if "_task=settings" not in me.page.url:
            me.page.click("#taskmenu a.settings")
            me.page.wait_for_load_state("networkidle")
        me.page.click("#settings-menu li.password a")
        me.page.wait_for_url(re.compile(r"_action=plugin\.password"))
        me.page.locator("#newpasswd").wait_for()
        return me.page


def submit_change(me: Person, frame, current: str, new: str) -> str:
    """Fill the Settings form, save, and return the message the webmail shows."""
    with me.step("submit-change"):
        frame.locator("#curpasswd").fill(current)
        frame.locator("#newpasswd").fill(new)
        frame.locator("#confpasswd").fill(new)
        frame.locator(".formbuttons .submit").first.click()
        message = me.page.locator("#messagestack div").last
        message.wait_for()
        return message.inner_text().strip()


# each character class a profile can require -> its rule on the forms
CLASS_RULES = {
    "lower": "Có chữ thường (a-z)",
    "upper": "Có chữ hoa (A-Z)",
    "digit": "Có chữ số (0-9)",
    "special": "Có ký tự đặc biệt: {special}",
}


def policy_rules(policy) -> list[str]:
    """The rules the forms must list for this profile, in the profile's order."""
    return [
        f"Ít nhất {policy['password_min_length_user']} ký tự",
        *(
            CLASS_RULES[c].format(special=policy["password_special_characters"])
            for c in policy["password_required_classes"]
        ),
        "Không trùng các mật khẩu đã dùng gần đây",
    ]


def test_the_password_form_shows_the_rules_of_the_policy_profile(tab, owner, policy):
    me = tab(owner)
    me.log_in()
    frame = open_password_settings(me)
    with me.step("rules"):
        assert [li.strip() for li in frame.locator("#ruleslist li").all_inner_texts()] == policy_rules(policy)


WEAK = {
    "no-special-character": ("KhongCoKyTu123", "quality"),
    "no-upper-case": ("khongcohoa1!x", "quality"),
    "too-short": ("Ab1!xyz", "tooshort"),
}


@pytest.mark.parametrize("case", WEAK, ids=list(WEAK))
def test_a_weak_password_is_refused_with_the_policys_vietnamese_reason(tab, owner, policy, login_ok, case):
    weak, reason = WEAK[case]
    me = tab(owner)
    me.log_in()
    said = submit_change(me, open_password_settings(me), owner["password"], weak)
    assert said == f"{REFUSED} {SAID[reason].format(n=policy['password_min_length_user'])}"
    assert login_ok(owner["address"], owner["password"]) and not login_ok(owner["address"], weak)


def test_a_person_who_chose_english_is_told_the_reason_in_english(tab, english_owner, login_ok):
    me = tab(english_owner)
    me.log_in()
    with me.step("choose-english"):  # Settings → Sở thích → Giao diện người dùng → Ngôn ngữ
        me.page.click("#taskmenu a.settings")
        me.page.wait_for_load_state("networkidle")
        me.page.locator("#sections-table tr.general").first.click()
        frame = me.page.frame_locator("#preferences-frame")
        frame.locator("select[name=_language]").select_option("en_US")
        frame.locator(".formbuttons .submit").first.click()
        me.page.wait_for_load_state("networkidle")
    said = submit_change(me, open_password_settings(me), english_owner["password"], "khongcohoa1!x")
    assert said == (
        "The directory refused the new password: "
        "The new password is too weak: it must contain every kind of character listed below."
    )
    assert login_ok(english_owner["address"], english_owner["password"])


def test_a_reused_password_is_refused_with_its_own_message(tab, owner, login_ok):
    me = tab(owner)
    me.log_in()
    said = submit_change(me, open_password_settings(me), owner["password"], owner["earlier"])
    assert said == f"{REFUSED} {SAID['history']}"
    assert login_ok(owner["address"], owner["password"])


def test_a_strong_password_is_saved_and_imap_pop3_and_smtp_accept_it(
    tab, owner, login_ok, address, hostname, port, tls
):
    new = strong()
    me = tab(owner)
    me.log_in()
    assert submit_change(me, open_password_settings(me), owner["password"], new) == SAVED
    assert login_ok(owner["address"], new)
    assert not login_ok(owner["address"], owner["password"])
    pop3 = clients.POP3_SSL(address, hostname, port("pop3s"), tls)
    try:
        pop3.user(owner["address"])
        assert pop3.pass_(new).startswith(b"+OK")
    finally:
        with contextlib.suppress(poplib.error_proto, OSError):
            pop3.quit()
    submission = clients.SMTP_SSL(address, hostname, port("submissions"), tls)
    try:
        submission.ehlo("client.example")
        assert submission.login(owner["address"], new)[0] == 235
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            submission.quit()


def test_an_account_fresh_from_account_add_is_sent_to_the_change_form_first(
    tab, new_agency, policy, address, hostname, port, tls
):
    document = new_agency("Phòng Thử Đổi Mật Khẩu", "dm").person("Vũ Thị Ngọc Ánh")
    fresh = {"address": document["address"], "password": document["initial_password"]}
    me = tab(fresh)
    page = me.page
    with me.step("log-in-with-the-administrators-password"):
        page.goto(me.url)
        page.fill("#rcmloginuser", fresh["address"])
        page.fill("#rcmloginpwd", fresh["password"])
        page.click("#rcmloginsubmit")
        page.locator("#govmail-password-reason").wait_for()
    with me.step("change-form-instead-of-the-mailbox"):
        assert page.locator("#govmail-password-reason").inner_text().strip() == SAID["mustchange"]
        assert page.locator("#mailboxlist").count() == 0
        rules = [li.strip() for li in page.locator("#govmail-password-rules li").all_inner_texts()]
        assert rules == policy_rules(policy)
    # IMAP still refuses the administrator's password: the webmail did not log in behind the form
    assert not imap_login_ok(address, hostname, port, tls, fresh["address"], fresh["password"])

    with me.step("a-weak-new-password-is-refused-on-the-form"):
        page.fill("#rcmloginpwd", fresh["password"])
        page.fill("#govmail-newpass", "khongcohoa1!x")
        page.fill("#govmail-confpass", "khongcohoa1!x")
        page.click("#rcmloginsubmit")
        page.wait_for_load_state("load")
        page.locator("#govmail-password-reason", has_text="chưa đủ mạnh").wait_for()
        assert page.locator("#govmail-password-reason").inner_text().strip() == SAID["quality"]

    new = strong()
    with me.step("a-strong-new-password-opens-the-mailbox"):
        page.fill("#rcmloginpwd", fresh["password"])
        page.fill("#govmail-newpass", new)
        page.fill("#govmail-confpass", new)
        page.click("#rcmloginsubmit")
        page.wait_for_url(re.compile(r"_task=mail"))
        page.wait_for_selector("#mailboxlist li.inbox")
    assert imap_login_ok(address, hostname, port, tls, fresh["address"], new)
    with pytest.raises(imaplib.IMAP4.error):
        clients.IMAP_SSL(address, hostname, port("imaps"), tls).login(fresh["address"], fresh["password"])

"""Forwarding only inside government (REQUIREMENTS C5; issue 13).

A Sieve ``redirect`` (here uploaded over ManageSieve, as the webmail's filters are) leaves the mail
store only through Postfix's forwarding listener (roles/postfix, master.cf; Dovecot's
submission_host), which accepts a redirect only to the appliance's own domain and the domains
ending in one of govmail_forward_allowed_suffixes. A refused redirect is never sent: the message
stays in the user's INBOX (Pigeonhole's implicit keep after a failed action) and the user's Sieve
log says why.
"""

from __future__ import annotations

import json
import shlex
import uuid

import clients
import pytest
import yaml
from conftest import PROJECT_DIR, imap_fetch, make_message

OUTSIDER = "van.thu@ubnd.example.org"
OUTSIDE_TARGET = "someone@outside.example"
# Another government domain whose server is ours to read: the lab's inventory routes it
# (postfix_transport_routes, inventories/lab/group_vars/all/vars.yml) to this address on the mail
# host's loopback, where the test starts a receiver; nothing outside the appliance is ever asked.
PARTNER_TARGET = "vanthu@doitac.hue.gov.vn"
PARTNER_SERVER = "127.0.0.1:2527"
SCRIPT_NAME = "govmail-test-forward"
# The refusal of forward_recipients (roles/postfix/templates/etc/postfix/forward_recipients.j2).
REASON = (
    "Forwarding outside government mail is not allowed"
    " / Khong duoc tu dong chuyen tiep thu ra ngoai he thong thu cong vu"
)


def shared_facts() -> dict:
    """roles/govmail/defaults/main.yml: the one place of govmail_forward_port and the suffixes."""
    return yaml.safe_load((PROJECT_DIR / "roles/govmail/defaults/main.yml").read_text())


@pytest.fixture
def forwarder(personal):
    """The mailbox that forwards: the last demo person (other tests read the first two)."""
    return personal[-1]


@pytest.fixture
def sieve(address, hostname, port, tls):
    """Uploads and activates a Sieve script for an account: ``sieve(account, text)``; removed after."""
    used = []

    def session(account):
        client = clients.ManageSieve(address, hostname, port("managesieve"))
        assert client.starttls(tls).upper().startswith("OK")
        assert client.authenticate(account["address"], account["password"]).upper().startswith("OK")
        return client

    def activate(account, text: str):
        client = session(account)
        used.append(account)
        try:
            assert client.put_script(SCRIPT_NAME, text).upper().startswith("OK")
            assert client.set_active(SCRIPT_NAME).upper().startswith("OK")
        finally:
            client.close()

    yield activate
    for account in used:
        client = session(account)
        try:
            client.set_active("")
            client.delete_script(SCRIPT_NAME)
        finally:
            client.close()


def sieve_log(mail_host, domain: str, account: dict) -> str:
    """The user's Sieve log (~/.dovecot.sieve.log: Pigeonhole's default beside the active script)."""
    local = account["address"].split("@")[0]
    path = f"{shared_facts()['govmail_vmail_dir']}/{domain}/{local}/.dovecot.sieve.log"
    return mail_host.run(f"cat {shlex.quote(path)} 2>/dev/null").stdout


def deliver(smtp, recipient: str, subject: str):
    """A message from another server to ``recipient`` on port 25; returns it."""
    smtp.ehlo("mx.example.org")
    message = make_message(OUTSIDER, recipient, subject, "Kính gửi anh chị,\nthư này để thử chuyển tiếp.\n")
    smtp.send_message(message)
    return message


def test_a_redirect_outside_government_is_not_sent_and_the_message_stays_in_inbox(
    smtp, imaps, sieve, mail_host, domain, forwarder
):
    sieve(forwarder, f'redirect "{OUTSIDE_TARGET}";\n')
    before = len(sieve_log(mail_host, domain, forwarder))
    message = deliver(smtp, forwarder["address"], "Chuyển tiếp ra ngoài")

    inbox = imaps(forwarder)
    assert clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="the message in INBOX")
    # the reason is in the user's Sieve log: the forwarding listener's refusal, naming the target
    log = clients.wait_for(lambda: sieve_log(mail_host, domain, forwarder)[before:], what="a new Sieve log entry")
    assert f"failed to redirect message to <{OUTSIDE_TARGET}>" in log
    assert f"550 5.7.1 <{OUTSIDE_TARGET}>: Recipient address rejected: {REASON}" in log
    # and nothing waits in Postfix's queue for it either
    queue = mail_host.run("postqueue -j").stdout
    assert OUTSIDE_TARGET not in queue


def test_a_redirect_to_a_colleague_is_delivered(smtp, imaps, sieve, forwarder, alice):
    sieve(forwarder, f'redirect "{alice["address"]}";\n')
    message = deliver(smtp, forwarder["address"], "Chuyển tiếp cho đồng nghiệp")

    colleague = imaps(alice)
    assert clients.wait_for(lambda: imap_fetch(colleague, message["Message-ID"]), what="the redirect in her INBOX")
    # a plain redirect (no :copy) keeps no copy in the forwarder's INBOX
    assert imap_fetch(imaps(forwarder), message["Message-ID"]) is None


@pytest.fixture
def partner_server(mail_host):
    """Postfix's smtp-sink as doitac.hue.gov.vn's mail server: accepts any mail (no STARTTLS) and
    appends each message it receives to a file (smtp-sink(1) ``-D``); yields a reader of that file."""
    unit = f"govmail-test-partner-{uuid.uuid4().hex[:8]}"
    dump = f"/tmp/{unit}.dump"
    started = mail_host.run(
        f"systemd-run --unit={unit} --collect /usr/sbin/smtp-sink -u postfix -D {dump} -h mx.doitac.hue.gov.vn "
        f"{PARTNER_SERVER} 16"
    )
    assert started.rc == 0, started.stderr
    port = PARTNER_SERVER.rsplit(":", 1)[1]
    clients.wait_for(lambda: mail_host.run(f"ss -ltn 'sport = :{port}' | grep -q LISTEN").rc == 0,
                     timeout=20, what=f"smtp-sink listening on {PARTNER_SERVER}")  # fmt: skip
    yield lambda: mail_host.run(f"cat {dump} 2>/dev/null").stdout_bytes
    mail_host.run(f"systemctl stop {unit}; rm -f {dump}")


def test_a_redirect_to_another_government_domain_arrives_there_with_the_original_body(
    smtp, imaps, sieve, forwarder, partner_server
):
    sieve(forwarder, f'redirect "{PARTNER_TARGET}";\n')
    message = make_message(
        OUTSIDER, forwarder["address"], "Chuyển tiếp sang tỉnh bạn",
        "Kính gửi Sở Khoa học và Công nghệ tỉnh Huế,\nxin chuyển công văn số 15/UBND-KT.\n" + "Nội dung. " * 200,
    )  # fmt: skip
    sent = message.as_bytes()  # policy SMTP: CRLF line ends, as on the wire
    smtp.ehlo("mx.example.org")
    smtp.sendmail(OUTSIDER, [forwarder["address"]], sent)

    received = clients.wait_for(
        lambda: message["Message-ID"].encode() in partner_server() and partner_server(),
        timeout=60, what="the redirect at the partner domain's server",
    )  # fmt: skip
    # the envelope names the partner address; the message the partner got ends with the very bytes
    # that were sent (servers on the way only add headers on top: Received, the filter's results)
    assert f"<{PARTNER_TARGET}>".encode() in received
    body = sent.split(b"\r\n\r\n", 1)[1]
    assert received.replace(b"\r\n", b"\n").rstrip(b"\n").endswith(body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    assert sent.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n") in received.replace(b"\r\n", b"\n")
    # a plain redirect keeps no copy with the forwarder
    assert imap_fetch(imaps(forwarder), message["Message-ID"]) is None


# What the forwarding listener answers at RCPT for a redirect (sender: a mailbox of the appliance)
# and for the null sender (vacation replies, RFC 5230, answer whoever wrote).
RCPT_CASES = {
    "another government domain": ("{mailbox}", "vanthu@hanoi.gov.vn", 250),
    "the own domain": ("{mailbox}", "{mailbox}", 250),
    "outside government": ("{mailbox}", OUTSIDE_TARGET, 550),
    "a look-alike suffix": ("{mailbox}", "vanthu@fakegov.vn", 550),
    "gov.vn inside a foreign domain": ("{mailbox}", "vanthu@gov.vn.outside.example", 550),
    "a vacation reply outside": ("", OUTSIDE_TARGET, 250),
}

PROBE = """
import json, smtplib, sys
sender, recipient, port = sys.argv[1:]
client = smtplib.SMTP("127.0.0.1", int(port), local_hostname="localhost")
client.ehlo()
client.mail(sender)
code, text = client.rcpt(recipient)
client.rset()
client.quit()
print(json.dumps([code, text.decode()]))
"""


@pytest.mark.parametrize("case", RCPT_CASES.values(), ids=list(RCPT_CASES))
def test_the_forwarding_listener_accepts_only_government_recipients(mail_host, forwarder, case):
    sender, recipient, expected = (
        value.format(mailbox=forwarder["address"]) if isinstance(value, str) else value for value in case
    )
    port = shared_facts()["govmail_forward_port"]
    probe = mail_host.run(f"python3 -c {shlex.quote(PROBE)} {shlex.quote(sender)} {shlex.quote(recipient)} {port}")
    assert probe.rc == 0, probe.stderr
    code, text = json.loads(probe.stdout)
    assert code == expected, text
    if expected == 550:
        assert text == f"5.7.1 <{recipient}>: Recipient address rejected: {REASON}"


def test_a_script_that_would_mail_a_notification_anywhere_is_refused_at_upload(address, hostname, port, tls, forwarder):
    # enotify's mailto: could carry a message's text to any address: the extension is off (C5)
    client = clients.ManageSieve(address, hostname, port("managesieve"))
    try:
        assert client.starttls(tls).upper().startswith("OK")
        assert client.authenticate(forwarder["address"], forwarder["password"]).upper().startswith("OK")
        script = f'require "enotify";\nnotify :message "${{subject}}" "mailto:{OUTSIDE_TARGET}";\n'
        answer = client.put_script(SCRIPT_NAME, script)
        assert answer.upper().startswith("NO") and "enotify" in answer, answer
    finally:
        client.close()

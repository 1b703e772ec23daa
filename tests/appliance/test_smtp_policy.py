"""What the SMTP doors refuse, with the codes a sending server or client sees."""

from __future__ import annotations

import random
import smtplib

import clients
import pytest
from conftest import PROJECT_DIR, imap_fetch, make_message, parse

from govmail.inventory import Site


def test_relaying_to_an_external_domain_is_refused_on_port_25(smtp):
    smtp.ehlo("attacker.example")
    smtp.mail("x@attacker.example")
    code, _ = smtp.rcpt("victim@external.example")
    assert code == 554


def test_unknown_local_recipient_is_refused_with_550(smtp, domain):
    smtp.ehlo("mx.example.org")
    smtp.mail("someone@example.org")
    code, text = smtp.rcpt(f"khongtontai@{domain}")
    assert code == 550, text


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_no_auth_is_offered_before_starttls(service, address, hostname, port):
    client = clients.SMTP(address, hostname, port(service))
    try:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGZvbwBiYXI=")
        assert code in (503, 530, 538)
    finally:
        client.close()


def test_port_25_offers_no_auth_even_after_starttls(smtp, tls):
    smtp.ehlo("mx.example.org")
    smtp.starttls(context=tls)
    smtp.ehlo("mx.example.org")
    assert not smtp.has_extn("auth")


def test_submission_refuses_mail_before_authentication(submission, alice, bob):
    submission.mail(alice["address"])
    code, _ = submission.rcpt(bob["address"])
    assert code >= 500


def test_wrong_password_is_refused(submission, alice):
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        submission.login(alice["address"], alice["password"] + "x")
    assert refused.value.smtp_code == 535


def test_sending_as_another_users_address_is_refused(submission, alice, bob):
    submission.login(alice["address"], alice["password"])
    submission.mail(bob["address"])
    code, text = submission.rcpt(alice["address"])
    assert code == 553, text
    assert b"not owned by user" in text


def test_unauthenticated_sender_claiming_the_appliance_domain_is_refused_on_port_25(smtp, bob, domain):
    smtp.ehlo("mx.example.org")
    smtp.mail(f"giamdoc@{domain}")
    code, text = smtp.rcpt(bob["address"])
    assert code == 554, text
    assert b"requires authentication" in text


def test_authenticated_user_may_relay_to_an_external_domain(submission, alice):
    submission.login(alice["address"], alice["password"])
    submission.mail(alice["address"])
    code, _ = submission.rcpt("doitac@external.example")
    assert code == 250
    submission.rset()


def test_fifty_megabytes_of_attachments_are_delivered_byte_for_byte(submission, imaps, alice, bob):
    """M7: a person sends 50 MB of attachments (two scanned files); the recipient gets them intact."""
    message = make_message(alice["address"], bob["address"], "Hồ sơ dự án (50 MB)", "Gửi anh hồ sơ đính kèm.\n")
    for part in range(2):
        data = random.Random(part).randbytes(25 * 1024 * 1024)
        message.add_attachment(data, maintype="application", subtype="pdf", filename=f"ho-so-{part + 1}.pdf")
    sent = message.as_bytes()
    submission.login(alice["address"], alice["password"])
    assert submission.send_message(message) == {}

    inbox = imaps(bob)
    stored = clients.wait_for(lambda: imap_fetch(inbox, message["Message-ID"]), what="50 MB over IMAPS", timeout=300)
    # the servers only add trace headers on top: the message as sent is there, byte for byte
    assert stored.endswith(sent)
    attachments = [part.get_content() for part in parse(stored).iter_attachments()]
    assert attachments == [random.Random(part).randbytes(25 * 1024 * 1024) for part in range(2)]


@pytest.mark.parametrize("local_part", ["postmaster", "abuse", "PostMaster"])
def test_the_role_addresses_reach_the_operators_mailbox(local_part, smtp, imaps, creds, domain):
    """RFC 5321 4.5.1 (postmaster) and RFC 2142 (abuse): accepted, delivered to the operators."""
    site = Site(PROJECT_DIR / "inventories" / "lab", PROJECT_DIR)
    operators = str(site.value("govmail_operators_address")).lower()
    account = next(a for a in creds["accounts"] if a["address"].lower() == operators)
    message = make_message("nguoi.gui@ubnd.example.org", f"{local_part}@{domain}", "Báo cáo sự cố", "Nội dung.\n")
    smtp.ehlo("mx.example.org")
    assert smtp.send_message(message) == {}
    client = imaps(account)
    assert clients.wait_for(lambda: imap_fetch(client, message["Message-ID"]), timeout=60,
                            what=f"{local_part}@ mail in the operators' mailbox")  # fmt: skip

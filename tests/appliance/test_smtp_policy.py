"""What the SMTP doors refuse, with the codes a sending server or client sees."""

from __future__ import annotations

import smtplib

import clients
import pytest


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


def test_messages_of_70_megabytes_are_announced_as_acceptable(smtp):
    smtp.ehlo("mx.example.org")
    assert int(smtp.esmtp_features["size"]) >= 70 * 1024 * 1024

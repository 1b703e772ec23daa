"""govmail.pki: revocation records of the internal CA, and the CRL and certificate expiry checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from govmail import pki
from govmail.errors import PkiError

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
URL = "http://mail.example.gov.vn/pki/govmail-ca.crl"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture
def ca(tmp_path):
    """A CA directory as the pki role leaves it: ca.key, ca.crt, issued/mail1.crt."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256())
    )  # fmt: skip
    directory = tmp_path / "pki"
    (directory / "issued").mkdir(parents=True)
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    host = (
        x509.CertificateBuilder().subject_name(_name("mail.example.gov.vn")).issuer_name(cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(0x3A5F01)
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=20))
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(URL)], None, None, None)]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "issued" / "mail1.crt").write_bytes(host.public_bytes(serialization.Encoding.PEM))
    return directory, key, cert


def _crl(key, issuer, serials, next_update) -> bytes:
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
    builder = builder.last_update(next_update - dt.timedelta(days=90)).next_update(next_update)
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("text", ["3A5F01", "3a:5f:01", "0x3a5f01", "serial=3A5F01"])
def test_serials_are_read_as_openssl_prints_them(text):
    assert pki.parse_serial(text) == 0x3A5F01


def test_a_word_that_is_neither_host_nor_serial_is_named():
    with pytest.raises(PkiError, match="'mail9' is neither a host of the inventory nor a serial number"):
        pki.parse_serial("mail9")


def test_revoking_a_host_records_its_current_certificate(ca):
    directory, *_ = ca
    record = pki.revoke(directory, "mail1", ["mail1", "backup1"], now=NOW)
    assert record == {
        "serial": "3A5F01", "host": "mail1", "reason": "key_compromise", "revoked_at": "2026-11-29T12:00:00Z",
        "already": False,
    }  # fmt: skip
    stored = json.loads((directory / "revoked.json").read_text())
    entry = {"serial": 0x3A5F01, "host": "mail1", "reason": "key_compromise", "revoked_at": "2026-11-29T12:00:00Z"}
    assert stored == {"revoked": [entry]}
    assert pki.crl_entries(directory) == [
        {"serial_number": 0x3A5F01, "revocation_date": "20261129120000Z", "reason": "key_compromise"}
    ]


def test_revoking_twice_changes_nothing_and_says_so(ca):
    directory, *_ = ca
    pki.revoke(directory, "mail1", ["mail1"], now=NOW)
    again = pki.revoke(directory, "3a:5f:01", ["mail1"], reason="superseded", now=NOW + dt.timedelta(days=1))
    assert again["already"] is True and again["host"] == "mail1" and again["reason"] == "key_compromise"
    assert len(pki.revocations(directory)) == 1


def test_a_serial_the_ca_did_not_record_is_revoked_without_a_host(ca):
    directory, *_ = ca
    assert pki.revoke(directory, "0BEEF0", ["mail1"], reason="superseded", now=NOW)["host"] is None


def test_a_host_without_an_issued_certificate_is_refused(ca):
    directory, *_ = ca
    with pytest.raises(PkiError, match="no record of a certificate issued to backup1"):
        pki.revoke(directory, "backup1", ["mail1", "backup1"])


def test_an_unknown_reason_is_named(ca):
    with pytest.raises(PkiError, match="reason 'stolen' is unknown: use one of key_compromise"):
        pki.revoke(ca[0], "mail1", ["mail1"], reason="stolen")


def test_without_a_ca_nothing_is_recorded(tmp_path):
    with pytest.raises(PkiError, match=r"no internal CA in .*converge the site first"):
        pki.revoke(tmp_path, "mail1", ["mail1"])
    assert not (tmp_path / "revoked.json").exists()


def test_a_damaged_record_is_named(ca):
    (ca[0] / "revoked.json").write_text('{"revoked": [{"serial": "x"}]}')
    with pytest.raises(PkiError, match=r"revoked\.json is not a list of revocations"):
        pki.revocations(ca[0])


@pytest.mark.parametrize(
    ("days", "state"), [(60, "ok"), (29, "expiring"), (-1, "expired")], ids=["60 days", "29 days", "past"]
)
def test_crl_expiry_is_watched_like_a_certificates(ca, days, state):
    directory, key, cert = ca
    crl = _crl(key, cert, [0x3A5F01], NOW + dt.timedelta(days=days))
    status = pki.crl_status(crl, (directory / "ca.crt").read_bytes(), now=NOW)
    assert status["state"] == state
    assert status["days_left"] == pytest.approx(days)
    assert status["revoked"] == ["3A5F01"]
    assert status["issuer"] == "CN=test CA"


def test_a_crl_signed_by_another_key_is_reported(ca):
    directory, _, cert = ca
    crl = _crl(ec.generate_private_key(ec.SECP256R1()), cert, [], NOW + dt.timedelta(days=60))
    assert pki.crl_status(crl, (directory / "ca.crt").read_bytes(), now=NOW)["state"] == "bad-signature"


def test_data_that_is_not_a_crl_is_named():
    with pytest.raises(PkiError, match="not a CRL"):
        pki.crl_status(b"<html>not found</html>")


def test_certificate_status_gives_expiry_and_distribution_point(ca):
    status = pki.certificate_status((ca[0] / "issued" / "mail1.crt").read_bytes(), now=NOW)
    assert status["serial"] == "3A5F01"
    assert status["state"] == "expiring" and status["days_left"] == pytest.approx(20)
    assert status["crl_urls"] == [URL]

"""The internal CA's revocation records, and the CRL and certificate checks an operator relies on.

The internal CA lives on the controller in ``<secrets>/pki`` (the pki role's ``pki_ca_dir``)::

    ca.key, ca.crt        the CA (pki role)
    ca.crl                its CRL, DER (pki role, signed from revoked.json; RFC 5280 section 5)
    issued/<host>.crt     the certificate last issued to each inventory host (pki role)
    revoked.json          {"revoked": [{"serial": int, "host": str | null, "reason": str,
                                        "revoked_at": "YYYY-MM-DDTHH:MM:SSZ"}]}  (this module)

``govmail cert revoke`` records a revocation here (:func:`revoke`), then converges: the pki role
signs the CRL from :func:`crl_entries` (through the ``govmail_revocations`` filter), reissues the
revoked host's certificate and publishes the CRL at ``govmail_crl_url``. :func:`crl_status` and
:func:`certificate_status` are the expiry checks ``govmail check`` calls and the appliance tests
assert. Errors: :class:`PkiError`, one line naming the file or input and what to do.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from .errors import PkiError

REVOKED_FILE = "revoked.json"
ISSUED_DIR = "issued"
# Reasons a host certificate is revoked for (RFC 5280 5.3.1), as the community.crypto.x509_crl
# module names them.
REASONS = ("key_compromise", "superseded", "affiliation_changed", "cessation_of_operation")
# Days before its nextUpdate (a CRL) or notAfter (a certificate) from which a check says "expiring":
# the pki role renews both at a converge within 30 days of the end (pki_renew_days, pki_crl_renew_days).
WARN_DAYS = 30
_HEX_SERIAL = re.compile(r"^(0x)?[0-9a-f]+$")


def ca_dir(secrets_dir: Path | str) -> Path:
    """The internal CA's directory for a site's secrets directory (``<secrets>/pki``)."""
    return Path(secrets_dir) / "pki"


def issued_path(ca: Path | str, host: str) -> Path:
    """Where the pki role keeps the certificate last issued to inventory host ``host``."""
    return Path(ca) / ISSUED_DIR / f"{host}.crt"


def parse_serial(text: str) -> int:
    """A serial number as ``openssl x509 -serial`` prints it (hex; colons and ``0x`` allowed) -> int.

    Raises :class:`PkiError` naming the input when it is not hexadecimal.
    """
    cleaned = text.strip().lower().replace(":", "").removeprefix("serial=")
    if not cleaned or not _HEX_SERIAL.match(cleaned):
        raise PkiError(
            f"{text!r} is neither a host of the inventory nor a serial number: give a host name or the "
            "serial in hex as `openssl x509 -noout -serial` prints it"
        )
    return int(cleaned.removeprefix("0x"), 16)


def serial_hex(serial: int) -> str:
    """``int`` -> upper-case hex with an even number of digits, as OpenSSL prints serials."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def revocations(ca: Path | str) -> list[dict[str, Any]]:
    """The recorded revocations (``revoked.json``; ``[]`` when there is none yet).

    Each is ``{"serial": int, "host": str | None, "reason": str, "revoked_at": ISO 8601 UTC}``.
    Raises :class:`PkiError` when the file is not the document this module writes.
    """
    path = Path(ca) / REVOKED_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot read {path} ({exc}): restore it from the backup of the CA directory") from None
    entries = document.get("revoked") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("serial"), int) and e.get("reason") in REASONS for e in entries
    ):
        raise PkiError(f"{path} is not a list of revocations: restore it from the backup of the CA directory")
    return entries


def crl_entries(ca: Path | str) -> list[dict[str, Any]]:
    """The revocations as ``revoked_certificates`` of community.crypto.x509_crl (the pki role's CRL).

    ``[{"serial_number": int, "revocation_date": "YYYYMMDDHHMMSSZ", "reason": str}]``.
    """
    return [
        {
            "serial_number": entry["serial"],
            "revocation_date": _utc(entry["revoked_at"]).strftime("%Y%m%d%H%M%SZ"),
            "reason": entry["reason"],
        }
        for entry in revocations(ca)
    ]


def issued(ca: Path | str) -> dict[str, x509.Certificate]:
    """Inventory host -> the certificate the internal CA last issued to it (``issued/*.crt``)."""
    found: dict[str, x509.Certificate] = {}
    for path in sorted((Path(ca) / ISSUED_DIR).glob("*.crt")):
        try:
            found[path.stem] = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            raise PkiError(f"{path} is not a PEM certificate: delete it and converge to issue it again") from None
    return found


def revoke(
    ca: Path | str,
    target: str,
    hosts: Iterable[str],
    reason: str = "key_compromise",
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Record the revocation of a host's current certificate (``target`` in ``hosts``) or of a serial.

    Returns ``{"serial": hex, "host": str | None, "reason": str, "revoked_at": ISO, "already": bool}``;
    ``already`` is true when that serial was revoked before (nothing is written then). The caller
    converges afterwards so that the CRL is signed and published and the host gets a new certificate.
    Raises :class:`PkiError` for an unknown reason, a host the CA issued nothing to, a bad serial.
    """
    if reason not in REASONS:
        raise PkiError(f"reason {reason!r} is unknown: use one of {', '.join(REASONS)}")
    ca = Path(ca)
    if not (ca / "ca.crt").is_file():
        raise PkiError(f"no internal CA in {ca}: converge the site first (the pki role creates it)")
    certificates = issued(ca)
    if target in set(hosts):
        if target not in certificates:
            raise PkiError(
                f"the internal CA in {ca} has no record of a certificate issued to {target}: converge "
                "the site first, or revoke by serial number"
            )
        serial, host = certificates[target].serial_number, target
    else:
        serial = parse_serial(target)
        host = next((name for name, cert in certificates.items() if cert.serial_number == serial), None)
    entries = revocations(ca)
    previous = next((entry for entry in entries if entry["serial"] == serial), None)
    if previous is not None:
        return {**previous, "serial": serial_hex(serial), "already": True}
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    entry = {"serial": serial, "host": host, "reason": reason, "revoked_at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    path = ca / REVOKED_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"revoked": [*entries, entry]}, indent=2) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return {**entry, "serial": serial_hex(serial), "already": False}


def _utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _state(days_left: float, warn_days: int) -> str:
    return "expired" if days_left <= 0 else "expiring" if days_left < warn_days else "ok"


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from DER (as published, RFC 5280 4.2.1.13) or PEM bytes; :class:`PkiError` otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise PkiError("the data is not a CRL (neither DER nor PEM): check the URL or the file") from None


def crl_status(
    data: bytes, ca_certificate: bytes | None = None, now: dt.datetime | None = None, warn_days: int = WARN_DAYS
) -> dict[str, Any]:
    """How a CRL stands: the figures ``govmail check`` reports and alarms on.

    ``data``: the CRL (DER or PEM); ``ca_certificate``: the CA's PEM, to check the signature.
    Returns ``{"issuer": str, "last_update": ISO, "next_update": ISO, "days_left": float (days to
    nextUpdate), "state": "ok" | "expiring" | "expired" | "bad-signature", "revoked": [hex serials]}``;
    "expiring" means fewer than ``warn_days`` days left. Raises :class:`PkiError` for data that is
    not a CRL.
    """
    crl = load_crl(data)
    now = now or dt.datetime.now(dt.UTC)
    next_update = crl.next_update_utc
    days_left = (next_update - now).total_seconds() / 86400 if next_update else float("inf")
    state = _state(days_left, warn_days)
    if ca_certificate is not None:
        ca = x509.load_pem_x509_certificate(ca_certificate)
        try:
            valid = crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())
        except InvalidSignature:
            valid = False
        state = state if valid else "bad-signature"
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "last_update": crl.last_update_utc.isoformat(),
        "next_update": next_update.isoformat() if next_update else None,
        "days_left": round(days_left, 2),
        "state": state,
        "revoked": [serial_hex(entry.serial_number) for entry in crl],
    }


def certificate_status(data: bytes, now: dt.datetime | None = None, warn_days: int = WARN_DAYS) -> dict[str, Any]:
    """How a PEM certificate stands, in the same shape as :func:`crl_status`.

    Returns ``{"subject": str, "serial": hex, "not_after": ISO, "days_left": float, "state": "ok" |
    "expiring" | "expired", "crl_urls": [str] (its CRL distribution points)}``.
    Raises :class:`PkiError` for data that is not a PEM certificate.
    """
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PkiError("the data is not a PEM certificate: check the file") from None
    now = now or dt.datetime.now(dt.UTC)
    days_left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        names = [name for point in points for name in (point.full_name or [])]
        urls = [name.value for name in names if isinstance(name, x509.UniformResourceIdentifier)]
    except x509.ExtensionNotFound:
        urls = []
    return {
        "subject": cert.subject.rfc4514_string(),
        "serial": serial_hex(cert.serial_number),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": round(days_left, 2),
        "state": _state(days_left, warn_days),
        "crl_urls": urls,
    }

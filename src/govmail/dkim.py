"""The site's DKIM key: generated once on the controller, kept with the other generated secrets.

One RSA key per domain and selector (RFC 6376 §3.3: rsa-sha256; 2048 bits, RFC 8301 §3.2), in
``<govmail_secrets_dir>/dkim/<domain>.<selector>.key`` (PEM, PKCS#8, mode 0600, directory 0700).
The secrets directory travels in every backup's recovery bundle (govmail.recovery.pack), so the
backups carry the key. roles/filter installs it for Rspamd's ``dkim_signing`` module; its public
half is the DKIM TXT record of :func:`govmail.dns.records` (``<selector>._domainkey.<domain>``).
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import GovmailError

KEY_BITS = 2048
_SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class DkimError(GovmailError):
    """A selector or key that cannot be used (one line naming it)."""


def key_path(secrets_dir: Path | str, domain: str, selector: str) -> Path:
    """Where the key of ``domain`` and ``selector`` lives below ``secrets_dir``; :class:`DkimError`
    for a selector that is not one DNS label (RFC 6376 §3.1)."""
    if not _SELECTOR.match(str(selector)):
        raise DkimError(f"govmail_dkim_selector is {selector!r}: give one DNS label (letters, digits, '-')")
    return Path(secrets_dir) / "dkim" / f"{str(domain).lower().rstrip('.')}.{selector}.key"


def ensure_key(secrets_dir: Path | str, domain: str, selector: str) -> Path:
    """The key's path, generating the key first when it does not exist (never replaced)."""
    path = key_path(secrets_dir, domain, selector)
    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    os.replace(temporary, path)
    return path


def txt_value(path: Path | str) -> str:
    """The DKIM TXT record of the key at ``path``: ``v=DKIM1; k=rsa; p=<base64 of the DER
    SubjectPublicKeyInfo>`` (RFC 6376 §3.6.1). :class:`DkimError` when the file is not a key."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise DkimError(f"the DKIM key {path} cannot be read: {exc}") from None
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"

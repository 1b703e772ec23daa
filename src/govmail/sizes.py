"""Sizes in bytes, written as people and Dovecot write them (``500M``, ``2G``, binary units)."""

from __future__ import annotations

import re

from .errors import AccountError

KIB = 1024
MIB = KIB**2
GIB = KIB**3
TIB = KIB**4
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": TIB, "p": KIB**5}
MAXIMUM_QUOTA = 2**62  # sanity bound; the attribute is an LDAP INTEGER


def parse_size(text: str | int) -> int:
    """Bytes from ``500M``, ``3G``, ``1.5T``, ``3GiB`` (binary units) or a plain byte count.

    The same units as Dovecot's size settings (G = 1024³ bytes), so ``govmail_quota_personal: 2G``
    means the same to the CLI and to Dovecot. Raises :class:`AccountError` (one line) otherwise.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", str(text), re.IGNORECASE)
        if not match or (not match.group(2) and "." in match.group(1)):
            raise AccountError(f"quota {text!r} is not a size: write it like 500M, 3G or 1T (binary units) or in bytes")
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0 or value > MAXIMUM_QUOTA:
        raise AccountError(f"quota {text!r} is out of range: give a size such as 3G")
    return value


def format_size(size: int) -> str:
    """``3221225472`` -> ``3G``; sizes that are not whole units stay in bytes."""
    for suffix, unit in (("T", TIB), ("G", GIB), ("M", MIB)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)

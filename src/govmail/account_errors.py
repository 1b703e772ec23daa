"""Exceptions of the account modules (policy profiles, addresses, passwords).

Kept apart from :mod:`govmail.errors` until the two are merged; each is a
:class:`~govmail.errors.GovmailError`, so the CLI reports it as one line and exits non-zero.
Every message names the bad input (never a password) and says what to do.
"""

from __future__ import annotations

from .errors import GovmailError


class PolicyError(GovmailError):
    """A policy profile name or one of its overrides (from the inventory) is unknown or invalid."""


class NamingError(GovmailError):
    """A person's name, an agency abbreviation or a domain cannot make a valid mail address."""


class PasswordError(GovmailError):
    """A password breaks the profile's policy, or a stored password hash cannot be read."""

"""Password policy checks, generation and hashing (REQUIREMENTS P1, P4).

Policy (:func:`check`): the profile's minimum length (8 for users, 10 for administrators in all
three built-in profiles) and one character of each required class: lower case, upper case, digit,
special (any ASCII punctuation; see :data:`govmail.policy.SPECIAL_CHARACTERS`). Passwords are
printable ASCII (space included) and at most :data:`govmail.policy.PASSWORD_MAX_LENGTH`
characters: Vietnamese letters are refused because the same word typed on two keyboards can
arrive precomposed or decomposed (NFC/NFD) and would then not match its hash, and desktop clients
differ in how they send non-ASCII over IMAP, POP3 and SMTP AUTH. Messages name the rule that
failed, never the password.

Hashing (:func:`hash_password`): Argon2id through passlib (``libpass``, backend ``argon2-cffi``),
stored as ``{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>``, the form slapd's ``argon2``
password module verifies natively. Parameters are OWASP's first Argon2id recommendation:

- ``m=19456`` KiB (19 MiB) of memory, ``t=2`` passes: about 40 ms per hash on a small server, so a
  bulk import of 5,000 people spends about 3 minutes hashing, and slapd, which verifies each bind
  (every IMAP, POP3 and SMTP login through Dovecot), needs 19 MiB per concurrent bind;
- ``p=1`` lane: slapd's module may be built on libsodium, which verifies only one lane;
- 16-byte random salt, 32-byte hash (passlib defaults).
"""

from __future__ import annotations

import secrets
import string

from passlib.exc import MissingBackendError
from passlib.hash import argon2 as _argon2

from .errors import PasswordError
from .policy import PASSWORD_MAX_LENGTH, PROFILES, SPECIAL_CHARACTERS, PolicyProfile

SCHEME = "{ARGON2}"
ARGON2_TYPE = "ID"
ARGON2_MEMORY_KIB = 19456
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1

_HASHER = _argon2.using(
    type=ARGON2_TYPE,
    memory_cost=ARGON2_MEMORY_KIB,
    rounds=ARGON2_TIME_COST,
    parallelism=ARGON2_PARALLELISM,
)

# Length of generated passwords when none is asked for (comfortably above every minimum).
GENERATED_LENGTH = 16
# Generated passwords avoid characters easily misread when an initial password is handed over
# on paper (0/O, 1/l/I) and use only the special characters QT §9.2.b names.
_GEN_LOWER = "abcdefghijkmnopqrstuvwxyz"
_GEN_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_GEN_DIGIT = "23456789"
_GEN_SPECIAL = "!@#%$*&"

_CLASS_TEST = {
    "lower": lambda char, profile: char in string.ascii_lowercase,
    "upper": lambda char, profile: char in string.ascii_uppercase,
    "digit": lambda char, profile: char in string.digits,
    "special": lambda char, profile: char in profile.password_special_characters,
}
_CLASS_WORDS = {
    "lower": "a lower-case letter",
    "upper": "an upper-case letter",
    "digit": "a digit",
    "special": "a special character",
}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check(password: str, *, admin: bool = False, profile: PolicyProfile) -> None:
    """Raise :class:`PasswordError` unless ``password`` meets ``profile``'s policy.

    ``admin=True`` applies the administrators' minimum length (and is what service credentials
    use, P4). Every broken rule is named in the one message; the password never is.
    """
    who = "an administrator" if admin else "a user"
    if not isinstance(password, str):
        raise PasswordError(f"password for {who} must be text, not {type(password).__name__}")
    bad = sorted({char for char in password if not (" " <= char <= "~")})
    if bad:
        kinds = "non-ASCII characters" if any(ord(char) > 127 for char in bad) else "control characters"
        raise PasswordError(
            f"password for {who} contains {kinds}: use ASCII letters, digits and punctuation only "
            "(Vietnamese letters do not type the same on every device)"
        )
    problems = []
    minimum = profile.password_min_length(admin)
    if len(password) < minimum:
        problems.append(f"it has {len(password)} characters, {who} needs at least {minimum}")
    if len(password) > PASSWORD_MAX_LENGTH:
        problems.append(f"it has {len(password)} characters, at most {PASSWORD_MAX_LENGTH} are accepted")
    missing = [
        _CLASS_WORDS[cls]
        for cls in profile.password_required_classes
        if not any(_CLASS_TEST[cls](char, profile) for char in password)
    ]
    if missing:
        text = f"it lacks {_and(missing)}"
        if _CLASS_WORDS["special"] in missing:
            specials = profile.password_special_characters
            text += " (e.g. ! @ # % $ * &)" if specials == SPECIAL_CHARACTERS else f" (one of {' '.join(specials)})"
        problems.append(text)
    if problems:
        raise PasswordError(f"password refused by policy {profile.name}: {'; '.join(problems)}")


def _strictest_length() -> int:
    return max(profile.password_min_length_admin for profile in PROFILES.values())


def generate(length: int | None = None, *, profile: PolicyProfile | None = None) -> str:
    """A random password (``secrets``) that passes :func:`check` for administrators.

    With no ``profile`` it satisfies every built-in profile; with one, that profile as overridden.
    ``length`` defaults to 16 or the required minimum if that is longer; a shorter explicit
    ``length`` is refused.
    """
    minimum = profile.password_min_length_admin if profile is not None else _strictest_length()
    if length is None:
        length = max(GENERATED_LENGTH, minimum)
    if isinstance(length, bool) or not isinstance(length, int) or not max(minimum, 4) <= length <= PASSWORD_MAX_LENGTH:
        raise PasswordError(
            f"generated password length {length!r} is out of range: use {max(minimum, 4)} to {PASSWORD_MAX_LENGTH}"
        )
    specials = _GEN_SPECIAL
    if profile is not None:
        specials = "".join(char for char in _GEN_SPECIAL if char in profile.password_special_characters)
        specials = specials or profile.password_special_characters
    pools = [_GEN_LOWER, _GEN_UPPER, _GEN_DIGIT, specials]
    alphabet = "".join(pools)
    # One character from each class, the rest from the whole alphabet, then shuffled.
    chars = [secrets.choice(pool) for pool in pools]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def hash_password(password: str) -> str:
    """``{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`` for an LDAP ``userPassword``.

    Does not apply the policy: call :func:`check` first where a person chose the password.
    """
    if not isinstance(password, str) or not password:
        raise PasswordError("password to hash is empty: give a password")
    try:
        return SCHEME + _HASHER.hash(password)
    except MissingBackendError:
        raise PasswordError(
            "Argon2 hashing needs the argon2-cffi package: install govmail's dependencies (scripts/setup.sh)"
        ) from None


def verify(password: str, hashed: str) -> bool:
    """Whether ``password`` matches an ``{ARGON2}`` value from :func:`hash_password` or slapd.

    Any other value (another scheme, or the ``{CRYPT}!`` of a mailbox without a password) matches
    nothing. A damaged ``{ARGON2}`` value raises :class:`PasswordError`.
    """
    if not isinstance(password, str) or not isinstance(hashed, str):
        return False
    if hashed[: len(SCHEME)].upper() != SCHEME:
        return False
    encoded = hashed[len(SCHEME) :]
    try:
        return bool(_argon2.verify(password, encoded))
    except MissingBackendError:
        raise PasswordError(
            "Argon2 verification needs the argon2-cffi package: install govmail's dependencies (scripts/setup.sh)"
        ) from None
    except (ValueError, TypeError):
        raise PasswordError(
            "stored password hash is not a valid {ARGON2} value: reset the password (govmail account reset-password)"
        ) from None

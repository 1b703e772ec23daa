"""Password policy (P1, P4), generation and {ARGON2} hashing."""

from __future__ import annotations

import re

import pytest
from argon2.low_level import Type, verify_secret

from govmail import passwords
from govmail.errors import PasswordError
from govmail.policy import PROFILES, get_profile

QT = get_profile("quangtri-2026")

# id -> (password, administrator?, None if accepted else a fragment of the refusal)
CASES = {
    "user-7-characters": ("Abc12!x", False, "it has 7 characters, a user needs at least 8"),
    "user-8-characters": ("Abcd12!x", False, None),
    "admin-9-characters": ("Abcde12!x", True, "it has 9 characters, an administrator needs at least 10"),
    "admin-10-characters": ("Abcdef12!x", True, None),
    "user-password-too-short-for-admin": ("Abcd12!x", True, "needs at least 10"),
    "empty": ("", False, "it has 0 characters"),
    "no-lower-case": ("ABCDEF12!X", False, "it lacks a lower-case letter"),
    "no-upper-case": ("abcdef12!x", False, "it lacks an upper-case letter"),
    "no-digit": ("Abcdefgh!x", False, "it lacks a digit"),
    "no-special": ("Abcdefg12x", False, "it lacks a special character (e.g. ! @ # % $ * &)"),
    "space-is-not-special": ("Abcd 12 x", False, "it lacks a special character"),
    "space-inside-is-allowed": ("Abc d12!x", False, None),
    "hyphen-counts-as-special": ("Long#Pass-5678", False, None),
    "dot-counts-as-special": ("Abcd12.x", False, None),
    "several-rules": ("abc", True, "it has 3 characters, an administrator needs at least 10; it lacks an upper-case"),
    "vietnamese-letters": ("Mậtkhẩu12!", False, "non-ASCII characters"),
    "control-character": ("Abcd12!x\n", False, "control characters"),
    "too-long": ("Aa1!" * 33, True, "it has 132 characters, at most 128"),
}


@pytest.mark.parametrize(("password", "admin", "refusal"), CASES.values(), ids=list(CASES))
def test_password_policy(password, admin, refusal):
    if refusal is None:
        passwords.check(password, admin=admin, profile=QT)
        return
    with pytest.raises(PasswordError) as caught:
        passwords.check(password, admin=admin, profile=QT)
    assert refusal in str(caught.value)


@pytest.mark.parametrize("special", list("!@#%$*&"))
def test_each_special_character_named_by_quangtri_is_accepted(special):
    passwords.check(f"Abcdef1{special}", profile=QT)


@pytest.mark.parametrize(
    ("password", "admin", "refusal"),
    [case for case in CASES.values() if case[2] and case[0]],
    ids=[key for key, case in CASES.items() if case[2] and case[0]],
)
def test_refusal_never_shows_the_password(password, admin, refusal):
    with pytest.raises(PasswordError) as caught:
        passwords.check(password, admin=admin, profile=QT)
    assert password not in str(caught.value)


def test_refusal_names_the_profile():
    with pytest.raises(PasswordError, match="policy ninhbinh-2020"):
        passwords.check("short", profile=get_profile("ninhbinh-2020"))


def test_overridden_minimum_length_applies():
    profile = get_profile(overrides={"password_min_length_user": 12, "password_min_length_admin": 14})
    with pytest.raises(PasswordError, match="a user needs at least 12"):
        passwords.check("Abcdef12!xyz"[:11], profile=profile)


def test_narrowed_special_characters_are_listed_in_the_refusal():
    profile = get_profile(overrides={"password_special_characters": "!@#%$*&"})
    with pytest.raises(PasswordError, match=re.escape("(one of ! @ # % $ * &)")):
        passwords.check("Abcdef12-x", profile=profile)


def test_dropped_class_is_no_longer_required():
    profile = get_profile(overrides={"password_required_classes": ["lower", "upper", "digit"]})
    passwords.check("Abcdef12x", profile=profile)


# --- generation ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROFILES))
def test_generated_passwords_always_pass_the_administrator_policy(name):
    profile = PROFILES[name]
    drawn = [passwords.generate() for _ in range(200)]
    for password in drawn:
        passwords.check(password, admin=True, profile=profile)
    assert len(set(drawn)) == 200


def test_generated_password_is_16_characters_by_default():
    assert len(passwords.generate()) == 16


def test_generated_password_has_no_easily_misread_characters():
    text = "".join(passwords.generate() for _ in range(200))
    assert not set(text) & set("0O1lI")


def test_generated_password_length_can_be_chosen():
    assert len(passwords.generate(24)) == 24


def test_generated_password_shorter_than_the_strictest_minimum_is_refused():
    with pytest.raises(PasswordError, match="length 9 is out of range: use 10 to 128"):
        passwords.generate(9)


def test_generated_password_follows_an_overridden_profile():
    profile = get_profile(
        overrides={
            "password_min_length_user": 20,
            "password_min_length_admin": 20,
            "password_special_characters": "-_",
        }
    )
    password = passwords.generate(profile=profile)
    assert len(password) == 20
    passwords.check(password, admin=True, profile=profile)


# --- hashing ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashed():
    return passwords.hash_password("Long#Pass-5678")


def test_hash_is_argon2id_in_the_form_slapd_reads(hashed):
    assert re.fullmatch(
        r"\{ARGON2\}\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}",
        hashed,
    )


def test_hash_verifies_with_the_right_password(hashed):
    assert passwords.verify("Long#Pass-5678", hashed)


def test_hash_does_not_verify_with_a_wrong_password(hashed):
    assert not passwords.verify("Long#Pass-5679", hashed)


def test_hash_is_readable_by_the_reference_argon2_library(hashed):
    # libargon2's own parser and verifier, as slapd's argon2 module calls them.
    assert verify_secret(hashed.removeprefix("{ARGON2}").encode(), b"Long#Pass-5678", Type.ID)


def test_same_password_hashes_differently_each_time():
    assert passwords.hash_password("Abcdef12!x") != passwords.hash_password("Abcdef12!x")


def test_scheme_tag_is_matched_case_insensitively(hashed):
    assert passwords.verify("Long#Pass-5678", "{argon2}" + hashed.removeprefix("{ARGON2}"))


@pytest.mark.parametrize(
    "stored",
    ["{CRYPT}!", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "Long#Pass-5678", ""],
    ids=["crypt-disabled", "ssha", "cleartext", "empty"],
)
def test_other_stored_values_match_nothing(stored):
    assert not passwords.verify("Long#Pass-5678", stored)


def test_damaged_argon2_value_is_reported():
    with pytest.raises(PasswordError, match="not a valid \\{ARGON2\\} value"):
        passwords.verify("Long#Pass-5678", "{ARGON2}$argon2id$v=19$m=19456,t=2,p=1$broken")


def test_empty_password_is_not_hashed():
    with pytest.raises(PasswordError, match="empty"):
        passwords.hash_password("")

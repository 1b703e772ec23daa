"""Policy profiles: the numbers of each regulation, and inventory overrides."""

from __future__ import annotations

import dataclasses
import json
from datetime import date

import pytest

from govmail import policy
from govmail.errors import GovmailError, PolicyError

# Profile -> the numbers REQUIREMENTS.md (P1, P3, P7, M3, M4) takes from its regulation.
EXPECTED = {
    "quangtri-2026": {
        "address_format": "fullname",
        "password_min_length_user": 8,
        "password_min_length_admin": 10,
        "password_max_age_days_user": 90,
        "password_max_age_days_admin": 90,
        "inactivity_lock_days": 90,
        "inactivity_delete_notice_days": 180,
        "deletion_grace": 3,
        "deletion_grace_unit": "days",
    },
    "ninhbinh-2020": {
        "address_format": "given-initials-agency",
        "password_min_length_user": 8,
        "password_min_length_admin": 10,
        "password_max_age_days_user": 180,
        "password_max_age_days_admin": 90,
        "inactivity_lock_days": 180,
        "inactivity_delete_notice_days": 180,
        "deletion_grace": 15,
        "deletion_grace_unit": "working-days",
    },
    "laichau-2019": {
        "address_format": "given-initials-agency",
        "password_min_length_user": 8,
        "password_min_length_admin": 10,
        "password_max_age_days_user": 180,
        "password_max_age_days_admin": 90,
        "inactivity_lock_days": 180,
        "inactivity_delete_notice_days": 180,
        "deletion_grace": 365,
        "deletion_grace_unit": "days",
    },
}


def test_default_profile_is_quangtri_2026():
    assert policy.get_profile().name == "quangtri-2026"
    assert policy.profile_names()[0] == "quangtri-2026"


def test_exactly_the_three_regulations_are_built_in():
    assert sorted(policy.profile_names()) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "numbers"), EXPECTED.items(), ids=list(EXPECTED))
def test_profile_carries_the_numbers_of_its_regulation(name, numbers):
    profile = policy.get_profile(name)
    assert {key: getattr(profile, key) for key in numbers} == numbers


@pytest.mark.parametrize("name", EXPECTED, ids=list(EXPECTED))
def test_every_profile_requires_all_four_character_classes(name):
    profile = policy.get_profile(name)
    assert profile.password_required_classes == ("lower", "upper", "digit", "special")
    assert set("!@#%$*&") <= set(profile.password_special_characters)


def test_administrator_helpers_pick_the_administrator_numbers():
    profile = policy.get_profile("laichau-2019")
    assert (profile.password_min_length(), profile.password_min_length(admin=True)) == (8, 10)
    assert (profile.password_max_age_days(), profile.password_max_age_days(admin=True)) == (180, 90)


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.get_profile().inactivity_lock_days = 1  # type: ignore[misc]


def test_profile_is_json_ready():
    values = policy.get_profile().as_dict()
    assert json.loads(json.dumps(values)) == values
    assert values["password_required_classes"] == ["lower", "upper", "digit", "special"]


# --- deletion dates --------------------------------------------------------------------------


def test_quangtri_deletes_three_calendar_days_after_the_notice():
    assert policy.get_profile("quangtri-2026").deletion_due(date(2026, 7, 3)) == date(2026, 7, 6)


def test_laichau_deletes_twelve_months_after_the_notice():
    assert policy.get_profile("laichau-2019").deletion_due(date(2026, 7, 3)) == date(2027, 7, 3)


def test_ninhbinh_removes_fifteen_working_days_after_the_notice():
    # Friday 3 July 2026 + three working weeks = Friday 24 July.
    assert policy.get_profile("ninhbinh-2020").deletion_due(date(2026, 7, 3)) == date(2026, 7, 24)


def test_ninhbinh_working_days_skip_the_holidays_given():
    due = policy.get_profile("ninhbinh-2020").deletion_due(date(2026, 7, 3), holidays={date(2026, 7, 6)})
    assert due == date(2026, 7, 27)


# --- overrides -------------------------------------------------------------------------------


def test_override_changes_only_that_field():
    profile = policy.get_profile("ninhbinh-2020", {"password_max_age_days_user": 120})
    assert profile.password_max_age_days_user == 120
    assert profile.password_max_age_days_admin == 90
    assert policy.get_profile("ninhbinh-2020").password_max_age_days_user == 180


NUMBERS = [key for key in EXPECTED["quangtri-2026"] if key.startswith(("password", "inactivity"))]


@pytest.mark.parametrize("key", NUMBERS)
def test_every_number_can_be_overridden(key):
    value = getattr(policy.get_profile(), key) + 5
    overrides = {key: value}
    if key == "inactivity_lock_days":
        overrides["inactivity_delete_notice_days"] = 400
    if key == "password_min_length_user":
        overrides["password_min_length_admin"] = value
    assert getattr(policy.get_profile("quangtri-2026", overrides), key) == value


def test_override_of_a_number_may_be_a_string_of_digits():
    assert policy.get_profile(overrides={"deletion_grace": "7"}).deletion_grace == 7


def test_override_of_classes_accepts_a_list_or_a_comma_separated_string():
    as_list = policy.get_profile(overrides={"password_required_classes": ["digit", "lower"]})
    as_text = policy.get_profile(overrides={"password_required_classes": "upper, special"})
    assert as_list.password_required_classes == ("lower", "digit")
    assert as_text.password_required_classes == ("upper", "special")


def test_override_can_switch_the_address_format():
    assert policy.get_profile(overrides={"address_format": "given-initials-agency"}).address_format == (
        "given-initials-agency"
    )


def test_no_overrides_give_the_built_in_profile():
    assert policy.get_profile("laichau-2019", {}) is policy.PROFILES["laichau-2019"]
    assert policy.get_profile("laichau-2019", None) is policy.PROFILES["laichau-2019"]


def test_unknown_profile_is_refused_listing_the_valid_ones():
    with pytest.raises(PolicyError) as caught:
        policy.get_profile("hanoi-2030")
    message = str(caught.value)
    assert "'hanoi-2030'" in message
    for name in EXPECTED:
        assert name in message


def test_unknown_override_is_refused_listing_the_valid_ones():
    with pytest.raises(PolicyError) as caught:
        policy.get_profile(overrides={"password_max_age": 30})
    message = str(caught.value)
    assert "'password_max_age'" in message
    assert "password_max_age_days_user" in message
    assert "inactivity_lock_days" in message


def test_profile_name_cannot_be_overridden():
    with pytest.raises(PolicyError, match="'name' cannot be overridden"):
        policy.get_profile(overrides={"name": "ninhbinh-2020"})


BAD_OVERRIDES = {
    "word-for-number": ({"inactivity_lock_days": "three months"}, "give a whole number"),
    "bool-for-number": ({"deletion_grace": True}, "give a whole number"),
    "float-for-number": ({"password_max_age_days_user": 90.5}, "give a whole number"),
    "zero-length": ({"password_min_length_user": 0}, "at least 1"),
    "negative-grace": ({"deletion_grace": -1}, "at least 0"),
    "address-format": ({"address_format": "initials"}, "fullname, given-initials-agency"),
    "grace-unit": ({"deletion_grace_unit": "weeks"}, "days, working-days"),
    "class": ({"password_required_classes": ["lower", "emoji"]}, "unknown class 'emoji'"),
    "classes-type": ({"password_required_classes": 4}, "give a list"),
    "specials-letters": ({"password_special_characters": "!a"}, "ASCII punctuation"),
    "specials-empty": ({"password_special_characters": ""}, "ASCII punctuation"),
    "admin-below-user": ({"password_min_length_admin": 6}, "raise the administrators' minimum"),
    "user-above-admin": ({"password_min_length_user": 12}, "raise the administrators' minimum"),
    "longer-than-accepted": (
        {"password_min_length_user": 200, "password_min_length_admin": 200},
        "exceeds the longest password",
    ),
    "notice-before-lock": ({"inactivity_lock_days": 200}, "inactivity_delete_notice_days (180)"),
}


@pytest.mark.parametrize(("overrides", "message"), BAD_OVERRIDES.values(), ids=list(BAD_OVERRIDES))
def test_bad_override_value_is_refused_naming_it(overrides, message):
    with pytest.raises(PolicyError, match="policy") as caught:
        policy.get_profile("quangtri-2026", overrides)
    assert message in str(caught.value)


def test_overrides_must_be_a_mapping():
    with pytest.raises(PolicyError, match="must be a mapping"):
        policy.get_profile("quangtri-2026", ["inactivity_lock_days"])  # type: ignore[arg-type]


def test_policy_errors_are_reported_by_the_cli_as_one_line():
    assert issubclass(PolicyError, GovmailError)

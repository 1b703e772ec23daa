"""The directory enforces the same password numbers the CLI checks: the openldap role's profile
table and govmail.policy must agree."""

from pathlib import Path

import pytest
import yaml

from govmail import policy

ROLE_VARS = Path(__file__).resolve().parents[2] / "roles" / "openldap" / "vars" / "main.yml"


@pytest.fixture(scope="module")
def role_profiles():
    return yaml.safe_load(ROLE_VARS.read_text(encoding="utf-8"))["__openldap_profiles"]


@pytest.mark.parametrize("name", policy.profile_names())
def test_role_and_cli_agree_on_password_rules(role_profiles, name):
    profile = policy.get_profile(name)
    assert role_profiles[name] == {
        "min_length_user": profile.password_min_length(admin=False),
        "min_length_admin": profile.password_min_length(admin=True),
        "max_age_days_user": profile.password_max_age_days(admin=False),
        "max_age_days_admin": profile.password_max_age_days(admin=True),
    }

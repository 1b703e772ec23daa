"""Policy profiles: the account rules of one province's regulation, as one named value.

Three profiles are built in; ``quangtri-2026`` is the default (the newest regulation). A profile
bundles the personal address format, the password rules, the password maximum age and the
inactivity lock/delete thresholds. The inventory chooses a profile by name and may override any
field of it (:func:`get_profile`); nothing here reads the inventory itself.

Sources (``/work/shared/seeds``, cited as ``province §article.clause.point``):

- QT: ``004_b7158fdbebfed168.txt``, Quảng Trị 2026
- NB: ``002_d811519b007c732e.txt``, Ninh Bình 2020
- LC: ``000_0e9369420cab1798.txt``, Lai Châu 2019

Conventions used to turn the regulations' words into numbers:

- A month is 30 days and a year 365 days ("03 tháng" = 90, "06 tháng" = 180, "12 tháng" = 365).
  Locks and notices therefore come at most a few days before the calendar date, never after it;
  an operator who wants calendar months overrides the numbers.
- "ngày" is a calendar day (``deletion_grace_unit="days"``); "ngày làm việc" is a working day,
  Monday to Friday (``"working-days"``). Public holidays are not known here: the caller passes
  them to :meth:`PolicyProfile.deletion_due`.
- Inactivity counts from the last successful login or, for a mailbox never used, from its
  creation ("kể từ lúc được cấp phát hoặc lần truy cập cuối cùng", LC §8.1).
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .errors import PolicyError

DEFAULT_PROFILE = "quangtri-2026"

# Personal address formats (see govmail.naming.personal_address).
ADDRESS_FORMATS = ("fullname", "given-initials-agency")

# Character classes a password can be required to contain.
PASSWORD_CLASSES = ("lower", "upper", "digit", "special")

# Special characters. QT §9.2.b lists "!, @, #, %, $, *, &"; LC §4.1 and NB §11.1 only say
# "ký tự đặc biệt". Every profile accepts all 32 ASCII punctuation characters, a superset of the
# QT list, so every password QT allows is allowed, and "-" or "." count as users expect.
SPECIAL_CHARACTERS = string.punctuation

# Longest password accepted anywhere (a bound for hashing cost and for client input fields,
# not a regulatory number). Minimum lengths may not exceed it.
PASSWORD_MAX_LENGTH = 128

DELETION_GRACE_UNITS = ("days", "working-days")

# The smallest quota per mailbox kind, in bytes (REQUIREMENTS M6, QT §9.1: at least 2 GB per
# person, 5 GB per agency mailbox; binary units, so a little above). The site's defaults
# (govmail_quota_personal, govmail_quota_agency in roles/govmail/defaults/main.yml) may be higher.
MINIMUM_QUOTA = {"personal": 2 * 1024**3, "agency": 5 * 1024**3}


@dataclass(frozen=True)
class PolicyProfile:
    """The account rules of one regulation. Every field except ``name`` can be overridden."""

    name: str
    # "fullname": <hovaten>@domain; "given-initials-agency": <given><initials>.<agency>@domain.
    # Namesakes get the next integer right after the name part in both formats.
    address_format: str
    # Minimum password length for ordinary users and for administrators.
    password_min_length_user: int
    password_min_length_admin: int
    # Classes a password must contain (subset of PASSWORD_CLASSES), and what counts as special.
    password_required_classes: tuple[str, ...]
    password_special_characters: str
    # Maximum password age (ppolicy pwdMaxAge), in days, for users and for administrators.
    password_max_age_days_user: int
    password_max_age_days_admin: int
    # Days without a successful login after which the mailbox is locked (suspended).
    inactivity_lock_days: int
    # Days without a successful login after which the agency is notified that the mailbox
    # will be deleted; deletion follows ``deletion_grace`` days (or working days) later.
    inactivity_delete_notice_days: int
    deletion_grace: int
    deletion_grace_unit: str

    def password_min_length(self, admin: bool = False) -> int:
        """Minimum password length for an administrator (``admin=True``) or an ordinary user."""
        return self.password_min_length_admin if admin else self.password_min_length_user

    def password_max_age_days(self, admin: bool = False) -> int:
        """Maximum password age in days for an administrator or an ordinary user."""
        return self.password_max_age_days_admin if admin else self.password_max_age_days_user

    def deletion_due(self, notice: date, holidays: Collection[date] = ()) -> date:
        """Earliest date a mailbox may be deleted when the deletion notice went out on ``notice``.

        Working days skip Saturdays, Sundays and the given ``holidays``.
        """
        if self.deletion_grace_unit == "days":
            return notice + timedelta(days=self.deletion_grace)
        day, left = notice, self.deletion_grace
        while left > 0:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in holidays:
                left -= 1
        return day

    def as_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-ready values (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["password_required_classes"] = list(self.password_required_classes)
        return values


_ALL_CLASSES = ("lower", "upper", "digit", "special")

PROFILES: dict[str, PolicyProfile] = {
    "quangtri-2026": PolicyProfile(
        name="quangtri-2026",
        # QT §6.2.a: hovaten = full name without diacritics, nguyenvanlong@quangtri.gov.vn;
        # QT §6.2.b: a later namesake gets an increasing integer after hovaten (nguyenvanlong1).
        address_format="fullname",
        # QT §9.2.b: at least 8 characters, upper, lower, digit and special (!, @, #, %, $, *, &).
        password_min_length_user=8,
        # QT names no separate administrator length; 10 as in LC §4.1 and NB §11.1 (REQUIREMENTS
        # P1), which is within QT's "tối thiểu 8".
        password_min_length_admin=10,
        password_required_classes=_ALL_CLASSES,
        password_special_characters=SPECIAL_CHARACTERS,
        # QT §5.1: change the password at least once every 3 months, everyone.
        password_max_age_days_user=90,
        password_max_age_days_admin=90,
        # QT §8.2.a: locked after 3 months without access.
        inactivity_lock_days=90,
        # QT §7.3: after 6 months without access the agency is notified in writing; 3 days
        # after the notice the mailbox is deleted.
        inactivity_delete_notice_days=180,
        deletion_grace=3,
        deletion_grace_unit="days",
    ),
    "ninhbinh-2020": PolicyProfile(
        name="ninhbinh-2020",
        # NB §5.2.a: <given name + initials of family and middle names>.<agency>, longnv.sokhcn;
        # NB §5.2.b: namesakes in one agency get a sequence number right after the name part.
        address_format="given-initials-agency",
        # NB §11.1: at least 8 characters for users, 10 for administrators; lower, upper,
        # digit and special.
        password_min_length_user=8,
        password_min_length_admin=10,
        password_required_classes=_ALL_CLASSES,
        password_special_characters=SPECIAL_CHARACTERS,
        # NB §11.2: administrators every 3 months, users every 6 months.
        password_max_age_days_user=180,
        password_max_age_days_admin=90,
        # NB §7.1: suspended after 6 months without login, with a notice to the agency; removed
        # 15 working days after the notice unless the agency asks to reopen it.
        inactivity_lock_days=180,
        inactivity_delete_notice_days=180,
        deletion_grace=15,
        deletion_grace_unit="working-days",
    ),
    "laichau-2019": PolicyProfile(
        name="laichau-2019",
        # LC §5.2.a: <given name><initials of family and middle names>.<agency>, as NB.
        # LC §5.2.b leaves namesakes in one agency to the operator "on request, easy to
        # remember, in this format"; the appliance numbers them like NB §5.2.b (longnv1.sokhcn),
        # which is in the format and needs no manual step.
        address_format="given-initials-agency",
        # LC §4.1: at least 8 characters for users, 10 for administrators; lower, upper,
        # digit and special.
        password_min_length_user=8,
        password_min_length_admin=10,
        password_required_classes=_ALL_CLASSES,
        password_special_characters=SPECIAL_CHARACTERS,
        # LC §4.2: administrators every 3 months, users every 6 months.
        password_max_age_days_user=180,
        password_max_age_days_admin=90,
        # LC §8.1: suspended after 6 months without access (counted from issue or last access),
        # with a written notice; deleted 12 months after the notice.
        inactivity_lock_days=180,
        inactivity_delete_notice_days=180,
        deletion_grace=365,
        deletion_grace_unit="days",
    ),
}

_INT_FIELDS = {
    # field: smallest allowed value
    "password_min_length_user": 1,
    "password_min_length_admin": 1,
    "password_max_age_days_user": 1,
    "password_max_age_days_admin": 1,
    "inactivity_lock_days": 1,
    "inactivity_delete_notice_days": 1,
    "deletion_grace": 0,
}
_OVERRIDABLE = tuple(field.name for field in dataclasses.fields(PolicyProfile) if field.name != "name")


def profile_names() -> list[str]:
    """Names of the built-in profiles, the default first."""
    return list(PROFILES)


def get_profile(name: str = DEFAULT_PROFILE, overrides: Mapping[str, Any] | None = None) -> PolicyProfile:
    """The profile ``name`` with the fields in ``overrides`` replaced.

    ``overrides`` comes from the inventory: keys are field names of :class:`PolicyProfile`,
    values ints (or strings of digits), strings, or for ``password_required_classes`` a list
    (or comma-separated string). The result is checked as a whole (e.g. an administrator's
    minimum length may not be below a user's).
    """
    if not isinstance(name, str) or name not in PROFILES:
        raise PolicyError(f"unknown policy profile {name!r}: use one of {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if not overrides:
        return profile
    if not isinstance(overrides, Mapping):
        raise PolicyError(f"policy overrides for {name} must be a mapping of field: value, not {kind_of(overrides)}")
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in _OVERRIDABLE:
            what = "cannot be overridden (choose another profile instead)" if key == "name" else "is not a policy field"
            raise PolicyError(f"policy override {key!r} {what}: use one of {', '.join(_OVERRIDABLE)}")
        changes[key] = _coerce(name, key, value)
    result = dataclasses.replace(profile, **changes)
    _check_consistent(result)
    return result


def kind_of(value: Any) -> str:
    """A value's kind as the inventory's author wrote it (Ansible wraps YAML values in its own types)."""
    for kind, name in ((Mapping, "mapping"), (str, "string"), (bool, "boolean"), (int, "number"), (list, "list")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _coerce(profile: str, key: str, value: Any) -> Any:
    where = f"policy override {key} (profile {profile})"
    if key in _INT_FIELDS:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{where} is {value!r}: give a whole number")
        minimum = _INT_FIELDS[key]
        if value < minimum:
            raise PolicyError(f"{where} is {value}: give a whole number of at least {minimum}")
        return value
    if key == "address_format":
        if value not in ADDRESS_FORMATS:
            raise PolicyError(f"{where} is {value!r}: use one of {', '.join(ADDRESS_FORMATS)}")
        return value
    if key == "deletion_grace_unit":
        if value not in DELETION_GRACE_UNITS:
            raise PolicyError(f"{where} is {value!r}: use one of {', '.join(DELETION_GRACE_UNITS)}")
        return value
    if key == "password_required_classes":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise PolicyError(f"{where} is {value!r}: give a list drawn from {', '.join(PASSWORD_CLASSES)}")
        classes = [item.strip() for item in items if item.strip()]
        unknown = [item for item in classes if item not in PASSWORD_CLASSES]
        if unknown:
            raise PolicyError(
                f"{where} names unknown class {unknown[0]!r}: use classes from {', '.join(PASSWORD_CLASSES)}"
            )
        return tuple(cls for cls in PASSWORD_CLASSES if cls in classes)
    # password_special_characters
    if not isinstance(value, str) or not value or any(char not in string.punctuation for char in value):
        raise PolicyError(
            f"{where} is {value!r}: give a non-empty string of ASCII punctuation characters, e.g. '!@#%$*&'"
        )
    return "".join(dict.fromkeys(value))


def _check_consistent(profile: PolicyProfile) -> None:
    where = f"policy profile {profile.name} with overrides"
    if profile.password_min_length_admin < profile.password_min_length_user:
        raise PolicyError(
            f"{where}: password_min_length_admin ({profile.password_min_length_admin}) is below "
            f"password_min_length_user ({profile.password_min_length_user}): raise the administrators' minimum"
        )
    for key in ("password_min_length_user", "password_min_length_admin"):
        if getattr(profile, key) > PASSWORD_MAX_LENGTH:
            raise PolicyError(
                f"{where}: {key} ({getattr(profile, key)}) exceeds the longest password accepted "
                f"({PASSWORD_MAX_LENGTH}): lower it"
            )
    if profile.inactivity_delete_notice_days < profile.inactivity_lock_days:
        raise PolicyError(
            f"{where}: inactivity_delete_notice_days ({profile.inactivity_delete_notice_days}) is below "
            f"inactivity_lock_days ({profile.inactivity_lock_days}): a mailbox is locked before deletion "
            "is announced, so raise the notice threshold or lower the lock threshold"
        )

"""Account commands against an in-memory directory (ldap3 MOCK_SYNC): what lands in LDAP, and refusals."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import ldap3
import pytest
from ldap3.extend import StandardExtendedOperations
from typer.testing import CliRunner

from govmail import account_import, accounts, cli, delegation, errors, lifecycle, mailbox, passwords, policy
from govmail.cli import account_commands
from govmail.directory import Directory, DirectoryError
from govmail.errors import AccountError, ImportApplyError, ImportRowsError, NamingError, PasswordError

BASE = "dc=quangtri,dc=gov,dc=vn"
AGENCIES = f"ou=agencies,{BASE}"
SOKHCN = f"ou=sokhcn,{AGENCIES}"
ADMIN = f"cn=admin,{BASE}"
DOMAIN = "quangtri.gov.vn"
QT = policy.get_profile("quangtri-2026")
NB = policy.get_profile("ninhbinh-2020")
OWNER_PASSWORD = "Long#Pass-5678"


def _mailbox(uid: str, name: str, kind: str = "personal", **extra):
    words = name.split()
    attributes = {
        "objectClass": ["inetOrgPerson", "govmailMailbox"],
        "uid": uid,
        "cn": name,
        "displayName": name,
        "sn": words[0] if kind == "personal" else name,
        "mail": f"{uid}@{DOMAIN}",
        "govmailKind": kind,
        "govmailStatus": "active",
    }
    attributes.update(extra)
    return attributes


def seeded_directory(default_quota=None) -> Directory:
    """The lab's seeded directory: agency sokhcn, its mailbox and three people (MOCK_SYNC)."""
    server = ldap3.Server("mock-ldap", get_info=ldap3.NONE)
    connection = ldap3.Connection(
        server, user=ADMIN, password="Admin#Pass-123", client_strategy=ldap3.MOCK_SYNC, raise_exceptions=False
    )
    add = connection.strategy.add_entry
    add(BASE, {"objectClass": ["dcObject", "organization"], "dc": "quangtri", "o": DOMAIN})
    add(ADMIN, {"objectClass": ["organizationalRole"], "cn": "admin", "userPassword": "Admin#Pass-123"})
    add(AGENCIES, {"objectClass": ["organizationalUnit"], "ou": "agencies"})
    add(SOKHCN, {"objectClass": ["organizationalUnit"], "ou": "sokhcn", "description": "Sở Khoa học và Công nghệ"})
    add(f"uid=sokhcn,{SOKHCN}", _mailbox("sokhcn", "Sở Khoa học và Công nghệ", "agency"))
    add(
        f"uid=nguyenvanlong,{SOKHCN}",
        _mailbox("nguyenvanlong", "Nguyễn Văn Long", givenName="Long", userPassword=OWNER_PASSWORD),
    )
    add(f"uid=tranthithuhuong,{SOKHCN}", _mailbox("tranthithuhuong", "Trần Thị Thu Hương", givenName="Hương"))
    assert connection.bind()
    return Directory(connection, domain=DOMAIN, base_dn=BASE, uri="ldaps://mock:636", default_quota=default_quota)


@pytest.fixture
def directory() -> Directory:
    """The lab's seeded directory with the regulation's default quotas."""
    return seeded_directory()


def entry(directory: Directory, dn: str) -> dict[str, list[str]]:
    found = directory.get(dn, ["*", "+", "pwdReset", "pwdAccountLockedTime", "govmailStatusChanged"])
    assert found is not None, dn
    return {key.lower(): values for key, values in found.attributes.items()}


def snapshot(directory: Directory) -> dict[str, dict]:
    return {dn: {k: list(v) for k, v in attrs.items()} for dn, attrs in directory.connection.server.dit.items()}


# --- sizes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("2G", 2 * 1024**3), ("3g", 3 * 1024**3), ("500M", 500 * 1024**2), ("1T", 1024**4), ("3GiB", 3 * 1024**3),
     ("1.5G", 3 * 1024**3 // 2), ("2147483648", 2147483648), (" 5 G ", 5 * 1024**3)],
)  # fmt: skip
def test_sizes_use_binary_units(text, size):
    assert accounts.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "0", "-1G", "3X", "1.5", "G"])
def test_a_size_that_is_not_one_is_refused_by_name(text):
    with pytest.raises(AccountError, match="quota"):
        accounts.parse_size(text)


def test_sizes_print_in_whole_units():
    assert [accounts.format_size(n) for n in (2 * 1024**3, 500 * 1024**2, 1024**4, 1000)] == [
        "2G",
        "500M",
        "1T",
        "1000",
    ]


# --- add ------------------------------------------------------------------------------------------


def test_new_person_gets_the_profile_address_and_a_forced_initial_password(directory):
    result = accounts.add_person(directory, "Phạm Thị Kiểm Thử", "sokhcn", profile=QT)
    assert result["address"] == f"phamthikiemthu@{DOMAIN}"
    assert result["dn"] == f"uid=phamthikiemthu,{SOKHCN}"
    stored = entry(directory, result["dn"])
    assert stored["cn"] == stored["displayname"] == ["Phạm Thị Kiểm Thử"]
    assert stored["sn"] == ["Phạm"] and stored["givenname"] == ["Thử"]
    assert stored["mail"] == [result["address"]] and stored["uid"] == ["phamthikiemthu"]
    assert stored["govmailkind"] == ["personal"] and stored["govmailstatus"] == ["active"]
    assert stored["pwdreset"] == ["TRUE"]
    assert stored["govmailstatuschanged"][0].endswith("Z")
    assert "govmailquota" not in stored
    assert stored["userpassword"][0].startswith("{ARGON2}$argon2id$")
    assert passwords.verify(result["initial_password"], stored["userpassword"][0])
    passwords.check(result["initial_password"], profile=QT)


@pytest.mark.parametrize(
    ("name", "folded"),
    [("Nguyễn Văn Long", "nguyen van long"), ("Đặng Thị Hạnh", "dang thi hanh"), ("Văn phòng Sở", "van phong so")],
)
def test_new_mailbox_keeps_its_name_without_diacritics_for_searches(directory, name, folded):
    if name.startswith("Văn phòng"):
        result = accounts.add_agency(directory, name, "vpso", profile=QT, parent="sokhcn")
    else:
        result = accounts.add_person(directory, name, "sokhcn", profile=QT)
    assert entry(directory, result["dn"])["govmailasciiname"] == [folded]


def test_import_writes_the_name_without_diacritics_too(directory, tmp_path):
    path = csv_file(tmp_path, "Họ và tên,Cơ quan\nĐặng Thị Hạnh,sokhcn\n")
    result = account_import.import_file(directory, path, profile=QT)
    assert entry(directory, result["rows"][0]["dn"])["govmailasciiname"] == ["dang thi hanh"]


def test_namesake_gets_the_next_number(directory):
    assert (
        accounts.add_person(directory, "Nguyễn Văn Long", "sokhcn", profile=QT)["address"] == f"nguyenvanlong1@{DOMAIN}"
    )
    assert (
        accounts.add_person(directory, "Nguyễn Văn Long", "sokhcn", profile=QT)["address"] == f"nguyenvanlong2@{DOMAIN}"
    )


def test_an_alias_counts_as_taken(directory):
    directory.modify(
        f"uid=tranthithuhuong,{SOKHCN}", {"govmailAlias": [(ldap3.MODIFY_ADD, [f"nguyenvanlong4@{DOMAIN}"])]}
    )
    assert (
        accounts.add_person(directory, "Nguyễn Văn Long", "sokhcn", profile=QT)["address"] == f"nguyenvanlong5@{DOMAIN}"
    )


def test_ninhbinh_profile_writes_given_name_initials_and_agency(directory):
    result = accounts.add_person(directory, "Nguyễn Văn Long", "SoKHCN", profile=NB)
    assert result["address"] == f"longnv.sokhcn@{DOMAIN}"
    assert (
        accounts.add_person(directory, "Nguyễn Văn Long", "sokhcn", profile=NB)["address"] == f"longnv1.sokhcn@{DOMAIN}"
    )


def test_own_quota_is_stored_in_bytes(directory):
    result = accounts.add_person(directory, "Lê Thị Hoa", "sokhcn", profile=QT, quota="3G")
    assert entry(directory, result["dn"])["govmailquota"] == [str(3 * 1024**3)]


def test_person_in_an_unknown_agency_is_refused_and_nothing_added(directory):
    before = snapshot(directory)
    with pytest.raises(AccountError, match=r"agency soxyz does not exist.*--kind agency"):
        accounts.add_person(directory, "Lê Thị Hoa", "soxyz", profile=QT)
    assert snapshot(directory) == before


def test_quota_below_the_minimum_is_refused_with_the_minimum(directory):
    with pytest.raises(AccountError, match=r"quota 1G .* below the minimum for personal mailboxes \(2G"):
        accounts.add_person(directory, "Lê Thị Hoa", "sokhcn", profile=QT, quota="1G")


def test_a_name_that_cannot_make_an_address_is_refused_by_name(directory):
    with pytest.raises(NamingError, match="Long 2"):
        accounts.add_person(directory, "Nguyễn Văn Long 2", "sokhcn", profile=QT)


def test_new_agency_creates_its_unit_and_agency_mailbox(directory):
    result = accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT)
    assert result["address"] == f"sotp@{DOMAIN}" and result["agency_created"]
    unit = entry(directory, f"ou=sotp,{AGENCIES}")
    assert unit["description"] == ["Sở Tư pháp"] and unit["ou"] == ["sotp"]
    mailbox = entry(directory, f"uid=sotp,ou=sotp,{AGENCIES}")
    assert mailbox["govmailkind"] == ["agency"] and mailbox["sn"] == ["Sở Tư pháp"] and "givenname" not in mailbox
    assert mailbox["pwdreset"] == ["TRUE"]


def test_sub_unit_nests_under_its_parent_with_a_dotted_address(directory):
    result = accounts.add_agency(directory, "Văn phòng Sở", "vp", parent="sokhcn", profile=QT)
    assert result["address"] == f"vp.sokhcn@{DOMAIN}"
    assert result["dn"] == f"uid=vp.sokhcn,ou=vp,{SOKHCN}"
    assert accounts.add_person(directory, "Đỗ Văn Ơn", "vp.sokhcn", profile=QT)["dn"] == f"uid=dovanon,ou=vp,{SOKHCN}"


@pytest.mark.parametrize(
    ("abbreviation", "parent", "message"),
    [
        ("sokhcn", None, "agency sokhcn already exists"),
        ("vp", "soxyz", "parent agency soxyz does not exist"),
        ("khcn và cn", None, "và"),
        ("so-tp", None, "'-'"),
    ],
)
def test_agency_refusals_name_the_input(directory, abbreviation, parent, message):
    before = snapshot(directory)
    with pytest.raises((AccountError, NamingError), match=message):
        accounts.add_agency(directory, "Tên cơ quan", abbreviation, parent=parent, profile=QT)
    assert snapshot(directory) == before


def test_agency_quota_minimum_is_five_gigabytes(directory):
    with pytest.raises(AccountError, match=r"agency mailboxes \(5G"):
        accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT, quota="4G")


def test_a_failed_agency_mailbox_removes_the_unit_created_for_it(directory, monkeypatch):
    real_add = directory.add

    def add(dn, classes, attributes):
        if dn.startswith("uid="):
            raise DirectoryError("adding failed (test)")
        real_add(dn, classes, attributes)

    monkeypatch.setattr(directory, "add", add)
    with pytest.raises(DirectoryError):
        accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT)
    assert not directory.exists(f"ou=sotp,{AGENCIES}")


# --- show and list -------------------------------------------------------------------------------


def test_show_gives_the_documented_fields(directory):
    dn = f"uid=sokhcn,{SOKHCN}"
    directory.modify(
        f"uid=tranthithuhuong,{SOKHCN}", {"govmailDelegateFor": [(ldap3.MODIFY_ADD, [f"sokhcn@{DOMAIN}"])]}
    )
    directory.modify(
        dn,
        {
            "govmailQuota": [(ldap3.MODIFY_ADD, [str(6 * 1024**3)])],
            "authTimestamp": [(ldap3.MODIFY_ADD, ["20261201083000Z"])],
            "pwdChangedTime": [(ldap3.MODIFY_ADD, ["20261120010203Z"])],
            "pwdReset": [(ldap3.MODIFY_ADD, ["TRUE"])],
        },
    )
    document = accounts.show(directory, "SOKHCN@quangtri.gov.vn")
    assert {
        "address", "dn", "name", "kind", "agency", "quota_bytes", "status", "last_login", "password_changed",
        "must_change_password", "delegates",
    } <= set(document)  # fmt: skip
    assert document["address"] == f"sokhcn@{DOMAIN}" and document["dn"] == dn
    assert document["name"] == "Sở Khoa học và Công nghệ" and document["kind"] == "agency"
    assert document["agency"] == "sokhcn" and document["status"] == "active"
    assert document["quota_bytes"] == 6 * 1024**3
    assert document["last_login"] == "2026-12-01T08:30:00Z"
    assert document["password_changed"] == "2026-11-20T01:02:03Z"
    assert document["must_change_password"] is True
    assert document["delegates"] == [f"tranthithuhuong@{DOMAIN}"]


def test_show_of_a_fresh_person_has_default_quota_and_no_dates(directory):
    document = accounts.show(directory, "nguyenvanlong")
    assert document["quota_bytes"] == 2 * 1024**3
    assert document["last_login"] is None and document["password_changed"] is None
    assert document["must_change_password"] is False and document["delegates"] == []


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("nobody@quangtri.gov.vn", "no mailbox nobody@quangtri.gov.vn"),
        ("long@example.com", "not in the mail domain quangtri.gov.vn"),
        ("", "address is empty"),
        ("a b@quangtri.gov.vn", "not a valid mailbox address"),
    ],
)
def test_show_refuses_what_is_not_a_mailbox(directory, address, message):
    with pytest.raises(AccountError, match=message):
        accounts.show(directory, address)


def test_show_of_an_alias_names_its_mailbox(directory):
    directory.modify(f"uid=nguyenvanlong,{SOKHCN}", {"govmailAlias": [(ldap3.MODIFY_ADD, [f"long@{DOMAIN}"])]})
    with pytest.raises(AccountError, match=f"alias of nguyenvanlong@{DOMAIN}"):
        accounts.show(directory, "long")


def test_list_is_sorted_and_filters_by_agency_and_status(directory):
    accounts.add_agency(directory, "Văn phòng Sở", "vp", parent="sokhcn", profile=QT)
    accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT)
    mailbox.lock(directory, "tranthithuhuong")
    everything = [doc["address"] for doc in accounts.list_mailboxes(directory)]
    assert everything == sorted(everything) and len(everything) == 5
    in_sokhcn = {doc["address"].split("@")[0] for doc in accounts.list_mailboxes(directory, agency="sokhcn")}
    assert in_sokhcn == {"sokhcn", "nguyenvanlong", "tranthithuhuong", "vp.sokhcn"}
    locked = accounts.list_mailboxes(directory, status="locked")
    assert [doc["address"] for doc in locked] == [f"tranthithuhuong@{DOMAIN}"]
    with pytest.raises(AccountError, match="status 'asleep' is unknown"):
        accounts.list_mailboxes(directory, status="asleep")
    with pytest.raises(AccountError, match="agency soxyz does not exist"):
        accounts.list_mailboxes(directory, agency="soxyz")


# --- lifecycle ------------------------------------------------------------------------------------


def test_lock_then_unlock_changes_status_and_its_time(directory):
    dn = f"uid=nguyenvanlong,{SOKHCN}"
    result = mailbox.lock(directory, "nguyenvanlong")
    assert result["changed"] and result["status"] == "locked" and result["previous_status"] == "active"
    stored = entry(directory, dn)
    assert stored["govmailstatus"] == ["locked"] and stored["govmailstatuschanged"]
    assert not mailbox.lock(directory, "nguyenvanlong")["changed"]
    assert mailbox.unlock(directory, "nguyenvanlong")["changed"]
    assert entry(directory, dn)["govmailstatus"] == ["active"]


def test_lock_and_terminate_lock_the_entry_in_the_directory_until_unlocked(directory):
    dn = f"uid=nguyenvanlong,{SOKHCN}"
    mailbox.lock(directory, "nguyenvanlong")
    assert entry(directory, dn)["pwdaccountlockedtime"] == [mailbox.PERMANENT_LOCKOUT]
    mailbox.unlock(directory, "nguyenvanlong")
    assert "pwdaccountlockedtime" not in entry(directory, dn)
    mailbox.terminate(directory, "nguyenvanlong")
    assert entry(directory, dn)["pwdaccountlockedtime"] == [mailbox.PERMANENT_LOCKOUT]


def test_unlock_ends_a_ppolicy_lockout(directory):
    dn = f"uid=nguyenvanlong,{SOKHCN}"
    directory.modify(dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_ADD, ["20261201080000Z"])]})
    assert accounts.show(directory, "nguyenvanlong")["locked_out_since"] == "2026-12-01T08:00:00Z"
    result = mailbox.unlock(directory, "nguyenvanlong")
    assert result["changed"] and result["previous_status"] == "active"
    assert "pwdaccountlockedtime" not in entry(directory, dn)


def test_terminated_mailbox_is_not_locked_or_reopened_without_force(directory):
    assert mailbox.terminate(directory, "nguyenvanlong")["status"] == "terminated"
    with pytest.raises(AccountError, match="terminated"):
        mailbox.lock(directory, "nguyenvanlong")
    with pytest.raises(AccountError, match="--force"):
        mailbox.unlock(directory, "nguyenvanlong")
    assert mailbox.unlock(directory, "nguyenvanlong", force=True)["status"] == "active"


def test_delete_needs_terminated_unless_forced(directory):
    with pytest.raises(AccountError, match=r"is active: only terminated mailboxes are deleted.*--force"):
        mailbox.delete(directory, "nguyenvanlong")
    mailbox.terminate(directory, "nguyenvanlong")
    result = mailbox.delete(directory, "nguyenvanlong")
    assert result["deleted"] and not directory.exists(f"uid=nguyenvanlong,{SOKHCN}")
    mailbox.delete(directory, "tranthithuhuong", force=True)
    assert not directory.exists(f"uid=tranthithuhuong,{SOKHCN}")


def test_deleting_an_agency_mailbox_ends_its_delegations(directory):
    delegation.handover(directory, "sokhcn", to="tranthithuhuong", profile=QT)
    mailbox.delete(directory, "sokhcn", force=True)
    assert "govmaildelegatefor" not in entry(directory, f"uid=tranthithuhuong,{SOKHCN}")


def test_deleting_the_clerk_leaves_the_agency_without_delegates(directory):
    delegation.handover(directory, "sokhcn", to="tranthithuhuong", profile=QT)
    mailbox.delete(directory, "tranthithuhuong", force=True)
    assert accounts.show(directory, "sokhcn")["delegates"] == []


# --- delegation ---------------------------------------------------------------------------------


def test_handover_delegates_to_the_clerk_and_rotates_the_agency_password(directory):
    before = entry(directory, f"uid=sokhcn,{SOKHCN}").get("userpassword")
    result = delegation.handover(directory, "sokhcn", to="nguyenvanlong", profile=QT)
    assert result["delegate"] == f"nguyenvanlong@{DOMAIN}" and result["previous_delegates"] == []
    assert result["login"] == f"sokhcn@{DOMAIN}*nguyenvanlong@{DOMAIN}"
    agency = entry(directory, f"uid=sokhcn,{SOKHCN}")
    assert agency["userpassword"] != before and agency["pwdreset"] == ["TRUE"]
    assert passwords.verify(result["agency_password"], agency["userpassword"][0])
    assert entry(directory, f"uid=nguyenvanlong,{SOKHCN}")["govmaildelegatefor"] == [f"sokhcn@{DOMAIN}"]
    assert accounts.show(directory, "sokhcn")["delegates"] == [f"nguyenvanlong@{DOMAIN}"]
    assert accounts.show(directory, "nguyenvanlong")["delegate_for"] == [f"sokhcn@{DOMAIN}"]


def test_handover_takes_the_delegation_from_the_previous_clerk(directory):
    delegation.handover(directory, "sokhcn", to="nguyenvanlong", profile=QT)
    result = delegation.handover(directory, "sokhcn", to="tranthithuhuong", profile=QT)
    assert result["previous_delegates"] == [f"nguyenvanlong@{DOMAIN}"]
    assert result["removed_delegates"] == [f"nguyenvanlong@{DOMAIN}"]
    assert "govmaildelegatefor" not in entry(directory, f"uid=nguyenvanlong,{SOKHCN}")
    assert [
        document["delegates"] for document in accounts.list_mailboxes(directory) if document["kind"] == "agency"
    ] == [[f"tranthithuhuong@{DOMAIN}"]]


def test_handover_to_the_same_clerk_keeps_one_delegation(directory):
    delegation.handover(directory, "sokhcn", to="nguyenvanlong", profile=QT)
    result = delegation.handover(directory, "sokhcn", to="nguyenvanlong", profile=QT)
    assert result["removed_delegates"] == []
    assert entry(directory, f"uid=nguyenvanlong,{SOKHCN}")["govmaildelegatefor"] == [f"sokhcn@{DOMAIN}"]


@pytest.mark.parametrize(
    ("agency", "clerk", "words"),
    [
        ("nguyenvanlong", "tranthithuhuong", "personal mailbox"),
        ("sokhcn", "sokhcn", "agency mailbox"),
    ],
)
def test_handover_refuses_wrong_kinds_and_changes_nothing(directory, agency, clerk, words):
    before = snapshot(directory)
    with pytest.raises(AccountError, match=words):
        delegation.handover(directory, agency, to=clerk, profile=QT)
    assert snapshot(directory) == before


def test_handover_refuses_a_person_of_another_agency(directory):
    accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT)
    outsider = accounts.add_person(directory, "Lê Văn Ngoài", "sotp", profile=QT)["address"]
    before = snapshot(directory)
    with pytest.raises(AccountError, match="must be a member of that agency"):
        delegation.handover(directory, "sokhcn", to=outsider, profile=QT)
    assert snapshot(directory) == before


def test_unlock_calls_off_a_pending_deletion(directory):
    dn = f"uid=nguyenvanlong,{SOKHCN}"
    mailbox.lock(directory, "nguyenvanlong")
    directory.modify(dn, {"govmailDeletionNotice": [(ldap3.MODIFY_ADD, ["20270523000000Z"])]})
    assert accounts.show(directory, "nguyenvanlong")["deletion_notice"] == "2027-05-23T00:00:00Z"
    mailbox.unlock(directory, "nguyenvanlong")
    assert "govmaildeletionnotice" not in entry(directory, dn)


def test_profile_for_applies_the_inventorys_overrides(project: Path, write_file):
    inventory = project / "inventories" / "lab"
    write_file(
        inventory / "group_vars" / "all" / "policy.yml",
        "govmail_policy_profile: ninhbinh-2020\ngovmail_policy_overrides:\n  inactivity_lock_days: 120\n",
    )
    profile = accounts.profile_for(inventory)
    assert profile.name == "ninhbinh-2020" and profile.inactivity_lock_days == 120
    assert accounts.profile_for(inventory, "laichau-2019").inactivity_lock_days == 180


def test_profile_for_refuses_overrides_that_are_not_a_mapping(project: Path, write_file):
    inventory = project / "inventories" / "lab"
    write_file(inventory / "group_vars" / "all" / "policy.yml", "govmail_policy_overrides: [1, 2]\n")
    with pytest.raises(policy.PolicyError, match="govmail_policy_overrides"):
        accounts.profile_for(inventory)


def test_handover_refuses_a_clerk_who_is_not_active(directory):
    mailbox.lock(directory, "nguyenvanlong")
    before = snapshot(directory)
    with pytest.raises(AccountError, match="only an active mailbox"):
        delegation.handover(directory, "sokhcn", to="nguyenvanlong", profile=QT)
    assert snapshot(directory) == before


# --- passwords --------------------------------------------------------------------------------------


def test_reset_password_sets_a_new_initial_password_to_be_changed(directory):
    result = accounts.reset_password(directory, "nguyenvanlong", profile=QT)
    stored = entry(directory, f"uid=nguyenvanlong,{SOKHCN}")
    assert passwords.verify(result["initial_password"], stored["userpassword"][0])
    assert stored["pwdreset"] == ["TRUE"]


def test_reset_password_with_a_chosen_password_checks_the_policy(directory):
    before = snapshot(directory)
    with pytest.raises(PasswordError, match="lacks a special character"):
        accounts.reset_password(directory, "nguyenvanlong", profile=QT, password="Abcdefgh1")
    assert snapshot(directory) == before
    result = accounts.reset_password(directory, "nguyenvanlong", profile=QT, password="Chosen#Pass-42")
    assert result["initial_password"] == "Chosen#Pass-42"


@pytest.fixture
def password_modify(monkeypatch):
    """RFC 3062 for the mock server: as slapd with ppolicy (history of 5, clears pwdReset)."""

    def modify_password(self, user=None, old_password=None, new_password=None, **_):
        connection = self._connection
        stored = connection.server.dit[user]
        history = stored.setdefault("pwdHistory", [])
        if new_password.encode() in history or [new_password.encode()] == stored["userPassword"]:
            message = "Password is in history of old passwords"
            connection.result = {"result": 19, "description": "constraintViolation", "message": message}
            return False
        history.append(stored["userPassword"][0])
        stored["userPassword"] = [new_password.encode()]
        stored.pop("pwdReset", None)
        connection.result = {"result": 0, "description": "success", "message": ""}
        return True

    monkeypatch.setattr(StandardExtendedOperations, "modify_password", modify_password)


def test_owner_changes_the_password_and_the_reset_flag_goes(directory, password_modify):
    dn = f"uid=nguyenvanlong,{SOKHCN}"
    directory.modify(dn, {"pwdReset": [(ldap3.MODIFY_ADD, ["TRUE"])]})
    result = accounts.change_password(directory, "nguyenvanlong", old=OWNER_PASSWORD, new="New#Pass-2026", profile=QT)
    assert result["changed"]
    assert "pwdreset" not in entry(directory, dn)
    assert directory.bind_as(dn, "New#Pass-2026").bound


def test_weak_new_password_is_refused_before_the_directory_is_asked(directory, password_modify):
    before = snapshot(directory)
    with pytest.raises(PasswordError, match=r"password refused by policy quangtri-2026: .*lacks an upper-case letter"):
        accounts.change_password(directory, "nguyenvanlong", old=OWNER_PASSWORD, new="weak#pass-1", profile=QT)
    assert snapshot(directory) == before


def test_wrong_old_password_is_named(directory, password_modify):
    with pytest.raises(AccountError, match="old password is wrong"):
        accounts.change_password(directory, "nguyenvanlong", old="Not#The-Old-1", new="New#Pass-2026", profile=QT)


def test_password_in_history_is_refused_with_the_servers_words(directory, password_modify):
    accounts.change_password(directory, "nguyenvanlong", old=OWNER_PASSWORD, new="New#Pass-2026", profile=QT)
    with pytest.raises(PasswordError, match="Password is in history of old passwords"):
        accounts.change_password(directory, "nguyenvanlong", old="New#Pass-2026", new=OWNER_PASSWORD, profile=QT)


def test_same_new_and_old_password_is_refused(directory, password_modify):
    with pytest.raises(PasswordError, match="is the old one"):
        accounts.change_password(directory, "nguyenvanlong", old=OWNER_PASSWORD, new=OWNER_PASSWORD, profile=QT)


# --- quota ---------------------------------------------------------------------------------------------


def test_set_quota_stores_bytes_and_reports_the_previous(directory):
    result = accounts.set_quota(directory, "nguyenvanlong", "3G")
    assert result["quota_bytes"] == 3 * 1024**3 and result["previous_quota_bytes"] == 2 * 1024**3
    assert entry(directory, f"uid=nguyenvanlong,{SOKHCN}")["govmailquota"] == [str(3 * 1024**3)]
    assert accounts.show(directory, "nguyenvanlong")["quota_bytes"] == 3 * 1024**3


@pytest.mark.parametrize(("address", "size"), [("nguyenvanlong", "1G"), ("sokhcn", "4G"), ("nguyenvanlong", "2000M")])
def test_set_quota_below_the_kind_minimum_is_refused(directory, address, size):
    with pytest.raises(AccountError, match="below the minimum"):
        accounts.set_quota(directory, address, size)


# --- import ------------------------------------------------------------------------------------------


def csv_file(tmp_path: Path, text: str, name: str = "staff.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_import_creates_agencies_then_people_and_gives_each_a_password(directory, tmp_path):
    path = csv_file(
        tmp_path,
        "Họ và tên,Cơ quan,Loại,Dung lượng\n"
        "Nguyễn Văn Long,sokhcn,,\n"
        "Hoàng Thị Ánh,vp.sokhcn,,3G\n"
        "Văn phòng Sở,vp.sokhcn,agency,\n"
        "Nguyễn Văn Long,vp.sokhcn,,\n",
    )
    result = account_import.import_file(directory, path, profile=QT)
    rows = {doc["row"]: doc for doc in result["rows"]}
    assert sorted(rows) == [2, 3, 4, 5]
    assert rows[2]["address"] == f"nguyenvanlong1@{DOMAIN}"
    assert rows[5]["address"] == f"nguyenvanlong2@{DOMAIN}"
    assert rows[4]["address"] == f"vp.sokhcn@{DOMAIN}" and rows[4]["kind"] == "agency"
    assert rows[3]["dn"] == f"uid=hoangthianh,ou=vp,{SOKHCN}" and rows[3]["quota_bytes"] == 3 * 1024**3
    for doc in rows.values():
        stored = entry(directory, doc["dn"])
        assert passwords.verify(doc["initial_password"], stored["userpassword"][0])
        assert stored["pwdreset"] == ["TRUE"]


def test_import_without_header_with_bom_and_semicolons(directory, tmp_path):
    path = csv_file(tmp_path, "\ufeffPhạm Thị Kiểm Thử;sokhcn\n\n", encoding="utf-8")
    result = account_import.import_file(directory, path, profile=QT)
    assert [doc["address"] for doc in result["rows"]] == [f"phamthikiemthu@{DOMAIN}"]
    assert result["rows"][0]["row"] == 1


def test_import_reports_every_bad_row_and_changes_nothing(directory, tmp_path):
    path = csv_file(
        tmp_path,
        "name,agency,kind,quota\n"
        "Lê Thị Hoa,sokhcn,,\n"  # 2 fine
        "Nguyễn Văn 3,sokhcn,,\n"  # 3 digit in name
        "Trần Văn Nam,soxyz,,\n"  # 4 unknown agency
        "Lê Thị Hoa,sokhcn,,\n"  # 5 repeats row 2
        "Đỗ Thị Mai,sokhcn,boss,\n"  # 6 unknown kind
        "Vũ Văn Bình,sokhcn,,1G\n"  # 7 quota too small
        "Sở Khoa học,sokhcn,agency,\n"  # 8 agency exists
        ",sokhcn,,\n",  # 9 no name
    )
    before = snapshot(directory)
    with pytest.raises(ImportRowsError) as caught:
        account_import.import_file(directory, path, profile=QT)
    assert [error.row for error in caught.value.errors] == [3, 4, 5, 6, 7, 8, 9]
    messages = {error.row: error.error for error in caught.value.errors}
    assert "digit" in messages[3] and "soxyz does not exist" in messages[4] and "repeats row 2" in messages[5]
    assert "boss" in messages[6] and "below the minimum" in messages[7] and "already exists" in messages[8]
    assert "nothing was changed" in str(caught.value) and "rows 3, 4, 5, 6, 7, 8, 9" in str(caught.value)
    assert snapshot(directory) == before


def test_import_dry_run_shows_addresses_and_changes_nothing(directory, tmp_path):
    path = csv_file(tmp_path, "Nguyễn Văn Long,sokhcn\nNguyễn Văn Long,sokhcn,personal,3G\n")
    with pytest.raises(ImportRowsError, match="1 of 2 rows"):
        account_import.import_file(directory, path, profile=QT, dry_run=True)
    path = csv_file(tmp_path, "Nguyễn Văn Long,sokhcn\nNguyễn Văn Long,sokhcn1\n", name="two.csv")
    with pytest.raises(ImportRowsError):
        account_import.import_file(directory, path, profile=QT, dry_run=True)
    path = csv_file(tmp_path, "Nguyễn Văn Long,sokhcn\nLê Văn Tám,sokhcn,,3G\n", name="ok.csv")
    before = snapshot(directory)
    result = account_import.import_file(directory, path, profile=QT, dry_run=True)
    assert result["dry_run"] and [doc["address"] for doc in result["rows"]] == [
        f"nguyenvanlong1@{DOMAIN}", f"levantam@{DOMAIN}",
    ]  # fmt: skip
    assert all(doc["initial_password"] is None for doc in result["rows"])
    assert snapshot(directory) == before


def test_import_that_fails_midway_reports_exactly_the_applied_rows(directory, tmp_path, monkeypatch):
    path = csv_file(tmp_path, "Lê Văn Một,sokhcn\nLê Văn Hai,sokhcn\nLê Văn Ba,sokhcn\nLê Văn Bốn,sokhcn\n")
    real_add = directory.add
    calls = []

    def add(dn, classes, attributes):
        calls.append(dn)
        if len(calls) == 3:
            raise DirectoryError("the directory at ldaps://mock:636 failed during adding (test)")
        real_add(dn, classes, attributes)

    monkeypatch.setattr(directory, "add", add)
    with pytest.raises(ImportApplyError) as caught:
        account_import.import_file(directory, path, profile=QT)
    report = caught.value.report
    assert [doc["row"] for doc in report["rows"]] == [1, 2]
    assert all(doc["initial_password"] for doc in report["rows"])
    assert report["failed"]["row"] == 3 and report["not_applied"] == [4]
    assert "rows applied: 1, 2" in str(caught.value)
    assert directory.exists(f"uid=levanmot,{SOKHCN}") and not directory.exists(f"uid=levanba,{SOKHCN}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeN\x00", "is not UTF-8"),
        (b"\n\n", "has no rows"),
        (b"name,kind\nA B,personal\n", "no agency column"),
        (b'"Nguyen Van A,sokhcn\n', "not valid CSV"),
    ],
)
def test_an_unreadable_import_file_is_refused_whole(directory, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(AccountError, match=message):
        account_import.import_file(directory, path, profile=QT)


def test_import_of_a_missing_file_names_it(directory, tmp_path):
    with pytest.raises(AccountError, match=r"missing\.csv does not exist"):
        account_import.import_file(directory, tmp_path / "missing.csv", profile=QT)


# --- profile ---------------------------------------------------------------------------------------


def test_profile_comes_from_the_inventory_unless_given(project: Path, write_file):
    inventory = project / "inventories" / "lab"
    assert accounts.profile_for(inventory).name == "quangtri-2026"
    write_file(inventory / "group_vars" / "all" / "policy.yml", "govmail_policy_profile: ninhbinh-2020\n")
    assert accounts.profile_for(inventory).name == "ninhbinh-2020"
    assert accounts.profile_for(inventory, "laichau-2019").name == "laichau-2019"


# --- the command line -----------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_directory(project: Path, directory, monkeypatch):
    """The CLI talks to the mock directory instead of opening LDAPS."""
    directory.close = lambda: None
    monkeypatch.setattr(Directory, "open", classmethod(lambda cls, settings: directory))
    return directory


def test_cli_add_prints_address_dn_and_initial_password_as_json(cli_directory):
    result = runner.invoke(cli.app, ["account", "add", "Phạm Thị Kiểm Thử", "--agency", "sokhcn", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["address"] == f"phamthikiemthu@{DOMAIN}"
    assert document["dn"] == f"uid=phamthikiemthu,{SOKHCN}"
    passwords.check(document["initial_password"], profile=QT)


def test_cli_add_agency_needs_an_abbreviation(cli_directory):
    result = runner.invoke(cli.app, ["account", "add", "Sở Tư pháp", "--kind", "agency"])
    assert result.exit_code == 1 and result.stdout == ""
    assert (
        result.stderr.strip() == "govmail: the abbreviation of 'Sở Tư pháp' is missing: add --abbreviation, e.g. sokhcn"
    )


def test_cli_show_json_and_one_line_error(cli_directory):
    result = runner.invoke(cli.app, ["account", "show", "nguyenvanlong@quangtri.gov.vn", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "Nguyễn Văn Long"
    result = runner.invoke(cli.app, ["account", "show", "ghost@quangtri.gov.vn"])
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("govmail: no mailbox ghost@quangtri.gov.vn")


@pytest.fixture
def host_delete(cli_directory, tmp_path, monkeypatch):
    """`account delete` runs `govmail-lifecycle delete` on the directory host: here in-process,
    against the mock directory, with the Maildirs and the archive under ``tmp_path``."""
    config = lifecycle.Config(
        domain=DOMAIN, base_dn=cli_directory.base_dn, profile=QT,
        vmail_dir=str(tmp_path / "vmail"), archive_dir=str(tmp_path / "archive"), doveadm="/bin/true",
    )  # fmt: skip
    monkeypatch.setattr(Directory, "open_local", classmethod(lambda cls, uri, **kwargs: cli_directory))

    def run_on_host(inventory, name, arguments, error, what):
        assert (name, arguments[0]) == ("govmail-lifecycle", "delete")
        try:
            return lifecycle.delete_now(config, arguments[1], force="--force" in arguments)
        except errors.GovmailError as exc:
            raise error(f"{what} on mail1 failed: {exc}") from None

    monkeypatch.setattr(account_commands, "directory_host_program", run_on_host)
    return tmp_path


def test_cli_delete_archives_the_entry_and_the_maildir_before_removing_them(host_delete):
    maildir = host_delete / "vmail" / DOMAIN / "nguyenvanlong" / "Maildir" / "cur"
    maildir.mkdir(parents=True)
    (maildir / "1.host:2,S").write_bytes(b"Subject: Bao cao\r\n\r\nNoi dung\r\n")
    result = runner.invoke(cli.app, ["account", "delete", "nguyenvanlong", "--force", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["address"] == f"nguyenvanlong@{DOMAIN}" and document["previous_status"] == "active"
    assert document["webmail"] is None  # no Roundcube on this host
    assert not maildir.exists()  # the address, given to someone later, starts empty
    with tarfile.open(document["archive"]) as archive:
        assert archive.extractfile("home/Maildir/cur/1.host:2,S").read() == b"Subject: Bao cao\r\n\r\nNoi dung\r\n"
        assert json.load(archive.extractfile("entry.json"))["dn"] == f"uid=nguyenvanlong,{SOKHCN}"


def test_cli_lifecycle_and_quota_commands(cli_directory, host_delete):
    assert runner.invoke(cli.app, ["account", "lock", "nguyenvanlong"]).stdout.strip().endswith("locked (was active)")
    listed = runner.invoke(cli.app, ["account", "list", "--status", "locked", "--json"])
    assert [doc["address"] for doc in json.loads(listed.stdout)] == [f"nguyenvanlong@{DOMAIN}"]
    assert runner.invoke(cli.app, ["account", "unlock", "nguyenvanlong"]).exit_code == 0
    quota = runner.invoke(cli.app, ["account", "set-quota", "nguyenvanlong", "3G", "--json"])
    assert json.loads(quota.stdout)["quota_bytes"] == 3 * 1024**3
    refused = runner.invoke(cli.app, ["account", "delete", "nguyenvanlong"])
    assert refused.exit_code == 1 and "only terminated mailboxes are deleted" in refused.stderr
    assert runner.invoke(cli.app, ["account", "terminate", "nguyenvanlong"]).exit_code == 0
    assert runner.invoke(cli.app, ["account", "delete", "nguyenvanlong"]).exit_code == 0
    listed = runner.invoke(cli.app, ["account", "list"])
    assert "nguyenvanlong@" not in listed.stdout and "2 mailboxes" in listed.stdout


def test_cli_reset_and_passwd(cli_directory, password_modify):
    reset = runner.invoke(cli.app, ["account", "reset-password", "tranthithuhuong", "--json"])
    initial = json.loads(reset.stdout)["initial_password"]
    # the mock server compares plain text: store the initial password as slapd would verify it
    cli_directory.connection.server.dit[f"uid=tranthithuhuong,{SOKHCN}"]["userPassword"] = [initial.encode()]
    weak = runner.invoke(cli.app, ["account", "passwd", "tranthithuhuong", "--old", initial, "--new", "short"])
    assert weak.exit_code == 1 and "needs at least 8" in weak.stderr
    wrong = runner.invoke(cli.app, ["account", "passwd", "tranthithuhuong", "--old", "x", "--new", "Good#Pass-2026"])
    assert wrong.exit_code == 1 and "old password is wrong" in wrong.stderr
    done = runner.invoke(cli.app, ["account", "passwd", "tranthithuhuong", "--old", initial, "--new", "Good#Pass-2026"])
    assert done.exit_code == 0, done.output
    assert "password changed" in done.stdout


def test_cli_import_lists_bad_rows_then_one_error_line(cli_directory, tmp_path):
    path = csv_file(tmp_path, "Lê Thị Hoa,sokhcn\nTrần Văn Nam,soxyz\nĐỗ Văn 9,sokhcn\n")
    result = runner.invoke(cli.app, ["account", "import", str(path)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("row 2:") and lines[1].startswith("row 3:")
    assert lines[-1].startswith("govmail: ") and "nothing was changed" in lines[-1]
    as_json = runner.invoke(cli.app, ["account", "import", str(path), "--json"])
    assert [error["row"] for error in json.loads(as_json.stdout)["errors"]] == [2, 3]


def test_cli_import_json_gives_address_and_password_per_row(cli_directory, tmp_path):
    path = csv_file(tmp_path, "Lê Thị Hoa,sokhcn\nTrần Văn Nam,sokhcn,,3G\n")
    result = runner.invoke(cli.app, ["account", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [(row["row"], row["address"]) for row in rows] == [(1, f"lethihoa@{DOMAIN}"), (2, f"tranvannam@{DOMAIN}")]
    assert all(row["initial_password"] for row in rows)


def test_namesakes_told_apart_by_another_column_are_numbered(directory, tmp_path):
    path = csv_file(
        tmp_path,
        "Họ và tên,Cơ quan,Ngày sinh\nNguyễn Thị Hương,sokhcn,1980-01-02\nNguyễn Thị Hương,sokhcn,1991-05-06\n",
    )
    result = account_import.import_file(directory, path, profile=QT)
    assert [doc["address"] for doc in result["rows"]] == [f"nguyenthihuong@{DOMAIN}", f"nguyenthihuong1@{DOMAIN}"]


def test_a_header_with_a_column_twice_is_refused(directory, tmp_path):
    path = csv_file(tmp_path, "name,agency,name\nA B,sokhcn,C D\n")
    with pytest.raises(AccountError, match="two name columns"):
        account_import.import_file(directory, path, profile=QT)


def test_deleting_an_agency_mailbox_removes_its_empty_unit_only(directory):
    accounts.add_agency(directory, "Sở Tư pháp", "sotp", profile=QT)
    result = mailbox.delete(directory, "sotp", force=True)
    assert result["agency_unit_removed"] and not directory.exists(f"ou=sotp,{AGENCIES}")
    result = mailbox.delete(directory, "sokhcn", force=True)
    assert not result["agency_unit_removed"] and directory.exists(SOKHCN)

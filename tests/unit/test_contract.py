"""The status and credentials documents of DESIGN.md, built from inventory data and secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from govmail import contract
from govmail.errors import ContractError
from govmail.inventory import Site

LAB_PORTS = {
    "smtp": 10025,
    "submission": 10587,
    "submissions": 10465,
    "pop3": 10110,
    "pop3s": 10995,
    "imap": 10143,
    "imaps": 10993,
    "managesieve": 14190,
    "ldap": 10389,
    "ldaps": 10636,
    "http": 10080,
    "https": 10443,
}


@pytest.mark.parametrize(("service", "port"), LAB_PORTS.items(), ids=list(LAB_PORTS))
def test_lab_endpoint_is_the_standard_port_plus_10000_on_localhost(service, port):
    assert contract.endpoints()[service] == {"host": "127.0.0.1", "port": port}


@pytest.mark.parametrize(("service", "port"), LAB_PORTS.items(), ids=list(LAB_PORTS))
def test_molecule_endpoint_is_the_standard_port_plus_20000(service, port):
    assert contract.endpoints(offset=contract.MOLECULE_PORT_OFFSET)[service]["port"] == port + 10000


def test_endpoints_name_exactly_the_twelve_services():
    assert list(contract.endpoints()) == list(LAB_PORTS)


def test_unknown_service_error_lists_the_known_ones():
    with pytest.raises(ContractError, match=r"unknown service 'smtps'.*submissions"):
        contract.published_port("smtps")


def test_status_reads_domain_and_resolves_a_templated_mail_hostname(project: Path):
    document = contract.status(hosts={"mail1": "running", "backup1": "absent"})
    assert document["domain"] == "quangtri.gov.vn"
    assert document["mail_hostname"] == "mail.quangtri.gov.vn"
    assert document["hosts"] == {"mail1": "running", "backup1": "absent"}
    assert document["endpoints"]["https"] == {"host": "127.0.0.1", "port": 10443}


def test_status_with_an_explicit_inventory_and_offset(project: Path):
    document = contract.status(offset=20000, inventory_dir=project / "inventories" / "lab")
    assert document["endpoints"]["smtp"]["port"] == 20025
    assert document["hosts"] == {}


def test_status_refuses_an_unknown_host_state(project: Path):
    with pytest.raises(ContractError, match=r"host mail1 has state 'exited'.*running, stopped, absent"):
        contract.status(hosts={"mail1": "exited"})


def test_credentials_give_the_ca_path_admin_and_every_seeded_account(project: Path, secrets):
    document = contract.credentials()
    ca = Path(document["ca_certificate"])
    assert ca.is_absolute() and ca == (project / ".lab" / "secrets" / "pki" / "ca.crt").resolve()
    assert document["ldap_admin"] == {"dn": "cn=admin,dc=quangtri,dc=gov,dc=vn", "password": secrets["ldap-admin"]}
    assert [a["address"] for a in document["accounts"]] == [
        "sokhcn@quangtri.gov.vn",
        "nguyenvanlong@quangtri.gov.vn",
        "tranthithuhuong@quangtri.gov.vn",
    ]


def test_credentials_account_carries_password_kind_and_vietnamese_name(project: Path, secrets):
    account = contract.credentials()["accounts"][1]
    assert account["password"] == secrets["mailbox-nguyenvanlong"]
    assert account["kind"] == "personal"
    assert account["name"] == "Nguyễn Văn Long"


def test_credentials_take_explicit_secrets_and_inventory_dirs(project: Path, tmp_path: Path, secrets, write_file):
    other = tmp_path / "molecule-secrets"
    write_file(other / "pki" / "ca.crt", "x")
    for name in secrets:
        write_file(other / name, "other-" + name)
    document = contract.credentials(secrets_dir=other, inventory_dir=project / "inventories" / "lab")
    assert document["ca_certificate"] == str((other / "pki" / "ca.crt").resolve())
    assert document["ldap_admin"]["password"] == "other-ldap-admin"


def test_credentials_follow_the_secrets_dir_environment_variable(
    project: Path, tmp_path, monkeypatch, secrets, write_file
):
    other = tmp_path / "env-secrets"
    write_file(other / "pki" / "ca.crt", "x")
    for name in secrets:
        write_file(other / name, "env-" + name)
    monkeypatch.setenv("GOVMAIL_SECRETS_DIR", str(other))
    assert contract.credentials()["ldap_admin"]["password"] == "env-ldap-admin"


def test_missing_secret_error_names_the_file_and_says_to_provision(project: Path):
    (project / ".lab" / "secrets" / "mailbox-nguyenvanlong").unlink()
    with pytest.raises(ContractError, match=r"mailbox-nguyenvanlong does not exist yet.*govmail lab up"):
        contract.credentials()


def test_missing_ca_error_names_the_file(project: Path):
    (project / ".lab" / "secrets" / "pki" / "ca.crt").unlink()
    with pytest.raises(ContractError, match=r"pki/ca\.crt does not exist yet"):
        contract.credentials()


def test_empty_secret_error_says_to_delete_it(project: Path):
    (project / ".lab" / "secrets" / "ldap-admin").write_text("\n")
    with pytest.raises(ContractError, match=r"ldap-admin is empty: delete it"):
        contract.credentials()


def test_missing_domain_error_names_the_variable_and_the_file(project: Path):
    vars_yml = project / "inventories" / "lab" / "group_vars" / "all" / "vars.yml"
    vars_yml.write_text("govmail_mail_hostname: mail.example.gov.vn\n")
    with pytest.raises(ContractError, match=r"govmail_domain is not set in inventory .*lab: add it to group_vars/all"):
        contract.status()


def test_inventory_without_hosts_is_refused(project: Path, tmp_path: Path):
    with pytest.raises(ContractError, match=r"inventory .* has no hosts: add them to hosts.yml"):
        contract.status(inventory_dir=(tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_mailbox_with_an_unknown_kind_is_named(project: Path, write_file):
    write_file(
        project / "inventories" / "lab" / "group_vars" / "all" / "mailboxes.yml",
        "govmail_seed_mailboxes:\n  - {uid: leduc, name: Lê Đức, kind: boss}\n",
    )
    with pytest.raises(ContractError, match=r"leduc has kind 'boss'.*personal, agency"):
        contract.credentials()


def test_duplicate_mailbox_uid_is_refused(project: Path, write_file):
    write_file(
        project / "inventories" / "lab" / "group_vars" / "all" / "mailboxes.yml",
        "govmail_seed_mailboxes:\n  - {uid: leduc, kind: personal}\n  - {uid: leduc, kind: agency}\n",
    )
    with pytest.raises(ContractError, match=r"uid leduc appears twice"):
        contract.credentials()


def _encrypt(text: str, password: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("default", VaultSecret(password.encode()))]).encrypt(text).decode()


def test_vault_files_are_decrypted_with_the_configured_password_file(project: Path, write_file, tmp_path: Path):
    """As ansible-playbook does: a site keeping its domain in an encrypted vars file still works."""
    all_dir = project / "inventories" / "lab" / "group_vars" / "all"
    write_file(all_dir / "vars.yml", "---\ngovmail_mail_hostname: mail.quangtri.gov.vn\n")
    write_file(all_dir / "vault.yml", _encrypt("govmail_domain: quangtri.gov.vn\n", "s3cret-vault"))
    password_file = write_file(tmp_path / "vault-pass", "s3cret-vault\n")
    site = Site(project / "inventories" / "lab", project, vault_password_files=[str(password_file)])
    assert site.value("govmail_domain") == "quangtri.gov.vn"


def test_a_vault_file_without_its_password_is_one_line_naming_the_inventory(project: Path, write_file):
    all_dir = project / "inventories" / "lab" / "group_vars" / "all"
    write_file(all_dir / "vault.yml", _encrypt("vault_x: 1\n", "s3cret-vault"))
    with pytest.raises(ContractError, match=r"inventory .*lab.*vault") as raised:
        contract.status()
    assert "\n" not in str(raised.value)


def test_invalid_yaml_is_reported_with_its_file(project: Path, write_file):
    write_file(project / "inventories" / "lab" / "group_vars" / "all" / "broken.yml", "a: [1, 2\n")
    with pytest.raises(ContractError, match=r"broken\.yml"):
        contract.status()


def test_unresolvable_reference_in_mail_hostname_is_reported(project: Path):
    vars_yml = project / "inventories" / "lab" / "group_vars" / "all" / "vars.yml"
    vars_yml.write_text("govmail_domain: quangtri.gov.vn\ngovmail_mail_hostname: 'mail.{{ nowhere }}'\n")
    with pytest.raises(ContractError, match=r"govmail_mail_hostname in inventory .* cannot be templated.*nowhere"):
        contract.status()


def test_a_base_dn_override_is_used_for_the_admin_dn(project: Path, write_file):
    write_file(project / "inventories" / "lab" / "group_vars" / "all" / "ldap.yml", "govmail_ldap_base_dn: o=qt,c=vn\n")
    assert contract.credentials()["ldap_admin"]["dn"] == "cn=admin,o=qt,c=vn"
    assert contract.status()["base_dn"] == "o=qt,c=vn"


def test_the_repository_lab_inventory_satisfies_the_contract():
    repo = Path(__file__).resolve().parents[2]
    inventory = repo / "inventories" / "lab"
    if not (inventory / "group_vars" / "all" / "vars.yml").exists():
        pytest.skip("inventories/lab not written yet")
    document = contract.status(inventory_dir=inventory)
    assert document["domain"] == "quangtri.gov.vn"
    assert document["mail_hostname"] == "mail.quangtri.gov.vn"
    kinds = [m["kind"] for m in contract.seed_mailboxes(inventory)]
    assert kinds.count("personal") >= 2 and kinds.count("agency") >= 1

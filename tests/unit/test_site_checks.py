"""The first play stops a site whose shared facts disagree or break the rules, before any change.

Each case runs the real ``govmail`` role with ``ansible-playbook`` (local connection, no hosts are
touched) against an inventory that gets one thing wrong, and reads Ansible's refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

HOSTS = """\
---
all:
  hosts:
    dir1: {ansible_connection: local}
    store1: {ansible_connection: local}
  children:
    ldap: {hosts: {dir1: }}
    mailstore: {hosts: {store1: }}
"""
PLAYBOOK = """\
---
- name: Shared facts only
  hosts: all
  gather_facts: false
  roles:
    - role: govmail
"""


def converge(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    inventory = tmp_path / "site"
    for name, text in {
        "hosts.yml": HOSTS,
        "group_vars/all/vars.yml": "---\ngovmail_domain: quangtri.gov.vn\n",
        **files,
    }.items():
        (inventory / name).parent.mkdir(parents=True, exist_ok=True)
        (inventory / name).write_text(text)
    (tmp_path / "check.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPOSITORY / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPOSITORY / "roles"))
    env["ANSIBLE_FILTER_PLUGINS"] = str(REPOSITORY / "plugins" / "filter")
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        str(inventory),
        str(tmp_path / "check.yml"),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_a_consistent_site_passes(tmp_path):
    result = converge(tmp_path, {"group_vars/all/quota.yml": "---\ngovmail_quota_personal: 3G\n"})
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"host_vars/store1.yml": "---\ngovmail_quota_personal: 10G\n"},
            "govmail_quota_personal differs between hosts",
        ),
        (
            {"group_vars/ldap.yml": "---\ngovmail_ldap_base_dn: o=tinh,c=vn\n"},
            "govmail_ldap_base_dn differs between hosts",
        ),
        ({"group_vars/all/quota.yml": "---\ngovmail_quota_personal: 3 gigs\n"}, "govmail_quota_personal is '3 gigs'"),
        ({"group_vars/all/quota.yml": "---\ngovmail_quota_agency: 1G\n"}, "below the regulation's minimum for agency"),
        (
            {"hosts.yml": HOSTS.replace("ldap: {hosts: {dir1: }}", "directory: {hosts: {dir1: }}")},
            "no host in the `ldap` group",
        ),
        (
            {"group_vars/all/policy.yml": "---\ngovmail_policy_overrides: {inactivity_lock_days: 0}\n"},
            "policy override inactivity_lock_days (profile quangtri-2026) is 0",
        ),
    ],
    ids=["quota-per-host", "base-dn-per-group", "quota-not-a-size", "quota-below-m6", "no-ldap-group", "bad-override"],
)
def test_a_site_that_gets_a_shared_fact_wrong_is_stopped_with_its_name(tmp_path, files, message):
    result = converge(tmp_path, files)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]

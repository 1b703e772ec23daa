"""Fixtures: a throw-away project directory with an inventory and fake lab secrets."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

VARS_YML = """\
---
govmail_domain: quangtri.gov.vn
govmail_mail_hostname: "mail.{{ govmail_domain }}"
govmail_secrets_dir: >-
  {{ lookup('ansible.builtin.env', 'GOVMAIL_SECRETS_DIR', default='')
     or ((inventory_dir ~ '/../../.lab/secrets') | ansible.builtin.realpath) }}
openldap_admin_password: "{{ lookup('govmail_secret', 'ldap-admin', dir=govmail_secrets_dir) }}"
"""

MAILBOXES_YML = """\
---
govmail_seed_agencies:
  - abbreviation: sokhcn
    name: Sở Khoa học và Công nghệ
govmail_seed_mailboxes:
  - uid: sokhcn
    name: Sở Khoa học và Công nghệ
    kind: agency
    agency: sokhcn
  - uid: nguyenvanlong
    name: Nguyễn Văn Long
    kind: personal
    agency: sokhcn
  - uid: tranthithuhuong
    name: Trần Thị Thu Hương
    kind: personal
    agency: sokhcn
"""

REPOSITORY = Path(__file__).resolve().parents[2]

SECRETS = {
    "ldap-admin": "Adm1n!secret-value",
    "mailbox-sokhcn": "Agency#Pass-1234",
    "mailbox-nguyenvanlong": "Long#Pass-5678",
    "mailbox-tranthithuhuong": "Huong#Pass-9012",
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project checkout with the lab inventory and a provisioned lab's secrets."""
    root = tmp_path / "checkout"
    write(root / "playbooks" / "site.yml", "---\n- name: Nothing\n  hosts: all\n  tasks: []\n")
    # The real shared defaults and plugins: the CLI reads inventories through Ansible with them
    # (and the backup role's defaults: which groups are backup clients).
    for part in ("ansible.cfg", "plugins", "roles/govmail", "roles/backup/defaults"):
        source = REPOSITORY / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / part)
    inventory = root / "inventories" / "lab"
    write(inventory / "hosts.yml", "all:\n  hosts:\n    mail1:\n    backup1:\n")
    write(inventory / "group_vars" / "all" / "vars.yml", VARS_YML)
    write(inventory / "group_vars" / "all" / "mailboxes.yml", MAILBOXES_YML)
    secrets = root / ".lab" / "secrets"
    for name, value in SECRETS.items():
        write(secrets / name, value + "\n")
    write(secrets / "pki" / "ca.crt", "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("GOVMAIL_PROJECT_DIR", str(root))
    monkeypatch.delenv("GOVMAIL_SECRETS_DIR", raising=False)
    return root


@pytest.fixture
def secrets() -> dict[str, str]:
    """The fake secrets written into the ``project`` fixture, by name."""
    return dict(SECRETS)


@pytest.fixture
def write_file():
    """``write_file(path, text)``: create a file and its parent directories."""
    return write

"""A whole restore onto a mail host that never saw the original (O1, issue 11).

Named ``zz`` so it runs last: it throws the mail host away. The module backs up, replaces the mail
container by a brand-new one from the base image (same name, network address and published ports,
an empty file system), empties the controller's secrets directory except the two things an
operator keeps away from the appliance (the repository's passphrase and the recovery passphrase;
the third, the inventory, is Molecule's) and runs ``playbooks/restore.yml``. The backup host,
which holds the repository, stays. The stack it leaves behind is the restored one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import clients
import pytest
from clients import wait_for
from conftest import MAIL_CONTAINER, PROJECT_DIR, SECRETS_DIR, make_message, ok_json
from test_backup import OUTSIDER, open_imaps, snapshot_of

#: What an operator keeps away from the appliance (with the inventory): the lab's generated copies.
KEPT_BY_THE_OPERATOR = ("backup-repository", "backup-recovery")


def _inventory() -> Path:
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not ephemeral or not SECRETS_DIR:
        pytest.skip("replaces the mail host: runs only on a Molecule scenario (MOLECULE_EPHEMERAL_DIRECTORY)")
    return Path(ephemeral) / "inventory"


def _docker(*args: str) -> str:
    completed = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=300)
    assert completed.returncode == 0, f"docker {args[0]}: {completed.stderr.strip()}"
    return completed.stdout.strip()


def replace_container(name: str) -> str:
    """Remove container ``name`` and start a new one from its image with the same name, host name,
    network address, published ports, capabilities and tmpfs; returns the new container's id."""
    spec = json.loads(_docker("inspect", name))[0]
    host, config = spec["HostConfig"], spec["Config"]
    (network, settings), *_ = spec["NetworkSettings"]["Networks"].items()
    argv = ["run", "--detach", "--name", name, "--hostname", config["Hostname"], "--network", network,
            "--ip", settings["IPAddress"], "--cgroupns", host.get("CgroupnsMode") or "private"]  # fmt: skip
    for alias in settings.get("Aliases") or []:
        if alias not in (name, spec["Id"][:12]):
            argv += ["--network-alias", alias]
    for capability in host.get("CapAdd") or []:
        argv += ["--cap-add", capability]
    for path, options in (host.get("Tmpfs") or {}).items():
        argv += ["--tmpfs", f"{path}:{options}" if options else path]
    for container_port, bindings in (host.get("PortBindings") or {}).items():
        for binding in bindings or []:
            argv += ["--publish", f"{binding['HostIp']}:{binding['HostPort']}:{container_port}"]
    _docker("rm", "--force", name)
    return _docker(*argv, config["Image"])


def run_restore(*extra: str) -> subprocess.CompletedProcess:
    # Molecule's verify exports ANSIBLE_FORCE_COLOR: the recap must come back without colours
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        ["ansible-playbook", "-i", str(_inventory()), "playbooks/restore.yml", *extra],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=False, timeout=3600, env=env,
    )  # fmt: skip


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {"host": {"ok": N, "changed": N, "failed": N, ...}}."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)  # colour codes, should any remain
    return {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE)
    }


def secrets_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def restored(govmail, address, hostname, port, tls, alice, creds):
    """Mail for alice, a backup, a brand-new mail host, a restore; what was there before, and after."""
    inventory = _inventory()
    tag = uuid.uuid4().hex[:8]
    with clients.SMTP(address, hostname, port("smtp")) as smtp:
        smtp.ehlo("mx.example.org")
        assert smtp.send_message(make_message(OUTSIDER, alice["address"], f"Khôi phục {tag}", "Nội dung\n")) == {}
    client = open_imaps(address, hostname, port, tls, alice)
    client.select("INBOX")
    wait_for(lambda: len(client.search(None, "SUBJECT", tag)[1][0].split()) == 1, what="the delivery")
    before = snapshot_of(client)
    client.logout()
    archive = ok_json(govmail("backup", "run", "--json"))["archive"]

    secrets = Path(SECRETS_DIR)
    original_secrets = secrets_files(secrets)
    ca_pem = (secrets / "pki" / "ca.crt").read_text()
    aside = secrets.with_name(f"{secrets.name}.before-restore")
    shutil.rmtree(aside, ignore_errors=True)
    secrets.rename(aside)
    secrets.mkdir(mode=0o700)
    for name in KEPT_BY_THE_OPERATOR:
        shutil.copy2(aside / name, secrets / name)

    old_id = _docker("inspect", "--format", "{{.Id}}", MAIL_CONTAINER)
    new_id = replace_container(MAIL_CONTAINER)
    fresh = subprocess.run(["docker", "exec", MAIL_CONTAINER, "test", "-e", "/etc/govmail"], check=False)
    started = time.monotonic()
    first = run_restore()
    first_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    return {
        "archive": archive, "before": before, "original_secrets": original_secrets, "ca_pem": ca_pem,
        "old_id": old_id, "new_id": new_id, "was_fresh": fresh.returncode != 0, "inventory": inventory,
        "first": first, "first_seconds": first_seconds,
    }  # fmt: skip


def test_the_mail_host_is_a_new_container_that_never_saw_the_original(restored):
    assert restored["new_id"] != restored["old_id"]
    assert restored["was_fresh"], "the new container already had /etc/govmail before the restore"


def test_the_restore_names_the_archive_it_took(restored):
    assert f"archive {restored['archive']}:" in restored["first"].stdout


def test_every_secret_and_the_ca_key_come_back_byte_for_byte(restored):
    now = secrets_files(Path(SECRETS_DIR))
    for name in ("pki/ca.key", "pki/ca.crt", "ldap-admin", "backup-client-" + MAIL_CONTAINER):
        if name in restored["original_secrets"]:
            assert now[name] == restored["original_secrets"][name], name
    # the CA's record of what it issued gains the new host's certificate; everything else is as it was
    changed = [n for n, data in restored["original_secrets"].items() if now.get(n) != data]
    assert all(n.startswith("pki/issued/") for n in changed), changed
    assert restored["original_secrets"]["pki/ca.key"]


def test_the_new_host_certificate_verifies_against_the_original_ca(restored, address, hostname, port):
    context = ssl.create_default_context(cadata=restored["ca_pem"])
    with (
        socket.create_connection((address, port("imaps")), timeout=20) as sock,
        context.wrap_socket(sock, server_hostname=hostname) as conn,
    ):
        assert conn.getpeercert()["subjectAltName"]


def test_users_log_in_with_their_old_passwords_and_find_their_mail_byte_for_byte(
    restored, address, hostname, port, tls, alice
):
    client = open_imaps(address, hostname, port, tls, alice)
    after = snapshot_of(client)
    client.logout()
    for folder, messages in restored["before"].items():
        assert after.get(folder) == messages, f"{folder} differs after the restore"


def test_restoring_the_same_archive_twice_changes_nothing(restored):
    # site.yml's own idempotence is Molecule's idempotence step; here the restore's part
    # (secrets, directory, mailboxes) runs again: tags backup.
    second = run_restore("--tags", "backup", "-e", f"backup_restore_archive={restored['archive']}")
    assert second.returncode == 0, second.stdout[-3000:]
    counters = recap(second.stdout)
    assert counters and all(c["changed"] == 0 for c in counters.values()), counters

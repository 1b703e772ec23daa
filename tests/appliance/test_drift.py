"""`make up` repairs drift: the digest of what the roles manage on a host notices a hand edit."""

from __future__ import annotations

import subprocess
import uuid

import docker
import pytest
from conftest import MAIL_CONTAINER, make_message

from govmail import lab


def _exec(script: str) -> None:
    subprocess.run(["docker", "exec", MAIL_CONTAINER, "sh", "-c", script], check=True, capture_output=True)


@pytest.fixture
def client():
    return docker.from_env()


def test_a_hand_edit_of_main_cf_changes_the_managed_digest_and_undoing_it_restores_it(client):
    before = lab.managed_files_digest(client, MAIL_CONTAINER)
    assert len(before) == 64
    mark = f"# edited by hand {uuid.uuid4().hex}"
    _exec(f"echo '{mark}' >> /etc/postfix/main.cf")
    try:
        assert lab.managed_files_digest(client, MAIL_CONTAINER) != before
    finally:
        _exec(f"sed -i '/{mark}/d' /etc/postfix/main.cf")
    assert lab.managed_files_digest(client, MAIL_CONTAINER) == before


def test_mail_arriving_is_not_drift(client, smtp, alice):
    """Only what the roles write counts: new mail in the Maildirs never triggers a converge."""
    before = lab.managed_files_digest(client, MAIL_CONTAINER)
    smtp.ehlo("mx.example.org")
    smtp.send_message(make_message("van.thu@ubnd.example.org", alice["address"], "drift", "not drift"))
    assert lab.managed_files_digest(client, MAIL_CONTAINER) == before

"""The dovecot role's deliver-once program, run as Dovecot runs it, on a mailbox home in a temporary directory.

The appliance tests replay a real retry through LMTP (tests/appliance/test_deliver_once.py);
these cover the program's cases one by one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from rendering import REPOSITORY, RoleView

from govmail.inventory import Site

QUEUE_ID = "4jd43w2jf5zDm2G"
RECEIVED = (
    "Received: from mx.example.org (unknown [172.29.20.1])\r\n"
    "\tby mail.quangtri.gov.vn (Postfix) with ESMTP id {queue_id}\r\n"
    "\tfor <bob@quangtri.gov.vn>; Mon, 30 Nov 2026 00:04:01 +0000 (UTC)\r\n"
)


@pytest.fixture(scope="module")
def view() -> RoleView:
    return RoleView(Site(REPOSITORY / "inventories" / "lab", REPOSITORY), "dovecot")


@pytest.fixture(scope="module")
def program(view, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "deliver-once"
    path.write_text(view.render("deliver-once.j2"))
    path.chmod(0o755)
    return path


@pytest.fixture
def home(tmp_path, view) -> Path:
    for part in ("cur", "new", "tmp"):
        (tmp_path / view.value("__dovecot_mail_path") / part).mkdir(parents=True)
    return tmp_path


def deliver_once(program: Path, home: Path, queue_id: str) -> str:
    done = subprocess.run([str(program), queue_id], env={**os.environ, "HOME": str(home)}, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout


def store(home: Path, folder: str, queue_id: str) -> None:
    (home / "Maildir" / folder / "new").mkdir(parents=True, exist_ok=True)
    (home / "Maildir" / folder / "new" / "1790000000.M1P1.mail").write_text(
        RECEIVED.format(queue_id=queue_id) + "Subject: x\r\n\r\nbody\r\n"
    )


def test_a_first_attempt_is_stored_and_leaves_a_marker(program, home, view):
    assert deliver_once(program, home, QUEUE_ID) == "new"
    assert (home / view.value("__dovecot_delivery_markers") / QUEUE_ID).is_file()


def test_a_retry_of_an_attempt_that_stored_nothing_is_stored(program, home):
    deliver_once(program, home, QUEUE_ID)
    assert deliver_once(program, home, QUEUE_ID) == "new"


@pytest.mark.parametrize("folder", [".", "Lưu trữ/2025"])
def test_a_retry_of_a_stored_message_is_recognised_in_any_folder(program, home, folder):
    deliver_once(program, home, QUEUE_ID)
    store(home, folder, QUEUE_ID)
    assert deliver_once(program, home, QUEUE_ID) == "stored"


def test_another_queue_file_is_not_taken_for_it(program, home):
    deliver_once(program, home, QUEUE_ID)
    store(home, ".", QUEUE_ID)
    assert deliver_once(program, home, QUEUE_ID + "X") == "new"


@pytest.mark.parametrize("queue_id", ["", "../../etc/passwd", "4jd4 3w", "4jd4*"])
def test_anything_but_a_queue_id_is_stored_and_writes_nothing(program, home, view, queue_id):
    assert deliver_once(program, home, queue_id) == "new"
    assert not (home / view.value("__dovecot_delivery_markers")).exists()

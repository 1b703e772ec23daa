"""Rate limits per authenticated sender (issue 13: a hijacked account sending from inside).

Messages per login and minute / hour (roles/filter: Rspamd's ratelimit module, buckets in Valkey
keyed by the login) are deferred with 451 4.7.1 beyond the limit; recipients per message
(roles/postfix: smtpd_recipient_limit on 587/465) get 452 4.5.3 beyond theirs. The burst comes
from a sender of the test's own, created for it, so no other test's user is ever limited: each
login has its own buckets, which is what the test shows.
"""

from __future__ import annotations

import math
import random
import time
import uuid

import pytest
import yaml
from conftest import PROJECT_DIR, make_message
from test_senders import send as transaction

# The shipped limits (roles/filter and roles/postfix defaults; the lab's inventory keeps them).
FILTER = yaml.safe_load((PROJECT_DIR / "roles/filter/defaults/main.yml").read_text())
POSTFIX = yaml.safe_load((PROJECT_DIR / "roles/postfix/defaults/main.yml").read_text())
PER_MINUTE = FILTER["filter_ratelimit_per_minute"]
RECIPIENTS = POSTFIX["postfix_submission_recipient_limit"]
TOO_MANY = (
    451,
    f"4.7.1 Too many messages: at most {PER_MINUTE} a minute per sender, try again later "
    "(gui qua nhieu thu, hay thu lai sau)",
)
NEW_PASSWORD = "Gioi-Han#2026a"


# Given names of the test's sender, drawn at random: the buckets of a login outlive its deletion
# (in Valkey, up to two days), so a rerun must not send as the address of an earlier run.
NAMES = ["An", "Bình", "Cường", "Dũng", "Giang", "Hải", "Khánh", "Lâm", "Minh", "Nam", "Phong", "Quang", "Sơn", "Tâm",
         "Thắng", "Trung", "Tuấn", "Việt", "Vinh", "Xuân"]  # fmt: skip


@pytest.fixture
def sender(new_agency):
    """A person of a new agency of the test's own, with a password of their own."""
    name = f"Lý {random.choice(NAMES)} {random.choice(NAMES)} {random.choice(NAMES)}"
    return new_agency("Phòng Kiểm thử Giới hạn", "gh").person(name, password=NEW_PASSWORD)


def send(client, account: dict, recipient: str) -> tuple[int, str]:
    """One message from ``account`` (logged in on ``client``); (code, text) of the DATA reply or refusal."""
    message = make_message(account["address"], recipient, "Thư thử giới hạn", f"Nội dung {uuid.uuid4()}.\n")
    return transaction(client, account["address"], recipient, message)


def test_a_burst_beyond_the_minute_limit_is_deferred_while_another_user_still_sends(
    sender, submission, submissions, alice, bob
):
    submission.login(sender["address"], sender["password"])
    started = time.monotonic()
    replies = []
    while len(replies) <= 3 * PER_MINUTE and (not replies or replies[-1][0] == 250):
        replies.append(send(submission, sender, sender["address"]))
    elapsed = time.monotonic() - started
    accepted = sum(1 for code, _ in replies if code == 250)

    assert replies[-1] == TOO_MANY, replies[-1]
    # a leaky bucket: PER_MINUTE at once, then PER_MINUTE more over each minute
    assert PER_MINUTE <= accepted <= PER_MINUTE + math.ceil(PER_MINUTE * elapsed / 60) + 1, (accepted, elapsed)
    submissions.login(alice["address"], alice["password"])
    assert send(submissions, alice, bob["address"])[0] == 250, "another login is not limited by this one"


def test_recipients_beyond_the_limit_per_message_get_452(submission, alice):
    submission.login(alice["address"], alice["password"])
    assert submission.mail(alice["address"])[0] == 250
    for number in range(RECIPIENTS):
        code, text = submission.rcpt(f"doitac{number}@external.example")
        assert code == 250, (number, text)

    code, text = submission.rcpt("mot-nguoi-nua@external.example")
    submission.rset()
    assert (code, text.decode()) == (452, "4.5.3 Error: too many recipients")

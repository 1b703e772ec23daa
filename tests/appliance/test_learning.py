"""Users mark spam (REQUIREMENTS C3; issue 13): moving mail into Junk and out of it trains the filter.

Over real IMAP (MOVE and COPY), Dovecot's IMAPSieve scripts (roles/dovecot: learn-spam.sieve,
learn-ham.sieve) pipe the message to rspamd-learn, which posts it to Rspamd's controller with the
controller's generated password. The proof is what an operator reads: the Bayes statistics of
`rspamc stat` (the controller's /stat), whose learned counts change by exactly one message, as
Bayes has no autolearn (roles/filter, classifier-bayes.conf); the exact counts are read where
Rspamd keeps them (Redis), which /stat reads periodically.
"""

from __future__ import annotations

import imaplib
import json
import random
import shlex
import time
import uuid

import clients
import pytest
import yaml
from conftest import PROJECT_DIR, make_message

OUTSIDER = "tin.tuc@bao.example.org"
# Words of official mail; each message is a random draw of them plus a few unique tokens.
TEXT = (
    "cong van bao cao tong hop ke hoach trien khai nhiem vu nam ngan sach du toan quyet dinh thong bao "
    "hoi nghi truc tuyen phong ban so nganh tinh huyen xa chuong trinh chuyen doi so"
)
WORDS = TEXT.split()


def facts(path: str) -> dict:
    return yaml.safe_load((PROJECT_DIR / path).read_text())


def stat(mail_host) -> dict:
    """Learned messages per Bayes class as `rspamc stat` shows them (the controller's /stat, JSON)."""
    controller = facts("roles/govmail/defaults/main.yml")["govmail_filter_controller"]
    header = facts("roles/dovecot/vars/main.yml")["__dovecot_filter_password_header"]
    answer = mail_host.run(f"curl -sS --fail -H @{shlex.quote(header)} http://{controller}/stat")
    assert answer.rc == 0, answer.stderr
    statfiles = json.loads(answer.stdout)["statfiles"]
    return {entry["symbol"]: entry["revision"] for entry in statfiles}


def learned(mail_host) -> dict:
    """Learned messages per Bayes class where Rspamd keeps them (Redis hash RS: learns_spam,
    learns_ham); /stat shows them only after its next periodic read, up to a minute later."""
    answer = mail_host.run("valkey-cli HMGET RS learns_spam learns_ham")
    assert answer.rc == 0, answer.stderr
    # one line per field; before the first learn the hash does not exist and valkey-cli, writing
    # to a pipe, prints each nil as an empty line (split() would drop them)
    lines = answer.stdout.split("\n")
    assert len(lines) >= 2, answer.stdout
    spam, ham = (int(value.strip() or 0) for value in lines[:2])
    return {"BAYES_SPAM": spam, "BAYES_HAM": ham}


def changes_to(read, before: dict, expected: dict, timeout: float = 20) -> dict:
    """Waits until ``read()`` moved by ``expected`` ({symbol: delta}) from ``before``; the counts."""

    def moved():
        now = read()
        return now if all(now[s] - before[s] == d for s, d in expected.items()) else None

    return clients.wait_for(moved, timeout=timeout, what=f"learned counts to change by {expected} from {before}")


def newsletter() -> bytes:
    """A message Bayes can learn (at least 11 tokens) that it has never seen (random words)."""
    words = [random.choice(WORDS) for _ in range(60)] + [uuid.uuid4().hex for _ in range(5)]
    message = make_message(OUTSIDER, "ban-tin@example.org", "Bản tin tuần", " ".join(words) + "\n")
    return message.as_bytes()


def uid_of(client, mailbox: str, raw: bytes) -> bytes:
    """The UID of the message (by its Message-ID) in ``mailbox``."""
    message_id = next(line for line in raw.split(b"\r\n") if line.lower().startswith(b"message-id:")).split(b":", 1)[1]
    client.select(mailbox)
    typ, data = client.uid("SEARCH", None, "HEADER", "Message-ID", message_id.strip().decode())
    assert typ == "OK" and data[0], f"message not in {mailbox}"
    return data[0].split()[-1]


@pytest.fixture
def reader(imaps, bob):
    """Bob's IMAP session; the message he receives is appended to INBOX (no SMTP in the way)."""
    return imaps(bob)


def append(client, mailbox: str, raw: bytes):
    typ, data = client.append(mailbox, None, imaplib.Time2Internaldate(time.time()), raw)
    assert typ == "OK", data


def teach_spam(client, mail_host) -> dict:
    """The user of IMAP session ``client`` moves a new newsletter from INBOX into Junk; waits
    until Bayes has learned it as spam and returns the learned counts then (:func:`learned`)."""
    raw = newsletter()
    append(client, "INBOX", raw)
    client.select("INBOX")
    before = learned(mail_host)
    assert client.uid("MOVE", uid_of(client, "INBOX", raw), "Junk")[0] == "OK"
    return changes_to(lambda: learned(mail_host), before, {"BAYES_SPAM": 1})


@pytest.mark.parametrize("command", ["MOVE", "COPY"])
def test_putting_a_message_into_junk_trains_the_filter_as_spam(reader, mail_host, command):
    raw = newsletter()
    append(reader, "INBOX", raw)
    before = learned(mail_host)
    typ, data = reader.uid(command, uid_of(reader, "INBOX", raw), "Junk")
    assert typ == "OK", data
    changes_to(lambda: learned(mail_host), before, {"BAYES_SPAM": 1, "BAYES_HAM": 0})


def test_moving_a_message_out_of_junk_trains_the_filter_as_ham(reader, mail_host):
    raw = newsletter()
    append(reader, "Junk", raw)  # APPEND is no verdict: nothing is learned yet
    before = learned(mail_host)
    typ, data = reader.uid("MOVE", uid_of(reader, "Junk", raw), "INBOX")
    assert typ == "OK", data
    changes_to(lambda: learned(mail_host), before, {"BAYES_SPAM": 0, "BAYES_HAM": 1})


def test_a_message_the_user_first_marked_spam_and_then_took_back_counts_as_ham(reader, mail_host):
    raw = newsletter()
    append(reader, "INBOX", raw)
    before = learned(mail_host)
    assert reader.uid("MOVE", uid_of(reader, "INBOX", raw), "Junk")[0] == "OK"
    as_spam = changes_to(lambda: learned(mail_host), before, {"BAYES_SPAM": 1})
    assert reader.uid("MOVE", uid_of(reader, "Junk", raw), "INBOX")[0] == "OK"
    # Rspamd relearns the message: it leaves the spam class and joins the ham class
    changes_to(lambda: learned(mail_host), as_spam, {"BAYES_SPAM": -1, "BAYES_HAM": 1})


def test_deleting_spam_from_junk_is_no_verdict(reader, mail_host):
    raw = newsletter()
    append(reader, "Junk", raw)
    before = learned(mail_host)
    assert reader.uid("MOVE", uid_of(reader, "Junk", raw), "Trash")[0] == "OK"
    # the IMAPSieve script runs before MOVE answers; a learn would be in Redis by now, give it 3 s
    time.sleep(3)
    assert learned(mail_host) == before


def test_what_users_teach_shows_in_rspamds_statistics(reader, mail_host):
    """`rspamc stat` (the controller's /stat) counts the learns too, after its periodic read."""
    raw = newsletter()
    append(reader, "INBOX", raw)
    before = stat(mail_host)
    assert reader.uid("MOVE", uid_of(reader, "INBOX", raw), "Junk")[0] == "OK"
    # at least one: other sessions may teach it meanwhile (the other tests of this file)
    clients.wait_for(
        lambda: stat(mail_host)["BAYES_SPAM"] > before["BAYES_SPAM"], timeout=120, what="/stat to count the learn"
    )


def test_the_controller_refuses_to_learn_without_its_password(mail_host):
    controller = facts("roles/govmail/defaults/main.yml")["govmail_filter_controller"]
    answer = mail_host.run(
        f"printf 'Subject: x\\n\\nhello\\n' | curl -sS -o /dev/null -w '%{{http_code}}' "
        f"--data-binary @- http://{controller}/learnspam"
    )
    assert answer.stdout == "401", answer.stdout + answer.stderr

"""bench/filtering.py's bound: a milter-less copy of the forwarding listener, added and removed.

The forwarding listener hands its mail to the filter (DKIM signing, issue 13), so the benchmark's
path without the filter is a listener of its own; these are the postconf commands it runs.
"""

from __future__ import annotations

import shlex
import sys

import pytest
from rendering import REPOSITORY

sys.path.insert(0, str(REPOSITORY / "bench"))

import filtering
from lib import BenchError

# what `postconf -P` prints for roles/postfix's forwarding listener
FORWARD = "127.0.0.1:10027"
OPTIONS = [
    f"{FORWARD}/inet/message_size_limit = 52428800",
    f"{FORWARD}/inet/milter_macro_daemon_name = GOVMAIL-FORWARD",
    f"{FORWARD}/inet/smtpd_client_restrictions = permit_mynetworks,reject",
    f"{FORWARD}/inet/smtpd_helo_restrictions =",
    f"{FORWARD}/inet/smtpd_recipient_restrictions = $govmail_forward_recipient_restrictions",
    f"{FORWARD}/inet/syslog_name = postfix/forward",
]


def _commands(script: str) -> list[list[str]]:
    return [shlex.split(part) for part in script.split(" && ")]


def test_the_bound_is_the_forwarding_listener_without_any_milter_on_its_own_port():
    add, remove = filtering.bound_listener_commands(FORWARD, OPTIONS, port=10099)
    commands = _commands(add)
    assert commands[0] == ["postconf", "-M", "127.0.0.1:10099/inet=127.0.0.1:10099 inet n - y - - smtpd"]
    assert commands[-1][:2] == ["postfix", "reload"]
    settings = dict(c[2].split("=", 1) for c in commands[1:-1] if c[:2] == ["postconf", "-P"])
    assert {k.removeprefix("127.0.0.1:10099/inet/"): v for k, v in settings.items()} == {
        "message_size_limit": "52428800",
        "smtpd_client_restrictions": "permit_mynetworks,reject",
        "smtpd_helo_restrictions": "",
        "smtpd_recipient_restrictions": "$govmail_forward_recipient_restrictions",
        "syslog_name": "postfix/bench-nofilter",
        "smtpd_milters": "",
    }
    assert _commands(remove)[0] == ["postconf", "-MX", "127.0.0.1:10099/inet"]
    assert _commands(remove)[-1][:2] == ["postfix", "reload"]


def test_an_option_line_of_another_service_is_refused():
    with pytest.raises(BenchError, match="unexpected postconf -P line"):
        filtering.bound_listener_commands(FORWARD, ["127.0.0.1:2525/inet/syslog_name = other"])

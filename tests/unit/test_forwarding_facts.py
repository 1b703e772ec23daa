"""Forwarding only inside government (C5): one list of allowed domains, one listener port.

Rendered with Ansible's own templating (tests/unit/rendering.py) for an inventory that overrides
the shared facts: Postfix's forwarding listener accepts exactly the own domain and the inventory's
suffixes, and Dovecot's Sieve sends its redirects to the port that listener has.
"""

from __future__ import annotations

import re

from rendering import RoleView
from test_shared_facts import _dovecot_setting, site_with  # noqa: F401 (fixture)

OVERRIDES = """\
---
govmail_forward_allowed_suffixes: [.gov.vn, .chinhphu.vn]
govmail_forward_port: 12027
govmail_forward_milter_name: SIEVE-OUT
"""


def _rules(table: str) -> list[tuple[str, str]]:
    """(pattern, action) of each line of a Postfix regexp table."""
    return [tuple(line.split(" ", 1)) for line in table.splitlines() if line.startswith("/")]


def test_the_forwarding_listener_accepts_the_own_domain_and_the_inventorys_suffixes_only(site_with):  # noqa: F811
    table = RoleView(site_with(OVERRIDES), "postfix").render("etc/postfix/forward_recipients.j2")
    rules = _rules(table)
    assert rules[:3] == [
        (r"/@example\.gov\.vn$/", "OK"),
        (r"/@[^@]+\.gov\.vn$/", "OK"),
        (r"/@[^@]+\.chinhphu\.vn$/", "OK"),
    ]
    assert rules[3][0] == "/./" and rules[3][1].startswith("550 5.7.1 Forwarding outside government mail")
    assert len(rules) == 4
    # the patterns mean what they say (Postfix regexp tables are case-insensitive POSIX EREs)
    allowed = [re.compile(pattern.strip("/"), re.I) for pattern, action in rules if action == "OK"]
    for address, expected in {
        "a@example.gov.vn": True,
        "A@HANOI.GOV.VN": True,
        "b@bo.chinhphu.vn": True,
        "c@fakegov.vn": False,
        "d@gov.vn.outside.example": False,
        "e@gov.vn": False,
    }.items():
        assert any(p.search(address) for p in allowed) is expected, address


def test_sieve_sends_its_redirects_to_the_port_postfix_listens_on(site_with):  # noqa: F811
    site = site_with(OVERRIDES)
    master_cf = RoleView(site, "postfix").render("etc/postfix/master.cf.j2")
    dovecot = RoleView(site, "dovecot").render("etc/dovecot/dovecot.conf.j2")
    assert re.search(r"^127\.0\.0\.1:12027 inet n - y - - smtpd$", master_cf, flags=re.M)
    assert "  -o smtpd_recipient_restrictions=$govmail_forward_recipient_restrictions" in master_cf
    assert _dovecot_setting(dovecot, "submission_host") == ["127.0.0.1:12027"]
    assert _dovecot_setting(dovecot, "sieve_redirect_envelope_from") == ["recipient"]


def test_only_the_null_sender_may_answer_outside_government(site_with):  # noqa: F811
    main_cf = RoleView(site_with(OVERRIDES), "postfix").render("etc/postfix/main.cf.j2")
    restrictions = re.search(r"^govmail_forward_recipient_restrictions =\n((?:    .*\n)+)", main_cf, flags=re.M)
    assert restrictions, "govmail_forward_recipient_restrictions not in main.cf"
    assert [step.strip().rstrip(",") for step in restrictions.group(1).splitlines()] == [
        "check_sender_access inline:{ <>=OK }",
        "reject_non_fqdn_recipient",
        "reject_unlisted_recipient",
        "check_recipient_access regexp:/etc/postfix/forward_recipients",
    ]


def test_what_the_listener_sends_goes_through_the_filter_under_the_name_the_filter_only_signs(site_with):  # noqa: F811
    site = site_with(OVERRIDES)
    master_cf = RoleView(site, "postfix").render("etc/postfix/master.cf.j2")
    settings = RoleView(site, "filter").render("etc/rspamd/local.d/settings.conf.j2")
    listener = re.search(r"^127\.0\.0\.1:12027 inet .*\n((?:  -o .*\n)+)", master_cf, flags=re.M)
    assert listener, "no forwarding listener in master.cf"
    options = listener.group(1).split()
    # the milter of main.cf (smtpd_milters) is not emptied here: a stopped filter defers (4xx)
    assert not any(option.startswith("smtpd_milters=") for option in options)
    assert "milter_macro_daemon_name=SIEVE-OUT" in options
    # Rspamd's milter passes {daemon_name} as MTA-Name; for that name only DKIM signing runs
    assert '"MTA-Name" = "^SIEVE-OUT$";' in settings
    assert 'symbols_enabled = ["DKIM_SIGNED"];' in settings

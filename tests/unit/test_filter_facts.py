"""The content filter (roles/filter) and the roles around it read one value of each shared fact.

Rendered with Ansible's own templating (tests/unit/rendering.py) for an inventory that overrides
them: Postfix hands mail to the address Rspamd's milter listens on, the mail store files into Junk
on the header Rspamd sets, and the thresholds in Rspamd's actions are the inventory's.
"""

from __future__ import annotations

import re

from rendering import RoleView
from test_shared_facts import _postfix_setting, site_with  # noqa: F401 (fixture)

OVERRIDES = """\
---
govmail_filter_milter: "127.0.0.1:21332"
govmail_spam_header: X-Govmail-Spam
filter_reject_score: 20
filter_add_header_score: 7.5
"""


def test_postfix_hands_every_message_to_the_milter_rspamd_listens_on_and_defers_without_it(site_with):  # noqa: F811
    site = site_with(OVERRIDES)
    main_cf = RoleView(site, "postfix").render("etc/postfix/main.cf.j2")
    proxy = RoleView(site, "filter").render("etc/rspamd/override.d/worker-proxy.inc.j2")
    assert _postfix_setting(main_cf, "smtpd_milters") == "inet:127.0.0.1:21332"
    assert _postfix_setting(main_cf, "milter_default_action") == "tempfail"
    assert 'bind_socket = "127.0.0.1:21332";' in proxy


def test_the_mail_store_files_into_junk_on_the_header_rspamd_sets(site_with):  # noqa: F811
    site = site_with(OVERRIDES)
    proxy = RoleView(site, "filter").render("etc/rspamd/override.d/worker-proxy.inc.j2")
    sieve = RoleView(site, "dovecot").render("spam-to-junk.sieve.j2")
    assert 'spam_header = "X-Govmail-Spam";' in proxy
    assert re.search(r'^if header :is "X-Govmail-Spam" "Yes" \{\n  fileinto :create "Junk";', sieve, flags=re.M)


def test_the_thresholds_are_the_inventorys_and_nothing_is_greylisted(site_with):  # noqa: F811
    actions = RoleView(site_with(OVERRIDES), "filter").render("etc/rspamd/local.d/actions.conf.j2")
    lines = [line for line in actions.splitlines() if line and not line.startswith("#")]
    assert lines == ["reject = 20;", "add_header = 7.5;", "greylist = null;", "rewrite_subject = null;"]


def test_test_patterns_stay_off_unless_the_inventory_turns_them_on(site_with):  # noqa: F811
    options = RoleView(site_with(OVERRIDES), "filter").render("etc/rspamd/local.d/options.inc.j2")
    assert "gtube_patterns" not in options


def test_the_inventorys_banned_extensions_and_encrypted_archive_policy_reach_the_filters_rule(site_with):  # noqa: F811
    site = site_with(
        "---\nfilter_banned_extensions: [EXE, docm]\n"
        "filter_encrypted_archive_policy: {inbound: reject, outbound: warn}\n"
    )
    rule = RoleView(site, "filter").render("etc/rspamd/lua.local.d/govmail_attachments.lua.j2")
    assert re.findall(r'^  \["(\w+)"\] = true,$', rule, flags=re.M) == ["exe", "docm"]
    assert 'inbound = "reject",' in rule and 'outbound = "warn",' in rule
    assert rule.startswith("-- Ansible managed\n")

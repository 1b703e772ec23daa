"""Role templates that carry secrets render them so the service reads back exactly the secret."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def render(path: str, **variables) -> str:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["comment"] = lambda text: f"# {text}"
    return environment.from_string((ROOT / path).read_text()).render(ansible_managed="managed", **variables)


def dovecot_value(line: str) -> str:
    """The value of ``key = "..."`` as Dovecot's config parser reads a quoted string."""
    quoted = re.fullmatch(r'\w+ = "((?:[^"\\]|\\.)*)"', line)
    assert quoted, f"not a quoted Dovecot setting: {line!r}"
    return re.sub(r"\\(.)", r"\1", quoted.group(1))


@pytest.mark.parametrize("secret", ["Ab1#cd%qE!f@*&", 'with"quote\\and#hash', "plain24CharsLongSecret1!"])
def test_dovecot_ldap_password_survives_hash_quote_and_backslash(secret):
    text = render("roles/dovecot/templates/ldap.conf.j2", dovecot_ldap_bind_password=secret)
    line = next(line for line in text.splitlines() if line.startswith("ldap_auth_dn_password"))
    assert dovecot_value(line) == secret


def _default(role: str, name: str, **inventory) -> int:
    """A role default as Ansible resolves it from the inventory's variables."""
    text = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]
    return int(jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).render(**inventory))


@pytest.mark.parametrize("inventory", [{}, {"govmail_lmtp_concurrency": 40}])
def test_postfix_never_opens_more_lmtp_deliveries_than_dovecot_takes_for_one_mailbox(inventory):
    """Otherwise Dovecot answers a burst to one mailbox with 451 and Postfix defers it for minutes."""
    postfix = _default("postfix", "postfix_lmtp_concurrency_limit", **inventory)
    dovecot = _default("dovecot", "dovecot_lmtp_user_concurrency_limit", **inventory)
    assert postfix <= dovecot
    assert postfix == inventory.get("govmail_lmtp_concurrency", 20)
    main_cf = (ROOT / "roles/postfix/templates/etc/postfix/main.cf.j2").read_text()
    dovecot_conf = (ROOT / "roles/dovecot/templates/etc/dovecot/dovecot.conf.j2").read_text()
    assert "lmtp_destination_concurrency_limit = {{ postfix_lmtp_concurrency_limit }}" in main_cf
    assert "lmtp_user_concurrency_limit = {{ dovecot_lmtp_user_concurrency_limit }}" in dovecot_conf

"""Role templates that carry secrets render them so the service reads back exactly the secret
(rendered with Ansible's own templating, as a play does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rendering import RoleView

from govmail.inventory import Site


def dovecot_value(line: str) -> str:
    """The value of ``key = "..."`` as Dovecot's config parser reads a quoted string."""
    quoted = re.fullmatch(r'\w+ = "((?:[^"\\]|\\.)*)"', line)
    assert quoted, f"not a quoted Dovecot setting: {line!r}"
    return re.sub(r"\\(.)", r"\1", quoted.group(1))


@pytest.mark.parametrize("secret", ["Ab1#cd%qE!f@*&", 'with"quote\\and#hash', "plain24CharsLongSecret1!"])
def test_dovecot_ldap_password_survives_hash_quote_and_backslash(project: Path, secret):
    view = RoleView(Site(project / "inventories" / "lab", project), "dovecot")
    text = view.render("ldap.conf.j2", dovecot_ldap_bind_password=secret)
    line = next(line for line in text.splitlines() if line.startswith("ldap_auth_dn_password"))
    assert dovecot_value(line) == secret

"""Directory: lookups as Postfix makes them, with and without proxy:, and the cost of a bind.

- Postfix's mailbox lookup (``virtual_mailboxes.cf``: the filter and base Postfix uses) through
  ``postmap -q -`` (one process, many keys): through ``proxy:`` (proxymap holds the connection)
  and direct. Bound: the same search on one persistent connection (python3-ldap, i.e. libldap,
  on the host over ldapi), i.e. what slapd itself answers.
- Dovecot's passdb search (its filter) on one persistent connection, against the cheapest indexed
  search for the same entries, ``(mail=...)``.
- Simple binds per second as Dovecot does them for each login, with the ppolicy overlay and
  lastbind on (the appliance) and off (bound), on one connection over ldapi.
"""

from __future__ import annotations

import time

import setup
from lib import Figure, sh

LOOKUPS = 2000
BINDS = 300

SEARCH = r"""
import ldap, sys, time
base, filt, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
c = ldap.initialize("ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi")
c.sasl_external_bind_s()
n = int(sys.argv[4]); start = time.monotonic()
for i in range(n):
    c.search_s(base, ldap.SCOPE_SUBTREE, filt.replace("%s", keys[i % len(keys)]), ["mail"])
print(n / (time.monotonic() - start))
"""

BIND = r"""
import ldap3, sys, time
dn, password, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = ldap3.Connection(ldap3.Server("ldapi:///var/run/slapd/ldapi"), user=dn, password=password)
c.open(); start = time.monotonic()
for _ in range(n):
    assert c.rebind(user=dn, password=password), c.result
print(n / (time.monotonic() - start))
"""


def _python(script: str, *args: str) -> float:
    quoted = " ".join(f"'{arg}'" for arg in args)
    return float(sh(f"python3 - {quoted}", stdin=script).strip())


def _postmap_rate(table: str, keys: list[str], count: int) -> float:
    lines = "\n".join(keys[i % len(keys)] for i in range(count)) + "\n"
    start = time.monotonic()
    sh(f"postmap -q - {table} >/dev/null", stdin=lines)
    return count / (time.monotonic() - start)


def _toggle_policy_overlays(enabled: bool) -> None:
    database = "olcDatabase={1}mdb,cn=config"
    flag = "FALSE" if enabled else "TRUE"
    last = "TRUE" if enabled else "FALSE"
    sh(
        "ldapmodify -Q -Y EXTERNAL -H ldapi:/// >/dev/null",
        stdin=(
            f"dn: olcOverlay={{0}}ppolicy,{database}\nchangetype: modify\nreplace: olcDisabled\nolcDisabled: {flag}\n\n"
            f"dn: {database}\nchangetype: modify\nreplace: olcLastBind\nolcLastBind: {last}\n"
        ),
    )


def run() -> list[Figure]:
    domain = sh("postconf -h mydomain").strip()
    users, password = setup.ensure_mailboxes(20, domain)
    cf = "/etc/postfix/ldap/virtual_mailboxes.cf"
    base = sh(f"awk -F' = ' '/^search_base/{{print $2}}' {cf}").strip()
    query = sh(f"awk -F' = ' '/^query_filter/{{print $2}}' {cf}").strip()
    raw = _python(SEARCH, base, query, ",".join(users), str(LOOKUPS))
    # Dovecot's passdb search (the filter of roles/dovecot's `passdb ldap`, as it expands for a
    # login without a master user) against the cheapest indexed search for the same entry
    passdb = "(&(objectClass=govmailMailbox)(mail=%s)(govmailStatus=active)(|(!(pwdReset=TRUE))(mail=*@)))"
    dovecot = _python(SEARCH, base, passdb, ",".join(users), str(LOOKUPS))
    equality = _python(SEARCH, base, "(mail=%s)", ",".join(users), str(LOOKUPS))
    proxied = _postmap_rate(f"proxy:ldap:{cf}", users, LOOKUPS)
    direct = _postmap_rate(f"ldap:{cf}", users, LOOKUPS)
    dn = f"uid={users[0].split('@')[0]},ou={setup.AGENCY},ou=agencies,{setup.base_dn()}"
    with_policy = _python(BIND, dn, password, str(BINDS))
    _toggle_policy_overlays(False)
    try:
        without_policy = _python(BIND, dn, password, str(BINDS))
    finally:
        _toggle_policy_overlays(True)
    return [
        Figure("Postfix mailbox lookups/s through proxy:ldap", proxied, "lookups/s", "slapd search, persistent", raw),
        Figure("Postfix mailbox lookups/s direct ldap:", direct, "lookups/s", "slapd search, persistent", raw),
        Figure(
            "Dovecot passdb filter searches/s (libldap, persistent)",
            dovecot,
            "searches/s",
            "(mail=...) equality search",
            equality,
        ),
        Figure(
            "binds/s with ppolicy and lastbind",
            with_policy,
            "binds/s",
            "binds/s without them",
            without_policy,
            {"hash": "{ARGON2} (slapd argon2 module)"},
        ),
    ]

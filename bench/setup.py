"""The benchmarks' own agency ``dokiem`` and its mailboxes ``dokiem1..N`` on the lab.

Entries are added as root over ldapi (the ppolicy overlay hashes the cleartext password), with a
password generated for this run and never written anywhere; they stay between runs and get a
new password each run. Their mail is expunged after each benchmark.
"""

from __future__ import annotations

import secrets
import string

from lib import sh

AGENCY = "dokiem"


def base_dn() -> str:
    return sh(
        "ldapsearch -Q -Y EXTERNAL -H ldapi:/// -LLL -s base -b '' namingContexts | awk '/^namingContexts/{print $2}'"
    ).split()[0]


def password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "Bk#1" + "".join(secrets.choice(alphabet) for _ in range(20))


def ensure_mailboxes(count: int, domain: str) -> tuple[list[str], str]:
    """``count`` bench mailboxes (created if missing) and their common password for this run."""
    base = base_dn()
    unit = f"ou={AGENCY},ou=agencies,{base}"
    secret = password()
    entries = [
        f"dn: {unit}\nobjectClass: organizationalUnit\nou: {AGENCY}\ndescription: Đo kiểm hiệu năng\n",
        f"dn: uid={AGENCY},{unit}\nobjectClass: inetOrgPerson\nobjectClass: govmailMailbox\nuid: {AGENCY}\n"
        f"cn: Đo kiểm\nsn: Đo kiểm\nmail: {AGENCY}@{domain}\ngovmailKind: agency\ngovmailStatus: active\n",
    ]
    addresses = []
    for index in range(1, count + 1):
        uid = f"{AGENCY}{index}"
        addresses.append(f"{uid}@{domain}")
        entries.append(
            f"dn: uid={uid},{unit}\nobjectClass: inetOrgPerson\nobjectClass: govmailMailbox\nuid: {uid}\n"
            f"cn: Người đo {index}\nsn: Người\nmail: {uid}@{domain}\ngovmailKind: personal\ngovmailStatus: active\n"
        )
    sh("ldapadd -c -Q -Y EXTERNAL -H ldapi:/// >/dev/null 2>&1 || true", stdin="\n".join(entries), check=False)
    passwords = "\n".join(
        f"dn: uid={address.split('@')[0]},{unit}\nchangetype: modify\nreplace: userPassword\nuserPassword: {secret}\n"
        for address in addresses
    )
    sh("ldapmodify -Q -Y EXTERNAL -H ldapi:/// >/dev/null", stdin=passwords)
    # ppolicy marks a password set by anyone but the owner as to be changed (pwdReset), which
    # Dovecot refuses; and an earlier run may have ended in a lockout
    unlocks = "\n".join(
        f"dn: uid={address.split('@')[0]},{unit}\nchangetype: modify\ndelete: {attribute}\n"
        for address in addresses
        for attribute in ("pwdReset", "pwdAccountLockedTime")
    )
    # fails harmlessly for every entry without the attribute; -c goes on
    sh("ldapmodify -c -Q -Y EXTERNAL -H ldapi:/// >/dev/null 2>&1 || true", stdin=unlocks, check=False)
    return addresses, secret

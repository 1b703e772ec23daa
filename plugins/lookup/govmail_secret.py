"""Lookup plugin: a generated secret kept in a file outside git.

    "{{ lookup('govmail_secret', 'ldap-admin', dir=govmail_secrets_dir) }}"

On first use the secret is generated with :mod:`secrets` and written to ``<dir>/<name>``
(mode 0600, directory 0700); later runs read it back, so a converge is idempotent and a
secret is never stored in the repository. Generated values contain lower case, upper
case, digits and a special character, so they satisfy the strictest password policy of
the appliance (REQUIREMENTS P1 and P4). ``kind=salt`` generates a crypt(3) salt instead.
"""

from __future__ import annotations

import os
import secrets
import string

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: govmail_secret
short_description: read or generate a secret kept in a file outside git
description:
  - Returns the content of C(<dir>/<name>); generates and stores a strong value first if the file does not exist.
options:
  _terms:
    description: names of the secrets
    required: true
  dir:
    description: directory holding the secrets (created 0700)
    required: true
  length:
    description: length of a generated value
    default: 24
  kind:
    description: C(password) (four character classes) or C(salt) (crypt salt alphabet)
    default: password
"""

SPECIALS = "!@#%*&"
SALT_ALPHABET = string.ascii_letters + string.digits + "./"


def generate_password(length: int = 24) -> str:
    """Random password with at least one character of each class."""
    if length < 12:
        raise ValueError("generated passwords must be at least 12 characters long")
    classes = [string.ascii_lowercase, string.ascii_uppercase, string.digits, SPECIALS]
    alphabet = string.ascii_letters + string.digits + SPECIALS
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def generate_salt(length: int = 16) -> str:
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(length))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        directory = self.get_option("dir")
        if not directory:
            raise AnsibleLookupError("govmail_secret: set 'dir' (govmail_secrets_dir) to a directory outside git")
        length = int(self.get_option("length"))
        kind = self.get_option("kind")
        if kind not in ("password", "salt"):
            raise AnsibleLookupError(f"govmail_secret: kind={kind!r} is not 'password' or 'salt'")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        values = []
        for name in terms:
            if not name or "/" in name or name.startswith("."):
                raise AnsibleLookupError(
                    f"govmail_secret: {name!r} is not a valid secret name (use letters, digits, '-')"
                )
            path = os.path.join(directory, name)
            if not os.path.exists(path):
                value = generate_salt(length if length <= 16 else 16) if kind == "salt" else generate_password(length)
                # write aside, then link into place: atomic, and a parallel fork that
                # got there first wins (os.link refuses to replace an existing file)
                tmp = f"{path}.{os.getpid()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(value + "\n")
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            with open(path, encoding="utf-8") as handle:
                value = handle.read().strip()
            if not value:
                raise AnsibleLookupError(f"govmail_secret: {path} is empty; delete it to generate a new secret")
            values.append(value)
        return values

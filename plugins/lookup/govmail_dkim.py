"""Lookup plugin: the site's DKIM key (govmail.dkim), generated on first use with the secrets.

"{{ lookup('govmail_dkim', govmail_domain, selector=govmail_dkim_selector, dir=govmail_secrets_dir) }}"
    -> "v=DKIM1; k=rsa; p=MIIB..."   (the TXT record's value)
"{{ lookup('govmail_dkim', govmail_domain, selector=..., dir=..., part='key') }}"
    -> the private key, PEM (for roles/filter; use with no_log)
"""

from __future__ import annotations

import sys
from pathlib import Path

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

try:
    from govmail import dkim
    from govmail.errors import GovmailError
except ImportError:  # ansible-playbook from a Python without the package: use the checkout's
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from govmail import dkim
    from govmail.errors import GovmailError

DOCUMENTATION = r"""
name: govmail_dkim
short_description: the site's DKIM key, generated once in the secrets directory
description:
  - Returns the DKIM TXT value (part=record) or the private key PEM (part=key) of each domain;
    generates a 2048-bit RSA key in C(<dir>/dkim/<domain>.<selector>.key) first if it does not exist.
options:
  _terms:
    description: mail domains
    required: true
  dir:
    description: directory holding the secrets (govmail_secrets_dir)
    required: true
  selector:
    description: DKIM selector (one DNS label)
    required: true
  part:
    description: C(record) or C(key)
    default: record
"""


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        directory, selector, part = self.get_option("dir"), self.get_option("selector"), self.get_option("part")
        if part not in ("record", "key"):
            raise AnsibleLookupError(f"govmail_dkim: part={part!r} is not 'record' or 'key'")
        values = []
        for domain in terms:
            try:
                path = dkim.ensure_key(directory, domain, selector)
                values.append(dkim.txt_value(path) if part == "record" else path.read_text(encoding="ascii"))
            except GovmailError as exc:
                raise AnsibleLookupError(str(exc)) from None
        return values

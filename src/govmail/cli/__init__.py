"""The ``govmail`` command line: thin functions that call the modules and render their results.

Tables for people, ``--json`` for scripts; progress goes to stderr. Every :class:`GovmailError`
becomes one line ``govmail: <message>`` on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

from . import (  # noqa: F401 - they register their commands
    account_commands,
    backup_commands,
    ban_commands,
    cert_commands,
    dns_commands,
    lab_commands,
    lifecycle_commands,
    operations_commands,
)
from .common import app

__all__ = ["app"]

"""The JSON configuration files the roles write for the host program (``/etc/govmail/*.json``).

Every host-side module (lifecycle, usage, daily mail, backup) reads its file through
:func:`read`, so a missing or broken file is reported the same way everywhere: one line naming the
file and the playbook that writes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import GovmailError


def read(path: str | Path, error: type[GovmailError], playbook: str = "playbooks/site.yml") -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises ``error`` (the caller's domain exception) when the file does not exist ("deploy
    ``playbook`` on this host"), cannot be read, is not JSON, or holds something other than an
    object ("converge ``playbook`` again").
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"configuration {path} does not exist: deploy {playbook} on this host") from None
    except OSError as exc:
        raise error(f"configuration {path} cannot be read: {exc.strerror}; converge {playbook} again") from None
    except ValueError as exc:
        raise error(f"configuration {path} cannot be read: not JSON ({exc}); converge {playbook} again") from None
    if not isinstance(data, dict):
        raise error(f"configuration {path} cannot be read: not a JSON object; converge {playbook} again")
    return data

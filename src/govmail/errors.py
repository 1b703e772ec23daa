"""Exceptions of the govmail package.

Every message names the input that was wrong and what to do about it; the CLI prints it as one
line (``govmail: <message>``) and exits non-zero, never with a traceback.
"""

from __future__ import annotations


class GovmailError(Exception):
    """Base class of every error the CLI reports as one line."""


class ProjectError(GovmailError):
    """The project directory (the repository checkout) cannot be found or is incomplete."""


class ContractError(GovmailError):
    """Inventory data or lab secrets needed for the status/credentials documents are missing or bad."""


class LabError(GovmailError):
    """The local lab (images, network, containers) cannot be built, started or removed."""


class DockerUnavailableError(LabError):
    """The Docker engine cannot be reached."""


class PlaybookError(GovmailError):
    """An ansible-playbook run failed or could not be started."""

    def __init__(self, message: str, log_path: str | None = None) -> None:
        super().__init__(message)
        self.log_path = log_path

"""Exceptions of the govmail package.

Every message names the input that was wrong and what to do about it; the CLI prints it as one
line (``govmail: <message>``) and exits non-zero, never with a traceback. All of the package's
domain exceptions live here (the modules that raise them re-export their own by name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


class PolicyError(GovmailError):
    """A policy profile name or one of its overrides (from the inventory) is unknown or invalid."""


class NamingError(GovmailError):
    """A person's name, an agency abbreviation or a domain cannot make a valid mail address."""


class PasswordError(GovmailError):
    """A password breaks the profile's policy, or a stored password hash cannot be read."""


class AccountError(GovmailError):
    """An account command cannot do what was asked: unknown mailbox, wrong state, bad input."""


class BackupError(GovmailError):
    """A backup, a listing or a restore cannot be done: repository unreachable, bad archive name..."""


class DirectoryError(GovmailError):
    """The directory cannot be reached, or refused or failed an operation."""

    def __init__(self, message: str, code: int | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # LDAP result code, when the server answered
        self.detail = detail  # the server's own words (description: message)


class DirectoryUnavailableError(DirectoryError):
    """No connection: refused, timed out, TLS not trusted, or lost during an operation."""


class EntryExistsError(DirectoryError):
    """An entry with this DN already exists."""


class NoSuchEntryError(DirectoryError):
    """The entry (or its parent) does not exist."""


class InvalidCredentialsError(DirectoryError):
    """A bind was refused: wrong password, no password, or (ppolicy) a locked account."""


class InventoryError(ContractError):
    """The inventory cannot be read by Ansible, or lacks or misdefines a variable the CLI needs."""


class LifecycleError(GovmailError):
    """The lifecycle run cannot start (configuration, directory) or one of its actions failed."""


class PkiError(GovmailError):
    """The internal CA's records cannot be read, or a certificate to revoke cannot be found."""


class RemoteError(GovmailError):
    """A host (the directory host, or one `govmail check` probes) cannot be found in the inventory or reached."""


@dataclass(frozen=True)
class RowError:
    """One bad row of an import file."""

    row: int
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "error": self.error}


class ImportRowsError(AccountError):
    """Rows of an import file are invalid; nothing was changed. ``errors`` lists every one."""

    def __init__(self, path: str, errors: list[RowError], total: int) -> None:
        self.path = path
        self.errors = errors
        self.total = total
        rows = ", ".join(str(error.row) for error in errors[:20]) + (", …" if len(errors) > 20 else "")
        super().__init__(
            f"{path}: {len(errors)} of {total} rows are invalid (rows {rows}); nothing was changed: "
            "fix them and import again"
        )


class ImportApplyError(AccountError):
    """The directory failed during an import. ``report`` says which rows were applied."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


class BanError(GovmailError):
    """An address to unban is malformed, or fail2ban on a host cannot be asked or does not answer."""

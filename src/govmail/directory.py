"""The directory (OpenLDAP) as the account commands see it: one connection and its operations.

:class:`Directory` wraps one administrator connection (ldap3), or root's SASL EXTERNAL connection
on the directory host, with the few operations the account commands and the lifecycle need.
Every LDAP failure becomes a :class:`DirectoryError` whose message names the directory's URI and
the operation, never a traceback. Where the directory is (:class:`Settings`) is worked out from a
site's inventory by :mod:`govmail.connection`; this module reads no inventory. ``ldaps://`` is
TLS from the first byte; ``ldap://`` is accepted too and then always upgraded with StartTLS
before the bind (slapd refuses a password without TLS anyway).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPStartTLSError
from ldap3.utils.conv import escape_filter_chars

from . import contract, policy
from .errors import (
    DirectoryError,
    DirectoryUnavailableError,
    EntryExistsError,
    InvalidCredentialsError,
    NoSuchEntryError,
)

URI_ENV = "GOVMAIL_LDAP_URI"
ADMIN_PASSWORD_FILE_ENV = "GOVMAIL_LDAP_ADMIN_PASSWORD_FILE"
CA_FILE_ENV = "GOVMAIL_LDAP_CA_FILE"

LDAPS_PORT = 636
CONNECT_TIMEOUT = 10
RECEIVE_TIMEOUT = 60
PAGE_SIZE = 500

# RFC 4511 result codes the callers distinguish.
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
UNDEFINED_ATTRIBUTE_TYPE = 17
CONSTRAINT_VIOLATION = 19
NO_SUCH_OBJECT = 32
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
ENTRY_ALREADY_EXISTS = 68

_GENERALIZED_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,]\d+)?(Z|[+-]\d{2}(?:\d{2})?)?$")


# --- where the directory is -------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Everything needed to open an administrator connection to one site's directory."""

    uri: str
    domain: str
    base_dn: str
    tls_names: tuple[str, ...]
    ca_file: Path
    admin_dn: str
    admin_password: str = field(repr=False)
    # Bytes per mailbox kind for entries without govmailQuota: the shared facts
    # govmail_quota_personal and govmail_quota_agency (roles/govmail/defaults/main.yml).
    default_quota: Mapping[str, int] = field(default_factory=lambda: dict(policy.MINIMUM_QUOTA))


def parse_uri(uri: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an ``ldaps://`` or ``ldap://`` URI, or DirectoryError."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("ldaps", "ldap") or not parts.hostname:
        raise DirectoryError(
            f"directory URI {uri!r} is not an LDAP URI: use ldaps://host:port (e.g. ldaps://127.0.0.1:10636)"
        )
    return parts.scheme, parts.hostname, port or (LDAPS_PORT if parts.scheme == "ldaps" else 389)


# --- values ----------------------------------------------------------------------------------


def generalized_time(moment: datetime | None = None) -> str:
    """LDAP GeneralizedTime in UTC, to the second: ``20261123203536Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_generalized_time(value: str | None) -> datetime | None:
    """GeneralizedTime (RFC 4517 §3.3.13: ``20261123203536.397166Z``, ``202611232035+0700``) as an
    aware UTC datetime; None for no value, a malformed one, or ppolicy's permanent-lockout value
    ``000001010000Z`` (year 0, not a moment)."""
    if not value:
        return None
    match = _GENERALIZED_TIME.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone != "Z":  # local time with an offset: subtract the offset to get UTC
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return moment


def iso_time(value: str | None) -> str | None:
    """GeneralizedTime (``20261123203536.397166Z``) -> ISO 8601 UTC (``2026-11-23T20:35:36Z``)."""
    moment = parse_generalized_time(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def escape(value: str) -> str:
    """A value escaped for use inside an LDAP filter."""
    return escape_filter_chars(value)


@dataclass(frozen=True)
class Entry:
    """One entry read from the directory; attribute names are matched case-insensitively."""

    dn: str
    attributes: Mapping[str, list[str]]

    def all(self, name: str) -> list[str]:
        wanted = name.lower()
        for key, values in self.attributes.items():
            if key.lower() == wanted:
                return list(values)
        return []

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return generalized_time(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)


def _entry(response: Mapping[str, Any]) -> Entry:
    attributes: dict[str, list[str]] = {}
    for name, values in (response.get("attributes") or {}).items():
        items = values if isinstance(values, (list, tuple)) else [values]
        if items:
            attributes[name] = [_text(item) for item in items]
    return Entry(dn=response["dn"], attributes=attributes)


# --- the connection --------------------------------------------------------------------------


def server(settings: Settings) -> ldap3.Server:
    """An ldap3 server for ``settings.uri`` that trusts only the site's CA and checks its name."""
    scheme, host, port = parse_uri(settings.uri)
    tls = ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=str(settings.ca_file),
        version=ssl.PROTOCOL_TLS_CLIENT,
        valid_names=list(settings.tls_names),
        sni=settings.tls_names[0] if settings.tls_names else None,
    )
    return ldap3.Server(
        host, port=port, use_ssl=scheme == "ldaps", tls=tls, get_info=ldap3.NONE, connect_timeout=CONNECT_TIMEOUT
    )


class Directory:
    """An administrator's connection to the directory of one mail domain.

    Build it with :meth:`open` (the real directory) or directly around any bound ldap3
    connection (tests use ldap3's ``MOCK_SYNC`` strategy). Use it as a context manager.
    """

    def __init__(
        self,
        connection: ldap3.Connection,
        *,
        domain: str,
        base_dn: str,
        uri: str,
        default_quota: Mapping[str, int] | None = None,
    ) -> None:
        self.connection = connection
        self.domain = domain
        self.base_dn = base_dn
        self.uri = uri
        self._default_quota = dict(default_quota or policy.MINIMUM_QUOTA)

    def default_quota(self, kind: str) -> int:
        """Bytes of quota a mailbox of ``kind`` (personal|agency) has without govmailQuota.

        The site's shared facts govmail_quota_personal/_agency, as Dovecot enforces them; an
        unknown kind counts as personal.
        """
        return self._default_quota.get(kind, self._default_quota["personal"])

    @classmethod
    def open(cls, settings: Settings) -> Directory:
        """Connect and bind as the administrator; every failure is a one-line DirectoryError."""
        connection = ldap3.Connection(
            server(settings),
            user=settings.admin_dn,
            password=settings.admin_password,
            raise_exceptions=False,
            receive_timeout=RECEIVE_TIMEOUT,
        )
        directory = cls(
            connection,
            domain=settings.domain,
            base_dn=settings.base_dn,
            uri=settings.uri,
            default_quota=settings.default_quota,
        )
        directory._bind(connection, settings.admin_dn, what="the administrator")
        return directory

    @classmethod
    def open_local(cls, uri: str, *, domain: str, base_dn: str) -> Directory:
        """Root's connection on the directory host: ``ldapi://`` with SASL EXTERNAL (the
        database's root identity, no password); what the host programs (lifecycle) use.
        Raises :class:`DirectoryUnavailableError` when slapd is not reachable or refuses."""
        connection = ldap3.Connection(
            ldap3.Server(uri, get_info=ldap3.NONE),
            authentication=ldap3.SASL,
            sasl_mechanism=ldap3.EXTERNAL,
            sasl_credentials="",
            raise_exceptions=False,
            receive_timeout=RECEIVE_TIMEOUT,
        )
        directory = cls(connection, domain=domain, base_dn=base_dn, uri=uri)
        with directory._guard("root's SASL EXTERNAL bind"):
            ok = connection.bind()
        if not ok:
            detail = (connection.result or {}).get("description")
            raise DirectoryUnavailableError(
                f"the directory at {uri} refused root's SASL EXTERNAL bind ({detail}): "
                "run as root on the directory host"
            )
        return directory

    # --- plumbing ---

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with suppress(LDAPException):
            self.connection.unbind()

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn ldap3's exceptions during ``what`` into DirectoryError naming the URI."""
        try:
            yield
        except DirectoryError:
            raise
        except LDAPSocketOpenError as exc:
            reason = str(exc).strip() or exc.__class__.__name__
            hint = (
                "the certificate is not trusted or does not name the host: check the CA file and the host name"
                if "certificate" in reason.lower() or "ssl" in reason.lower()
                else "is the lab up? run `make up` (or `govmail lab up`), or set " + URI_ENV
                if f"{contract.LOCALHOST}:" in self.uri
                else "check that the directory host is up and that this machine reaches it (port 636), "
                "or set " + URI_ENV
            )
            raise DirectoryUnavailableError(
                f"cannot connect to the directory at {self.uri} ({_short(reason)}): {hint}"
            ) from None
        except LDAPStartTLSError as exc:
            raise DirectoryUnavailableError(
                f"StartTLS with the directory at {self.uri} failed ({_short(str(exc))}): check the CA file "
                "and the host name, or use ldaps://"
            ) from None
        except LDAPException as exc:
            raise DirectoryUnavailableError(
                f"the directory at {self.uri} failed during {what} ({exc.__class__.__name__}: {_short(str(exc))}): "
                "check that slapd is running (govmail lab status) and retry"
            ) from None

    def _bind(self, connection: ldap3.Connection, dn: str, *, what: str) -> None:
        with self._guard(f"the bind of {what}"):
            if connection.closed:
                connection.open()
            if not connection.server.ssl and connection.strategy_type != ldap3.MOCK_SYNC and not connection.tls_started:
                connection.start_tls()
            if connection.bind():
                return
        result = connection.result or {}
        code = result.get("result")
        if code == INVALID_CREDENTIALS:
            raise InvalidCredentialsError(
                f"the directory at {self.uri} refused the password of {what} ({dn})", INVALID_CREDENTIALS
            )
        raise self._error(connection, f"the bind of {what} ({dn})")

    def _error(self, connection: ldap3.Connection, what: str) -> DirectoryError:
        result = connection.result or {}
        code = result.get("result")
        description = result.get("description") or f"result {code}"
        message = (result.get("message") or "").strip()
        detail = f"{description}: {message}" if message else description
        text = f"{what} was refused by the directory at {self.uri} ({detail})"
        error = self._classify(code, text, message)
        error.detail = detail
        return error

    @staticmethod
    def _classify(code: int | None, text: str, message: str) -> DirectoryError:
        if code == UNDEFINED_ATTRIBUTE_TYPE:
            name = message.split(":")[0].strip() if message else "an attribute"
            if "pwd" in message.lower():
                text += (
                    f"; the directory does not know {name}, so its password policy overlay (ppolicy) is missing: "
                    "converge the appliance (govmail lab up, or site.yml) and retry"
                )
            else:
                text += "; the directory's schema lacks it: converge the appliance (govmail lab up) and retry"
            return DirectoryError(text, code)
        if code == INSUFFICIENT_ACCESS:
            return DirectoryError(
                text + "; the administrator lacks the right: check the directory's access rules", code
            )
        if code == ENTRY_ALREADY_EXISTS:
            return EntryExistsError(text, code)
        if code == NO_SUCH_OBJECT:
            return NoSuchEntryError(text, code)
        if code == INVALID_CREDENTIALS:
            return InvalidCredentialsError(text, code)
        return DirectoryError(text, code)

    # --- names ---

    @property
    def agencies_dn(self) -> str:
        return f"ou=agencies,{self.base_dn}"

    def agency_dn(self, agency: str) -> str:
        """DN of an agency given as its mailbox's local part: ``vp.sokhcn`` -> ``ou=vp,ou=sokhcn,...``."""
        return ",".join(f"ou={part}" for part in agency.split(".")) + f",{self.agencies_dn}"

    def agency_of(self, dn: str) -> str | None:
        """The agency (``sokhcn``, ``vp.sokhcn``) an entry or agency DN belongs to, or None."""
        parts = [part.strip() for part in re.split(r"(?<!\\),", dn)]
        suffix = [part.lower() for part in self.agencies_dn.split(",")]
        lowered = [part.lower() for part in parts]
        if lowered[-len(suffix) :] != suffix:
            return None
        units = [part.split("=", 1)[1] for part in parts[: -len(suffix)] if part.lower().startswith("ou=")]
        return ".".join(units) or None

    # --- reads ---

    def search(
        self,
        base: str,
        ldap_filter: str,
        attributes: Iterable[str],
        *,
        scope: str = ldap3.SUBTREE,
    ) -> list[Entry]:
        """All entries that match, read page by page (the directory caps plain searches at 500)."""
        entries: list[Entry] = []
        cookie: bytes | str | None = None
        what = f"the search {ldap_filter} under {base}"
        while True:
            with self._guard(what):
                self.connection.search(
                    base, ldap_filter, search_scope=scope, attributes=list(attributes),
                    paged_size=PAGE_SIZE, paged_cookie=cookie,
                )  # fmt: skip
            result = self.connection.result or {}
            code = result.get("result")
            if code == NO_SUCH_OBJECT:
                return []
            if code == SIZE_LIMIT_EXCEEDED:
                count = len(entries) + len(self.connection.response or [])
                raise DirectoryError(
                    f"the directory at {self.uri} stopped {what} after {count} "
                    "entries (sizeLimitExceeded): give the administrator an unlimited size limit (olcLimits) "
                    "in the openldap role",
                    code,
                )
            if code != SUCCESS:
                raise self._error(self.connection, what)
            entries += [_entry(item) for item in self.connection.response or [] if item.get("type") == "searchResEntry"]
            controls = result.get("controls") or {}
            paged = controls.get("1.2.840.113556.1.4.319") or {}
            cookie = (paged.get("value") or {}).get("cookie")
            if not cookie:
                return entries

    def get(self, dn: str, attributes: Iterable[str]) -> Entry | None:
        """One entry by DN, or None if it does not exist."""
        found = self.search(dn, "(objectClass=*)", attributes, scope=ldap3.BASE)
        return found[0] if found else None

    def exists(self, dn: str) -> bool:
        return self.get(dn, ["objectClass"]) is not None

    # --- writes ---

    def add(self, dn: str, object_classes: list[str], attributes: Mapping[str, Any]) -> None:
        with self._guard(f"adding {dn}"):
            ok = self.connection.add(dn, object_classes, dict(attributes))
        if not ok:
            raise self._error(self.connection, f"adding {dn}")

    def modify(self, dn: str, changes: Mapping[str, list[tuple[str, list[Any]]]]) -> None:
        """``changes``: ``{attribute: [(ldap3.MODIFY_REPLACE|ADD|DELETE, [values])]}``."""
        with self._guard(f"changing {dn}"):
            ok = self.connection.modify(dn, dict(changes))
        if not ok:
            raise self._error(self.connection, f"changing {dn}")

    def delete(self, dn: str) -> None:
        with self._guard(f"deleting {dn}"):
            ok = self.connection.delete(dn)
        if not ok:
            raise self._error(self.connection, f"deleting {dn}")

    # --- acting as a mailbox's owner ---

    def bind_as(self, dn: str, password: str) -> ldap3.Connection:
        """A new connection bound as ``dn`` (InvalidCredentialsError when the password is wrong)."""
        connection = ldap3.Connection(
            self.connection.server,
            user=dn,
            password=password,
            raise_exceptions=False,
            receive_timeout=RECEIVE_TIMEOUT,
            client_strategy=self.connection.strategy_type,
        )
        self._bind(connection, dn, what=dn)
        return connection

    def change_own_password(self, dn: str, old: str, new: str) -> None:
        """RFC 3062 Password Modify as the owner: slapd hashes ``new`` and applies its policy.

        InvalidCredentialsError when ``old`` is wrong; DirectoryError carrying the server's text
        (password in history, quality) when the policy refuses ``new``.
        """
        connection = self.bind_as(dn, old)
        try:
            with self._guard(f"the password change of {dn}"):
                done = connection.extend.standard.modify_password(user=dn, old_password=old, new_password=new)
            if not done:
                raise self._error(connection, f"the password change of {dn}")
        finally:
            with suppress(LDAPException):
                connection.unbind()


def _short(text: str, limit: int = 160) -> str:
    """One line of an ldap3 message, without the tuple punctuation ldap3 wraps socket errors in."""
    text = " ".join(text.split())
    text = re.sub(r"^[\s(\"',]+|[\s)\"',]+$", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"

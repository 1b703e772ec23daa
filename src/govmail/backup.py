"""Backups of a host that holds data, with a manifest that proves what each archive holds (O1).

This module runs **on each backed-up host** (the directory + mail store host, and each webmail
host: playbooks/backup.yml, ``backup_client_groups``), installed there by ``roles/backup`` as
``govmail-backup`` (the govmail package's wheel of ``roles/lifecycle``), started
daily by ``govmail-backup.timer`` and by ``govmail backup run`` from the controller. It uses only
the standard library, restic and the host's own tools (``slapcat``, ``doveadm``, ``sendmail``).

One run (``run``):

1. **stage**: every mailbox home (``<vmail_dir>/<domain>/<local part>``: the Maildir with its
   folders, flags in the file names, ``dovecot-uidlist``, subscriptions, the Sieve scripts) is
   mirrored in ``<staging_dir>/vmail`` as *hard links* (Maildir message files are never
   rewritten, only renamed or unlinked, so a link is a frozen copy taken in milliseconds);
   Dovecot's index files are left out (rebuilt from the Maildir). The mirror stays between runs
   and each run links only new names and unlinks gone ones (:func:`stage_mailboxes`): an
   unchanged message keeps its ctime, so neither restic nor the manifest reads it again. The
   directory is exported with ``slapcat`` while slapd runs (back-mdb reads are consistent):
   ``directory/data.ldif`` (the suffix) and ``directory/config.ldif`` (cn=config), removed with
   the manifest after the run. A host without a mail store (``vmail_dir`` empty: a webmail host)
   stages no mail, one without the directory (``base_dn`` empty) exports none. On the host that
   runs the webmail's shared PostgreSQL database (config ``postgresql_databases``), each
   database is dumped too: ``database/<name>.pgdump``
   (:func:`dump_databases`); on the single webmail host, Roundcube's SQLite database (config
   ``sqlite_databases``) is copied with SQLite's online backup while Roundcube runs:
   ``database/<name>.sqlite3`` (:func:`stage_sqlite`). ``restore --all`` and ``restore
   --databases`` put both back (:func:`restore_databases`). On the mx host, the content filter's
   learned state (config ``valkey``: Rspamd's Bayes data in Valkey) is snapshotted as
   ``filter/valkey.rdb`` (:mod:`govmail.valkey`); ``restore --all`` and ``restore --filter`` put
   it back (:func:`restore_filter`).
2. **manifest**: ``<staging_dir>/manifest.json`` is computed from the staged files, so it
   describes exactly what the archive holds even while mail keeps arriving (see
   :func:`build_manifest` for its shape); a message restic will not read again (same path,
   inode, size, mtime and ctime as in the previous snapshot) keeps the SHA-256 that run computed
   (:class:`DigestCache`, in ``/var/cache/govmail-backup``).
3. **archive**: ``restic backup`` of the staging area plus ``paths`` (the rendered
   configuration in ``/etc`` with the host's keys and certificates and the service secrets, the
   logs in ``/var/log``, the lifecycle's archives) to the rest-server of the backup host over
   HTTPS (the internal CA), authenticated with this host's own credential. The server runs
   ``--append-only``: this host can add archives, never delete or rewrite them. The snapshot
   carries tags ``govmail``, ``mailboxes=N`` and ``messages=N`` so listing needs no download.
   ``--parent`` is the snapshot whose digests the manifest reused (``--force`` when there is
   none: every file is read), ``--no-scan`` skips restic's counting pass. One run at a time
   (``<staging_dir>.lock``).

Configuration: ``/etc/govmail/backup.json`` (written by the role), keys ``host``, ``domain``,
``repository`` (``rest:https://...``), ``username``, ``password_file``,
``repository_password_file``, ``ca_certificate``, ``vmail_dir``, ``mailbox_layout``, ``base_dn``,
``staging_dir``, ``paths`` (list), ``operators`` (address told of a failure), optional
``relay`` (``host:port`` of the MX a host without Postfix mails that failure to), optional
``postgresql_databases`` (list of names dumped with pg_dump), optional ``sqlite_databases``
(``{name: path of the live SQLite file}``), optional ``valkey`` (``host:port`` of the filter's
Valkey on this host; empty: none).

Errors are :class:`BackupError`; ``main`` prints them as one line and exits 2 (1 for a backup that
ran and failed), so systemd marks the unit failed and ``OnFailure=`` mails the operators.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from . import hostconfig, valkey
from .errors import BackupError

CONFIG_FILE = "/etc/govmail/backup.json"
CACHE_DIR = "/var/cache/govmail-backup"
MANIFEST = "manifest.json"
TAG = "govmail"
# Dovecot's caches: rebuilt from the Maildir, rewritten in place (a hard link would not freeze them).
SKIPPED_PREFIXES = ("dovecot.index", "dovecot.list.index", "dovecot-uidlist.lock")
MAILDIR_SUBDIRS = ("cur", "new", "tmp")
# Dovecot's full-text index of a folder (fts_flatcurve, roles/dovecot): derived from the messages,
# rewritten in place by Xapian while it is linked, so not staged; a restored mailbox gets it
# rebuilt (restore queues `doveadm index`).
SKIPPED_DIRS = ("fts-flatcurve",)


def _skipped(name: str) -> bool:
    """Whether a name in a mailbox home is one Dovecot rebuilds (never staged, never archived)."""
    return name.startswith(SKIPPED_PREFIXES) or name in SKIPPED_DIRS


__all__ = ["BackupError", "build_manifest", "decode_mutf7", "main", "stage_mailboxes"]


# --- the manifest ----------------------------------------------------------------------------


def decode_mutf7(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 §5.1.3), how Dovecot names folders on disk, as Unicode.

    ``"B&AOE-o c&AOE-o"`` -> ``"Báo cáo"``; ``"&-"`` -> ``"&"``. Raises :class:`BackupError` on a
    malformed name.
    """
    out, i = [], 0
    while i < len(name):
        if name[i] != "&":
            out.append(name[i])
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            raise BackupError(f"folder name {name!r} is not modified UTF-7 (unterminated '&')")
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            data += "=" * (-len(data) % 4)
            try:
                out.append(base64.b64decode(data).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                raise BackupError(f"folder name {name!r} is not modified UTF-7") from None
        i = end + 1
    return "".join(out)


def _folders(maildir: Path | str) -> Iterator[tuple[str, Path]]:
    """(IMAP folder name, directory) of every folder of an fs-layout Maildir; INBOX is its root."""
    root = os.fspath(maildir)
    for current, dirs, _files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in MAILDIR_SUBDIRS)
        if os.path.isdir(os.path.join(current, "cur")):
            relative = os.path.relpath(current, root)
            name = "INBOX" if relative == "." else "/".join(decode_mutf7(part) for part in relative.split(os.sep))
            yield name, Path(current)


def _messages(folder: Path) -> Iterator[Path]:
    for sub in ("cur", "new"):
        directory = folder / sub
        if directory.is_dir():
            for entry in sorted(directory.iterdir()):
                if entry.is_file():
                    yield entry


def _message_entries(directory: str) -> list[os.DirEntry[str]]:
    """The files of a Maildir's ``cur`` or ``new``, sorted by name ([] when it is not there).

    One ``getdents`` listing; whether an entry is a file comes from its ``d_type`` (no stat).
    """
    try:
        with os.scandir(directory) as listing:
            entries = [entry for entry in listing if entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries.sort(key=_name)
    return entries


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def message_key(filename: str) -> tuple[str, str]:
    """A Maildir file name as (unique base name, flags): ``"1.M2P3.h,S=9:2,FS"`` -> ``("1.M2P3.h,S=9", "FS")``."""
    base, _, info = filename.partition(":")
    return base, info[2:] if info.startswith("2,") else ""


def _digest(values: Iterable[str]) -> str:
    """SHA-256 (hex) of ``values`` sorted, one per line: ``sha256("a\\nb\\n")`` for ``["b", "a"]``."""
    return hashlib.sha256("".join(f"{value}\n" for value in sorted(values)).encode()).hexdigest()


def _file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes; raises OSError.

    ``os.read`` of 64 KiB at a time: a message of a few KiB is one read (``hashlib.file_digest``
    zero-fills a 256 KiB buffer per file, which cost 2x the read itself on 100,000 small
    messages: bench/backup_local.py).
    """
    digest = hashlib.sha256()
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while chunk := os.read(descriptor, 1 << 16):
            digest.update(chunk)
    finally:
        os.close(descriptor)
    return digest.hexdigest()


class DigestCache:
    """SHA-256 sums of files kept from the previous backup, reused where restic reuses the file too.

    ``known``: ``{DIRECTORY: {NAME: "INODE SIZE MTIME_NS CTIME_NS SHA256"}}`` as the previous run
    left it (:attr:`seen` of that run; one string per file, not a list: a tenth of the objects to
    parse and build, bench/backup_local.py). A file whose path, inode, size, mtime and ctime (ns)
    are those recorded gets the recorded sum without being read; any other is read. This is the
    very test by which ``restic backup --parent <the previous snapshot>`` decides to reuse a
    file's content from that snapshot instead of reading it (restic's archiver, ``fileChanged``:
    type, mtime, ctime, size, inode), so the manifest and the archive always describe the same
    bytes; any write to a file changes its ctime, which nobody can set back. The staging mirror
    keeps its links between runs (:func:`stage_mailboxes`), so an unchanged message keeps its
    ctime. :attr:`seen` is what this run found, for the next one;
    :attr:`hits`/:attr:`reads` count files reused and read.
    """

    def __init__(self, known: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.known = known or {}
        self.seen: dict[str, dict[str, str]] = {}
        self.hits = 0
        self.reads = 0

    def sha256(self, path: Path | str, info: os.stat_result | None = None) -> str:
        """The SHA-256 (hex) of the file ``path`` (``info``: its stat, when the caller has it); raises OSError."""
        directory, name = os.path.split(os.fspath(path))
        return self._sums(directory, [(name, os.path.join(directory, name), info or os.stat(path))])[0]

    def directory(self, directory: str, entries: Sequence[os.DirEntry[str]]) -> list[str]:
        """The SHA-256 (hex) of each of ``entries`` (files of ``directory``), in their order; raises OSError.

        One ``stat`` per file (``DirEntry.stat``: the inode, size and times restic compares), a
        read only for a file not reused; the directory's previous sums are looked up once.
        """
        return self._sums(directory, [(entry.name, entry.path, entry.stat()) for entry in entries])

    def _sums(self, directory: str, files: Sequence[tuple[str, str, os.stat_result]]) -> list[str]:
        if not files:
            return []
        known = self.known.get(directory) or {}
        seen = self.seen.setdefault(directory, {})
        sums = []
        for name, path, info in files:
            stamp = f"{info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns} "
            old = known.get(name)
            if old is not None and len(old) == len(stamp) + 64 and old.startswith(stamp):
                digest = old[-64:]
                self.hits += 1
            else:
                digest = _file_sha256(path)
                old = stamp + digest
                self.reads += 1
            seen[name] = old
            sums.append(digest)
        return sums


def mailbox_manifest(home: Path, digests: DigestCache | None = None) -> dict[str, Any]:
    """The manifest of one mailbox home (``<home>/Maildir``).

    Shape: ``{"messages": N, "digest": SHA256, "folders": {NAME: {"messages": N, "digest":
    SHA256, "files": {BASE: {"sha256": SHA256, "flags": "FS"}}}}}``. A folder's digest is the
    SHA-256 of its messages' SHA-256 sums (sorted, one per line); the mailbox's of all of them;
    so a digest depends on the messages' bytes only, not on flags or on-disk names. ``digests``:
    the sums of the previous backup (:class:`DigestCache`); None reads every message.
    Paths are handled as strings (a ``Path`` per message cost more than its stat: bench/backup_local.py).
    """
    folders: dict[str, Any] = {}
    every: list[str] = []
    for name, path in _folders(home / "Maildir"):
        files = {}
        for sub in ("cur", "new"):
            directory = os.path.join(path, sub)
            entries = _message_entries(directory)
            if digests is not None:
                sums = digests.directory(directory, entries)
            else:
                sums = [_file_sha256(entry.path) for entry in entries]
            for entry, digest in zip(entries, sums, strict=True):
                base, flags = message_key(entry.name)
                files[base] = {"sha256": digest, "flags": flags}
        sums = [item["sha256"] for item in files.values()]
        every += sums
        folders[name] = {"messages": len(files), "digest": _digest(sums), "files": files}
    return {"messages": len(every), "digest": _digest(every), "folders": folders}


def ldif_entries(text: str) -> list[str]:
    """The entries of an LDIF export (``slapcat``), each as its text, without comments."""
    entries = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith("#")]
        if lines and lines[0].startswith("dn"):
            entries.append("\n".join(lines))
    return entries


# What slapd itself rewrites as the directory is used (lastbind's login times, ppolicy's failure
# counter, replication and modification stamps): left out of the directory's digest, which
# covers what the entries say, not when they were last used.
VOLATILE_ATTRIBUTES = frozenset(
    a.lower()
    for a in (
        "authTimestamp", "pwdLastSuccess", "pwdFailureTime", "contextCSN", "entryCSN", "modifyTimestamp",
        "modifiersName",
    )
)  # fmt: skip


def _stable(entry: str) -> str:
    lines = entry.replace("\n ", "").split("\n")  # unfold (RFC 2849) first
    return "\n".join(line for line in lines if line.split(":", 1)[0].lower() not in VOLATILE_ATTRIBUTES)


def directory_manifest(ldif: Path) -> dict[str, Any]:
    """``{"entries": N, "digest": SHA256}`` of an LDIF export (``slapcat``).

    The digest is the SHA-256 of the entries' sorted SHA-256 sums, each entry without
    :data:`VOLATILE_ATTRIBUTES`.
    """
    entries = ldif_entries(ldif.read_text(encoding="utf-8"))
    sums = (hashlib.sha256(_stable(e).encode()).hexdigest() for e in entries)
    return {"entries": len(entries), "digest": _digest(sums)}


def build_manifest(
    staging: Path,
    *,
    host: str,
    created: datetime | None = None,
    digests: DigestCache | None = None,
    filter_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a staging area (``vmail/<domain>/<local part>``, ``directory/data.ldif``).

    Shape: ``{"version": 1, "host": H, "time": ISO-8601, "mailboxes": {ADDRESS: mailbox_manifest},
    "totals": {"mailboxes": N, "messages": N}, "directory": {"entries": N, "digest": D} | None,
    "filter": {"keys": N, "digest": D, "sha256": S} | None}`` (``filter_state``: the content
    filter's snapshot ``filter/valkey.rdb`` as :func:`govmail.valkey.rdb_digest` describes it).
    ``digests``: see :func:`mailbox_manifest`.
    """
    mailboxes = {}
    vmail = staging / "vmail"
    if vmail.is_dir():
        for domain in sorted(p for p in vmail.iterdir() if p.is_dir()):
            for home in sorted(p for p in domain.iterdir() if (p / "Maildir").is_dir()):
                mailboxes[f"{home.name}@{domain.name}"] = mailbox_manifest(home, digests)
    ldif = staging / "directory" / "data.ldif"
    return {
        "version": 1,
        "host": host,
        "time": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "mailboxes": mailboxes,
        "totals": {"mailboxes": len(mailboxes), "messages": sum(m["messages"] for m in mailboxes.values())},
        "directory": directory_manifest(ldif) if ldif.is_file() else None,
        "filter": filter_state,
    }


# --- staging ---------------------------------------------------------------------------------


def _link_or_copy(source: str, target: str, *, symlink: bool) -> bool:
    """Hard-link ``source`` to ``target`` (``symlink``: recreate the link instead); False if it vanished."""
    try:
        if symlink:
            os.symlink(os.readlink(source), target)
        else:
            os.link(source, target, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _entries(directory: str) -> dict[str, os.DirEntry[str]]:
    try:
        with os.scandir(directory) as listing:
            return {entry.name: entry for entry in listing}
    except FileNotFoundError:
        return {}


def _remove(entry: os.DirEntry[str]) -> None:
    if entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)


def _same(live: os.DirEntry[str] | None, staged: os.DirEntry[str], *, in_tmp: bool) -> bool:
    """Whether a staged entry still mirrors the live one: same kind, file on the same inode, link to the same target."""
    if live is None or _skipped(live.name):
        return False
    if staged.is_dir(follow_symlinks=False) or live.is_dir(follow_symlinks=False):
        return staged.is_dir(follow_symlinks=False) and live.is_dir(follow_symlinks=False)
    if in_tmp:
        return False
    if staged.is_symlink() or live.is_symlink():
        return staged.is_symlink() and live.is_symlink() and os.readlink(staged.path) == os.readlink(live.path)
    return staged.inode() == live.inode()


def _link_message(source_dir: str, destination: str, entry: os.DirEntry[str]) -> int:
    """Link ``entry`` of ``source_dir`` into ``destination``; 1 if linked (its name or, renamed since, the new one)."""
    name = entry.name
    if _link_or_copy(entry.path, f"{destination}/{name}", symlink=entry.is_symlink()):
        return 1
    if os.path.basename(source_dir) == "cur":  # renamed since the listing (a flag changed): the same message
        base, _ = message_key(name)
        renamed = [p for p in Path(source_dir).glob(f"{glob.escape(base)}:*") if p.name != name]
        if (
            renamed
            and not os.path.lexists(os.path.join(destination, renamed[0].name))
            and _link_or_copy(
                str(renamed[0]), os.path.join(destination, renamed[0].name), symlink=renamed[0].is_symlink()
            )
        ):
            return 1
    return 0


def stage_mailboxes(vmail_dir: Path | str, target: Path | str) -> int:
    """Make ``target`` a mirror of every mailbox home under ``vmail_dir`` by hard links; returns the files linked.

    The mirror stays between runs and only what changed is touched: a name the mailbox no longer
    has is unlinked, a new name (or a name now on another inode: ``dovecot-uidlist`` is replaced
    by rename) is linked; the rest keeps its inode, its link count and so its ctime, which is what
    lets restic (without ``--ignore-ctime``) and :class:`DigestCache` skip an unchanged message
    instead of reading it again (a tree rebuilt each run gave every file a new ctime and every
    directory a new tree blob in restic). The directory entries' kinds and inode numbers come
    from readdir (``os.scandir``'s ``d_type`` and ``d_ino``): no stat per message, neither for an
    unchanged one nor for a new one (one ``link`` each). A message renamed while it is linked (a
    flag changed) is found again under its new name; one expunged meanwhile is left out.
    Dovecot's index files (``SKIPPED_PREFIXES``), its full-text index (``SKIPPED_DIRS``: Dovecot
    rebuilds both) and deliveries in progress (``tmp``) are left out. Both trees must be on one
    filesystem (``staging_dir`` lives under ``/var``, like the Maildirs). Paths are strings
    throughout (a ``Path`` per message cost as much as its ``link``: bench/backup_local.py).
    """
    linked = 0
    os.makedirs(target, exist_ok=True)
    pending = [(os.path.normpath(vmail_dir), os.path.normpath(target))]
    while pending:
        source_dir, destination = pending.pop()
        have = _entries(source_dir)
        staged = _entries(destination)
        in_tmp = os.path.basename(source_dir) == "tmp"
        for name, entry in list(staged.items()):
            live = have.get(name)
            if (  # the common case first: an unchanged message, a file on the same inode
                live is not None
                and not in_tmp
                and entry.is_file(follow_symlinks=False)
                and live.is_file(follow_symlinks=False)
                and entry.inode() == live.inode()
                and not _skipped(name)
            ):
                continue
            if not _same(live, entry, in_tmp=in_tmp):
                _remove(entry)
                del staged[name]
        for name, entry in have.items():
            if name in staged or _skipped(name):
                continue
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(os.path.join(destination, name))
                pending.append((entry.path, os.path.join(destination, name)))
            elif not in_tmp:  # deliveries in progress are not messages yet
                linked += _link_message(source_dir, destination, entry)
        pending += [
            (entry.path, os.path.join(destination, name))
            for name, entry in have.items()
            if name in staged and entry.is_dir(follow_symlinks=False) and not _skipped(name)
        ]
        info, mine = os.stat(source_dir), os.stat(destination)
        if (info.st_mode, info.st_mtime_ns) != (mine.st_mode, mine.st_mtime_ns):
            shutil.copystat(source_dir, destination)
    return linked


# --- restic ----------------------------------------------------------------------------------


class Config:
    """``/etc/govmail/backup.json`` (see the module docstring for its keys)."""

    KEYS = (
        "host",
        "repository",
        "username",
        "password_file",
        "repository_password_file",
        "ca_certificate",
        "vmail_dir",
        "base_dn",
        "staging_dir",
        "paths",
        "operators",
    )

    def __init__(self, data: Mapping[str, Any], path: str = CONFIG_FILE) -> None:
        missing = [key for key in self.KEYS if key not in data]
        if missing:
            raise BackupError(f"{path} lacks {', '.join(missing)}: converge playbooks/backup.yml again")
        self.data = dict(data)
        self.path = path

    @classmethod
    def load(cls, path: str = CONFIG_FILE) -> Config:
        return cls(hostconfig.read(path, BackupError, "playbooks/backup.yml"), path)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def environment(self) -> dict[str, str]:
        """restic's environment: repository, passphrase file, this client's credential, the CA."""
        try:
            password = Path(self["password_file"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BackupError(f"cannot read {self['password_file']}: {exc.strerror}") from None
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(
            RESTIC_REPOSITORY=self["repository"],
            RESTIC_PASSWORD_FILE=self["repository_password_file"],
            RESTIC_REST_USERNAME=self["username"],
            RESTIC_REST_PASSWORD=password,
            RESTIC_CACERT=self["ca_certificate"],
            RESTIC_CACHE_DIR=CACHE_DIR,
        )
        return env


def restic(config: Config, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``restic ARGS`` with the host's credentials; raises :class:`BackupError` if it fails and ``check``."""
    try:
        completed = subprocess.run(
            ["restic", *args], env=config.environment(), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise BackupError(f"cannot run restic: {exc.strerror}; is the package installed?") from None
    if check and completed.returncode != 0:
        detail = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
        raise BackupError(f"restic {args[0]} on {config['repository']} failed: {detail}")
    return completed


def check_reachable(config: Config, *, timeout: float = 10) -> None:
    """Fail at once, naming the host, when the backup host's HTTPS port does not answer.

    restic itself retries an unreachable backend for many minutes; a daily run should rather fail
    now, visibly (exit status, journal, mail to the operators).
    """
    location = urlsplit(config["repository"].removeprefix("rest:"))
    host, port = location.hostname or "", location.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise BackupError(f"restic cannot reach the backup host {host}:{port}: {exc.strerror or exc}") from None


def init(config: Config) -> str:
    """Create the repository unless it exists; returns ``"exists"`` or ``"created"``.

    restic exits 10 when the repository does not exist (restic 0.17+, "Exit status codes" in its
    scripting docs); anything else (the backup host unreachable, a wrong credential) is an error.
    """
    check_reachable(config)
    probe = restic(config, ["cat", "config"], check=False)
    if probe.returncode == 0:
        return "exists"
    if probe.returncode != 10:
        detail = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
        raise BackupError(f"restic cannot open {config['repository']}: {detail}")
    restic(config, ["init"])
    return "created"


def _tags(snapshot: Mapping[str, Any]) -> dict[str, int]:
    values = {}
    for tag in snapshot.get("tags") or []:
        key, _, value = tag.partition("=")
        if value.isdigit():
            values[key] = int(value)
    return values


def list_archives(config: Config) -> list[dict[str, Any]]:
    """``[{"archive": NAME, "time": ISO-8601, "mailboxes": N, "messages": N}, ...]``, oldest first."""
    check_reachable(config)
    completed = restic(config, ["snapshots", "--json", "--tag", TAG])
    snapshots = json.loads(completed.stdout or "[]")
    archives = []
    for snapshot in sorted(snapshots, key=lambda s: s["time"]):
        tags = _tags(snapshot)
        archives.append(
            {
                "archive": snapshot["short_id"],
                "time": snapshot["time"],
                "mailboxes": tags.get("mailboxes", 0),
                "messages": tags.get("messages", 0),
            }
        )
    return archives


def _progress(line: str, last: list[float], expected: int) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        return
    if event.get("message_type") == "status" and time.monotonic() - last[0] >= 2:
        last[0] = time.monotonic()
        done = event.get("files_done", 0)
        print(f"govmail-backup: {done} of about {expected} files", file=sys.stderr, flush=True)


#: The manifest's SHA-256 sums of the last backup, kept for the next one (:class:`DigestCache`).
DIGEST_CACHE = f"{CACHE_DIR}/manifest-digests.json"


def _load_digests(config: Config | Mapping[str, Any]) -> tuple[str | None, DigestCache]:
    """The previous snapshot's id and its digest cache, when the last run left one for this repository.

    The cache file: ``{"version": 2, "repository": R, "snapshot": ID, "files": DigestCache.known}``.
    A cache of version 1 (before 2026-11-30: ``[inode, size, mtime_ns, ctime_ns, sha256]`` per
    file) is read too, so the first run after an upgrade reads no message again.
    """
    try:
        data = json.loads(Path(DIGEST_CACHE).read_bytes())
    except (OSError, ValueError):
        return None, DigestCache()
    if not isinstance(data, dict) or data.get("repository") != config["repository"] or not data.get("snapshot"):
        return None, DigestCache()
    files = data.get("files") or {}
    if data.get("version") != 2:
        try:
            files = {directory: {name: " ".join(str(value) for value in row[:5]) for name, row in names.items()}
                     for directory, names in files.items()}  # fmt: skip
        except (AttributeError, TypeError):
            return None, DigestCache()
    return str(data["snapshot"]), DigestCache(files)


def _save_digests(config: Config | Mapping[str, Any], snapshot: str, digests: DigestCache) -> None:
    """Write :attr:`DigestCache.seen` for the next run (:func:`_load_digests`), readable by root only.

    ``json.dumps`` then one write: ``json.dump`` to a stream runs the pure-Python encoder, 3.6x
    slower on the 17 MB of 100,000 messages (bench/backup_local.py).
    """
    Path(CACHE_DIR).mkdir(parents=True, mode=0o700, exist_ok=True)
    temporary = Path(f"{DIGEST_CACHE}.new")
    text = json.dumps({"version": 2, "repository": config["repository"], "snapshot": snapshot, "files": digests.seen},
                      separators=(",", ":"))  # fmt: skip
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, DIGEST_CACHE)


def _restic_backup(config: Config, paths: Sequence[str], totals: Mapping[str, int], parent: str | None) -> tuple[
    int, dict[str, Any], str
]:  # fmt: skip
    """``restic backup`` of ``paths``: (exit status, its JSON summary or {}, its stderr).

    ``parent``: the snapshot whose digests the manifest reused (``--parent``: restic compares with
    exactly that one); None: ``--force``, every file is read (no digests reused either).
    ``--no-scan``: no separate pass that only counts the files for a percentage (the manifest
    knows how many there are).
    """
    argv = [
        "restic", "backup", "--json", "--no-scan", "--host", config["host"], "--tag", TAG,
        "--tag", f"mailboxes={totals['mailboxes']}", "--tag", f"messages={totals['messages']}",
        *(["--parent", parent] if parent else ["--force"]), *paths,
    ]  # fmt: skip
    summary: dict[str, Any] = {}
    last = [0.0]
    with subprocess.Popen(
        argv, env=config.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            _progress(line, last, totals["messages"])
            if '"summary"' in line:
                summary = json.loads(line)
        errors = process.stderr.read()
    return process.returncode, summary, errors


def dump_databases(names: Sequence[str], directory: Path) -> list[Path]:
    """``pg_dump`` of each PostgreSQL database into ``directory/<name>.pgdump``; the files written.

    The webmail's shared database (roles/webmail, several webmail hosts) on the host that runs it.
    Custom format (``pg_restore`` reads it; one consistent snapshot per database, taken while
    Roundcube writes, PostgreSQL docs "SQL Dump"), as the ``postgres`` role over the local socket
    (root is mapped to it by ``pg_ident.conf``). A failed dump raises :class:`BackupError` naming
    the database and pg_dump's last words.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    written = []
    for name in names:
        target = directory / f"{name}.pgdump"
        completed = subprocess.run(
            ["pg_dump", "--username=postgres", "--no-password", "--format=custom", f"--file={target}", name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if completed.returncode != 0:
            raise BackupError(f"pg_dump {name} failed: {completed.stderr.strip()[-200:]}")
        written.append(target)
    return written


def stage_sqlite(databases: Mapping[str, str], directory: Path) -> list[Path]:
    """A consistent copy of each SQLite database into ``directory/<name>.sqlite3``; the files written.

    ``databases``: ``{name: path of the live file}`` (config ``sqlite_databases``: Roundcube's
    database on the single webmail host, the file dbconfig-common created). The copy is SQLite's
    online backup (``sqlite3.Connection.backup``, Python docs; sqlite.org/backup.html): it reads the
    live file under SQLite's own locks while Roundcube goes on writing, so the copy is one
    committed state, never a torn file. The live file is opened read-only. A missing or unreadable
    database raises :class:`BackupError` naming it.
    """
    directory.mkdir(mode=0o700, exist_ok=True)
    written = []
    for name, live in databases.items():
        target = directory / f"{name}.sqlite3"
        if not Path(live).is_file():
            raise BackupError(f"the SQLite database {name} is not at {live}: converge the webmail role first")
        try:
            with contextlib.closing(sqlite3.connect(f"file:{live}?mode=ro", uri=True)) as source, \
                    contextlib.closing(sqlite3.connect(target)) as copy:  # fmt: skip
                source.backup(copy)
        except sqlite3.Error as exc:
            target.unlink(missing_ok=True)
            raise BackupError(f"SQLite backup of {name} ({live}) failed: {exc}") from None
        written.append(target)
    return written


def stage_filter(address: str, staging: Path) -> dict[str, Any] | None:
    """The filter's snapshot in ``staging/filter/valkey.rdb`` and its description for the manifest
    (:func:`govmail.valkey.rdb_digest`), or ``None`` with a warning on stderr (the journal) when
    Valkey at ``address`` gives none or the file does not load: the mail comes first, so a filter
    store that does not answer leaves only its own state out of the archive."""
    try:
        return valkey.rdb_digest(valkey.snapshot(address, staging / valkey.RDB))
    except BackupError as exc:
        _remove_path(staging / Path(valkey.RDB).parent)
        print(f"govmail-backup: warning: the filter's learned state is not in this archive: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        return None


def _phase(name: str, started: float, detail: str = "") -> float:
    now = time.monotonic()
    print(f"govmail-backup: {name} took {now - started:.2f} s{detail}", file=sys.stderr, flush=True)
    return now


def run(config: Config) -> dict[str, Any]:
    """One backup (module docstring): ``{"archive", "time", "mailboxes", "messages", "bytes_added"}``.

    Each phase's duration goes to stderr (``govmail-backup: <phase> took N s``; bench/backup.py reads them).
    """
    staging = Path(config["staging_dir"])
    staging.mkdir(parents=True, mode=0o700, exist_ok=True)
    lock = os.open(staging.parent / f"{staging.name}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time (the timer's and an operator's)
    for leftover in [p for p in staging.iterdir() if p.name != "vmail"]:
        _remove_path(leftover)
    try:
        started = time.monotonic()
        if config["vmail_dir"]:  # a mail store host (a webmail host has none: "")
            print("govmail-backup: staging the mailboxes", file=sys.stderr, flush=True)
            linked = stage_mailboxes(Path(config["vmail_dir"]), staging / "vmail")
            started = _phase("staging", started, f" ({linked} files linked)")
        if config["base_dn"]:  # a directory host
            directory = staging / "directory"
            directory.mkdir(mode=0o700)
            for arguments, name in ((["-b", config["base_dn"]], "data.ldif"), (["-n", "0"], "config.ldif")):
                completed = subprocess.run(
                    ["slapcat", *arguments, "-l", str(directory / name)], capture_output=True, text=True, check=False
                )
                if completed.returncode != 0:
                    raise BackupError(f"slapcat {' '.join(arguments)} failed: {completed.stderr.strip()[-200:]}")
            started = _phase("directory export", started)
        if config.data.get("postgresql_databases"):
            dump_databases(config.data["postgresql_databases"], staging / "database")
            started = _phase("database export", started)
        if config.data.get("sqlite_databases"):
            stage_sqlite(config.data["sqlite_databases"], staging / "database")
            started = _phase("database copy", started)
        filter_state = None
        if config.data.get("valkey"):
            filter_state = stage_filter(config.data["valkey"], staging)
            started = _phase("filter snapshot", started)
        parent, digests = _load_digests(config)
        manifest = build_manifest(staging, host=config["host"], digests=digests, filter_state=filter_state)
        (staging / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
        )
        started = _phase("manifest", started, f" ({digests.reads} messages read, {digests.hits} digests reused)")
        totals = manifest["totals"]
        print(
            f"govmail-backup: {totals['mailboxes']} mailboxes, {totals['messages']} messages; sending to "
            f"{config['repository'].split('@')[-1]}",
            file=sys.stderr,
            flush=True,
        )
        check_reachable(config)
        paths = [str(staging), *(p for p in config["paths"] if Path(p).exists())]
        status, summary, errors = _restic_backup(config, paths, totals, parent)
        if status not in (0, 3):
            created = init(config) == "created"  # a first run: no repository yet
            if parent and (created or "no matching ID" in errors):
                # the previous snapshot is not there (pruned, a new repository): read every message again
                parent, digests = None, DigestCache()
                manifest = build_manifest(staging, host=config["host"], digests=digests, filter_state=filter_state,
                                          created=datetime.fromisoformat(manifest["time"]))  # fmt: skip
                (staging / MANIFEST).write_text(
                    json.dumps(manifest, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
                )
                created = True
            if created:
                status, summary, errors = _restic_backup(config, paths, totals, None)
        # 3: the snapshot was written but some file of ``paths`` could not be read (a log rotated
        # away); the staged mail and directory are ours and complete, so it counts as done.
        if status not in (0, 3) or not summary.get("snapshot_id"):
            detail = (errors.strip().splitlines() or [f"exit {status}"])[-1]
            raise BackupError(f"restic backup to {config['repository'].split('@')[-1]} failed: {detail}")
        _phase("restic backup", started, f" ({summary.get('files_new', 0)} new files, "
               f"{summary.get('files_changed', 0)} changed, {summary.get('data_added', 0)} bytes added)")  # fmt: skip
        if status == 3:
            print(f"govmail-backup: warning: some files were not read: {errors.strip()[-300:]}", file=sys.stderr)
        _save_digests(config, summary["snapshot_id"], digests)
        return {
            "archive": summary["snapshot_id"][:8],
            "time": manifest["time"],
            "mailboxes": totals["mailboxes"],
            "messages": totals["messages"],
            "bytes_added": summary.get("data_added", 0),
        }
    finally:
        # the directory's export and the manifest go (they are in the archive); the mailboxes' links stay
        for leftover in [p for p in staging.iterdir() if p.name != "vmail"]:
            _remove_path(leftover)
        os.close(lock)


def refresh_staging(config_file: str = CONFIG_FILE) -> int:
    """Bring the staging mirror in line with the mail store now (:func:`stage_mailboxes`); files linked.

    For a purge (govmail.purge): the mirror's links keep a removed message's bytes on disk until
    the next backup run would unlink them; this unlinks them at once. Nothing where the host has no
    backup client (no ``config_file``) or no mirror yet.
    """
    if not Path(config_file).is_file():
        return 0
    config = Config.load(config_file)
    staging = Path(config["staging_dir"])
    if not (staging / "vmail").is_dir():
        return 0
    lock = os.open(staging.parent / f"{staging.name}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return stage_mailboxes(Path(config["vmail_dir"]), staging / "vmail")
    finally:
        os.close(lock)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --- restore ---------------------------------------------------------------------------------


#: ``--archive near:<ISO-8601>``: this host's archive made closest to that moment. A whole restore
#: (playbooks/restore.yml) chooses an archive of the directory host; each other client (a webmail
#: host) restores its own archive of the same night, made by its own timer minutes apart.
NEAR = "near:"


def _resolve(config: Config, archive: str) -> str:
    """The full short name of ``archive``: a name or its prefix, ``latest``, or ``near:<ISO-8601>``
    (:data:`NEAR`); :class:`BackupError` naming the latest archives when none matches."""
    archives = list_archives(config)
    if not archives:
        raise BackupError(f"the repository {config['repository'].split('@')[-1]} holds no archive yet")
    if archive == "latest":
        return archives[-1]["archive"]
    if archive.startswith(NEAR):
        try:
            moment = datetime.fromisoformat(archive.removeprefix(NEAR).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        except ValueError:
            raise BackupError(f"--archive {archive}: give near: and a time such as 2026-12-01T01:35:00Z") from None
        return min(
            archives,
            key=lambda a: abs((datetime.fromisoformat(a["time"].replace("Z", "+00:00")) - moment).total_seconds()),
        )["archive"]
    for item in archives:
        if item["archive"] == archive or item["archive"].startswith(archive):
            return item["archive"]
    names = ", ".join(a["archive"] for a in archives[-5:])
    raise BackupError(f"no archive named {archive!r}; `govmail backup list` shows them (latest: {names})")


def fetch(config: Config, archive: str, target: Path, includes: Sequence[str]) -> Path:
    """Extract ``includes`` (paths below the staging area) of ``archive`` into ``target``.

    Returns where the staging area's copy is (``target/<staging_dir>``).
    """
    staging = config["staging_dir"]
    args = ["restore", archive, "--target", str(target)]
    for include in includes:
        args += ["--include", f"{staging}/{include}"]
    restic(config, args)
    return target / staging.lstrip("/")


def _vmail_owner(vmail_dir: Path) -> tuple[int, int]:
    info = vmail_dir.stat()
    return info.st_uid, info.st_gid


def _copy_owned(source: Path, target: Path, owner: tuple[int, int], *, move: bool = False) -> None:
    """Put ``source`` at ``target`` with its bytes, mode and times, owned by ``owner``.

    ``move``: rename instead of copying (``source`` is a throw-away extraction on the same
    filesystem, e.g. a restic restore into a temporary directory beside the mail store; a copy is
    the fallback across filesystems).
    """
    if move:
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copy2(source, target, follow_symlinks=False)
    else:
        shutil.copy2(source, target, follow_symlinks=False)
    os.chown(target, *owner, follow_symlinks=False)


def _ensure_dir(path: Path, owner: tuple[int, int]) -> None:
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chown(directory, *owner)


def restore_mailbox_tree(
    source_home: Path, target_maildir: Path, owner: tuple[int, int], *, into: str = "", move: bool = False
) -> int:
    """Put the messages of an archived mailbox home into a Maildir; returns how many were added.

    Each archived folder goes to the folder of the same name (``into=""``) or below ``into`` (a
    folder path on disk, e.g. ``Restored/2026-11-29``: INBOX becomes ``<into>/INBOX``). A message
    whose Maildir base name is already in the target folder (in ``cur`` or ``new``, whatever its
    flags now) is left alone, so newer mail and changes made since are untouched and restoring the
    same archive twice adds nothing. Files keep their names (flags), bytes and times. Dovecot's
    uidlist and subscriptions come back only where the target has none. ``move``: the messages
    are renamed out of ``source_home`` instead of copied (a temporary extraction on the mail
    store's filesystem: no second write of every byte).
    """
    added = 0
    source_maildir = source_home / "Maildir"
    for current, dirs, _files in os.walk(source_maildir):
        folder = Path(current)
        dirs[:] = [d for d in dirs if d not in MAILDIR_SUBDIRS]
        if not (folder / "cur").is_dir():
            continue
        relative = folder.relative_to(source_maildir)
        if into:
            relative = Path(into) / ("INBOX" if relative == Path(".") else relative)
        destination = target_maildir / relative
        for sub in MAILDIR_SUBDIRS:
            _ensure_dir(destination / sub, owner)
        present = {message_key(p.name)[0] for sub in ("cur", "new") for p in (destination / sub).iterdir()}
        for message in _messages(folder):
            if message_key(message.name)[0] not in present:
                _copy_owned(message, destination / message.parent.name / message.name, owner, move=move)
                added += 1
        for name in ("dovecot-uidlist", "dovecot-keywords", "maildirfolder"):
            if (folder / name).is_file() and not (destination / name).exists() and not into:
                _copy_owned(folder / name, destination / name, owner)
        if into and relative != Path(".") and not (destination / "maildirfolder").exists():
            (destination / "maildirfolder").touch()
            os.chown(destination / "maildirfolder", *owner)
    if not into:
        for name in ("subscriptions",):
            if (source_maildir / name).is_file() and not (target_maildir / name).exists():
                _copy_owned(source_maildir / name, target_maildir / name, owner)
        for extra in ("sieve", ".dovecot.sieve"):
            source, target = source_home / extra, target_maildir.parent / extra
            if (source.exists() or source.is_symlink()) and not (target.exists() or target.is_symlink()):
                if source.is_dir() and not source.is_symlink():
                    shutil.copytree(source, target, symlinks=True)
                    for path in [target, *target.rglob("*")]:
                        os.chown(path, *owner, follow_symlinks=False)
                else:
                    _copy_owned(source, target, owner)
    return added


def dovecot_users(addresses: Sequence[str], vmail_dir: Path) -> set[str]:
    """Those of ``addresses`` that Dovecot's userdb knows (``doveadm user -f home``, one process for all).

    A known user's home is ``<vmail_dir>/<domain>/<local part>`` (the dovecot role's ``mail_home``,
    where the restore puts the files); an unknown one prints nothing on stdout.
    """
    if not addresses:
        return set()
    completed = subprocess.run(["doveadm", "user", "-f", "home", *addresses], capture_output=True, text=True,
                               check=False)  # fmt: skip
    homes = {line.strip().rstrip("/") for line in completed.stdout.splitlines()}
    return {a for a in addresses if str(vmail_dir / a.split("@")[1] / a.split("@")[0]) in homes}


def _doveadm(*args: str) -> None:
    completed = subprocess.run(["doveadm", *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BackupError(f"doveadm {' '.join(args)} failed: {completed.stderr.strip()[-200:]}")


def restore(
    config: Config, archive: str, mailboxes: Sequence[str] | None, *, into_folder: bool = False
) -> dict[str, Any]:
    """Restore mailboxes (``None``: every one of the archive) from ``archive`` (a name or ``latest``).

    Returns ``{"archive": NAME, "mailboxes": [{"address": A, "restored": N, "folder": F|None,
    "user": bool}]}``; ``user`` is false for a Maildir whose mailbox the directory no longer has
    (its files are put back, Dovecot is not asked about it).
    ``into_folder`` puts each mailbox's archived folders under ``Restored/<today>`` (fs layout only).
    """
    name = _resolve(config, archive)
    vmail = Path(config["vmail_dir"])
    if into_folder and config.data.get("mailbox_layout", "fs") != "fs":
        raise BackupError("--into-folder needs govmail_mailbox_layout fs; converge the dovecot role first")
    owner = _vmail_owner(vmail)
    with tempfile.TemporaryDirectory(prefix="govmail-restore-", dir=vmail.parent) as temp:
        includes = [MANIFEST] + [f"vmail/{a.split('@')[1]}/{a.split('@')[0]}" for a in mailboxes or []]
        started = time.monotonic()
        staged = fetch(config, name, Path(temp), includes if mailboxes else [MANIFEST, "vmail"])
        started = _phase("restic restore", started)
        manifest = json.loads((staged / MANIFEST).read_text(encoding="utf-8"))
        wanted = list(mailboxes) if mailboxes else sorted(manifest["mailboxes"])
        unknown = [a for a in wanted if a not in manifest["mailboxes"]]
        if unknown:
            raise BackupError(f"archive {name} holds no mailbox {', '.join(unknown)}")
        folder = f"Restored/{date.today().isoformat()}" if into_folder else ""
        results = []
        for address in wanted:
            local, domain = address.split("@")
            home = vmail / domain / local
            _ensure_dir(home / "Maildir", owner)
            added = restore_mailbox_tree(
                staged / "vmail" / domain / local, home / "Maildir", owner, into=folder, move=True
            )
            results.append({"address": address, "restored": added, "folder": folder or None})
        started = _phase("placing the messages", started)
        known = dovecot_users(wanted, vmail)
        for row in results:  # a Maildir left by a mailbox no longer in the directory: files back, nothing more
            row["user"] = row["address"] in known
        users = [address for address in wanted if address in known]
        if users:  # one doveadm for every mailbox, not one process per mailbox
            listing = Path(temp) / "users"
            listing.write_text("".join(f"{address}\n" for address in users), encoding="utf-8")
            _doveadm("force-resync", "-F", str(listing), "*")
            # the full-text index is not in archives: queued for the indexer, built in the background
            # (a search before it is done indexes what is missing first; Dovecot docs, fts plugin)
            _doveadm("index", "-F", str(listing), "-q", "*")
        _phase("dovecot resync", started)
        for address in users if folder else []:
            _doveadm("mailbox", "subscribe", "-u", address,
                     *(f"{folder}/{archived}" for archived in manifest["mailboxes"][address]["folders"]))  # fmt: skip
    return {"archive": name, "mailboxes": results}


#: Where ``restore --all`` puts an archive's logs: beside the new host's own, never over them.
RESTORED_LOGS_DIR = "/var/log/govmail-restored"


def merge_missing(source: Path, target: Path) -> int:
    """Copy every file of the tree ``source`` that ``target`` lacks, with its mode, times and owner.

    Files already in ``target`` are left as they are (newer data written since the archive wins);
    returns the number of files copied. Directories are created as in ``source``.
    """
    copied = 0
    for path in sorted(source.rglob("*")):
        there = target / path.relative_to(source)
        if path.is_dir() and not path.is_symlink():
            if not there.exists():
                there.mkdir(parents=True)
                shutil.copystat(path, there)
                os.chown(there, path.lstat().st_uid, path.lstat().st_gid)
        elif not there.exists() and not there.is_symlink():
            there.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, there, follow_symlinks=False)
            os.chown(there, path.lstat().st_uid, path.lstat().st_gid, follow_symlinks=False)
            copied += 1
    return copied


def restore_files(config: Config, archive: str) -> dict[str, Any]:
    """Put back what an archive holds besides mail and the directory (``restore --all``).

    ``data_paths`` (the lifecycle's archives of deleted mailboxes, the usage roll-ups of the
    yearly report) go back into place, file by file where the host lacks them
    (:func:`merge_missing`); ``log_paths`` (``/var/log``: O2's evidence) go to
    ``RESTORED_LOGS_DIR/<archive>/<path>`` (``journalctl --directory`` reads a restored journal),
    beside the new host's own logs, once (a second restore of the same archive finds them there).
    ``/etc`` is not restored: the converge renders it and the secrets come from the recovery
    bundle. Returns ``{"data_files": N, "logs": PATH, "logs_changed": bool}``; raises
    :class:`BackupError` when restic cannot read the archive.
    """
    name = _resolve(config, archive)
    data_paths = [str(p) for p in config.data.get("data_paths", [])]
    log_paths = [str(p) for p in config.data.get("log_paths", [])]
    logs = Path(RESTORED_LOGS_DIR) / name
    wanted = data_paths + ([] if logs.exists() else log_paths)
    copied = 0
    if wanted:
        work = Path(config["staging_dir"]).parent
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="govmail-restore-files-", dir=work) as temp:
            args = ["restore", name, "--target", temp]
            for path in wanted:
                args += ["--include", path]
            restic(config, args)
            for path in data_paths:
                if (Path(temp) / path.lstrip("/")).is_dir():
                    copied += merge_missing(Path(temp) / path.lstrip("/"), Path(path))
            if not logs.exists():
                logs.mkdir(parents=True, mode=0o750)
                for path in log_paths:
                    if (Path(temp) / path.lstrip("/")).is_dir():
                        merge_missing(Path(temp) / path.lstrip("/"), logs / path.lstrip("/"))
                return {"data_files": copied, "logs": str(logs), "logs_changed": True}
    return {"data_files": copied, "logs": str(logs), "logs_changed": False}


#: Roundcube's transient tables (sessions and IMAP caches; Roundcube 1.6 SQL/*.initial.sql): its
#: garbage collection (roundcube-gc.timer, every 30 minutes) empties them on its own, so a restore
#: does not count them when it asks whether the database already holds the archived content.
TRANSIENT_TABLES = ("session", "cache", "cache_shared", "cache_index", "cache_thread", "cache_messages")


def _sqlite_dump(path: Path | str) -> str:
    """The SQL text of a SQLite database (``Connection.iterdump``) without the transient tables' rows."""
    transient = tuple(f'INSERT INTO "{table}" ' for table in TRANSIENT_TABLES)
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return "\n".join(line for line in connection.iterdump() if not line.startswith(transient))


def restore_sqlite(archived: Path, live: Path) -> bool:
    """Put the archived SQLite database ``archived`` into the live file ``live``; whether it changed.

    The copy goes *into* the existing file with SQLite's online backup (the archived database
    replaces every page of the live one under SQLite's locks), so the live file keeps the owner
    and mode dbconfig-common gave it (www-data, 0660) and a running Roundcube sees either the old
    or the restored database, never a mix. When both already hold the same SQL (``iterdump``),
    nothing is written (the transient tables aside, :data:`TRANSIENT_TABLES`): restoring the
    same archive twice changes nothing. Raises
    :class:`BackupError` when ``live`` is missing (the webmail role was not converged) or SQLite fails.
    """
    if not live.is_file():
        raise BackupError(f"the SQLite database {live} is missing: converge the webmail role before the restore")
    try:
        if _sqlite_dump(archived) == _sqlite_dump(live):
            return False
        with contextlib.closing(sqlite3.connect(f"file:{archived}?mode=ro", uri=True)) as source, \
                contextlib.closing(sqlite3.connect(live)) as target:  # fmt: skip
            source.backup(target)
    except sqlite3.Error as exc:
        raise BackupError(f"restoring the SQLite database {live} failed: {exc}") from None
    return True


def _plain_sql(text: str) -> str:
    """A plain dump's SQL that describes content: without the transient tables' rows (``COPY``
    blocks) and the random ``\\restrict`` key pg_dump 17.6+ writes into every plain dump (CVE-2025-8714)."""
    transient = tuple(f"COPY public.{name} " for table in TRANSIENT_TABLES for name in (table, f'"{table}"'))
    kept, skipping = [], False
    for line in text.splitlines():
        if skipping:
            skipping = line != "\\."
        elif line.startswith(transient):
            skipping = True
        elif not line.startswith(("\\restrict", "\\unrestrict")):
            kept.append(line)
    return "\n".join(kept)


def restore_postgresql(dump: Path, name: str) -> bool:
    """``pg_restore --clean --if-exists`` of the custom-format ``dump`` into database ``name``; whether it changed.

    As the ``postgres`` role over the local socket (root maps to it, roles/webmail pg_ident.conf),
    in one transaction (a failed restore leaves the database as it was). The database and its
    owner exist already (the webmail role created them); the dump's objects are dropped and
    recreated with their owner and rows. When ``pg_dump`` of the live database already gives the
    same SQL as the dump (``pg_restore --file=-``; :data:`TRANSIENT_TABLES` aside), nothing is
    done: restoring the same archive twice changes nothing. Raises :class:`BackupError` with pg_restore's last words.
    """
    wanted = subprocess.run(["pg_restore", "--file=-", str(dump)], capture_output=True, text=True, check=False)
    current = subprocess.run(["pg_dump", "--username=postgres", "--no-password", "--format=plain", name],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if wanted.returncode == 0 and current.returncode == 0 and _plain_sql(wanted.stdout) == _plain_sql(current.stdout):
        return False
    completed = subprocess.run(
        ["pg_restore", "--username=postgres", "--no-password", "--clean", "--if-exists", "--single-transaction",
         f"--dbname={name}", str(dump)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise BackupError(f"pg_restore into {name} failed: {completed.stderr.strip()[-200:]}")
    return True


def restore_databases(config: Config, archive: str) -> dict[str, Any]:
    """Put this host's webmail databases back from ``archive`` (``restore --all`` and ``--databases``).

    The databases are those this host's configuration names (``sqlite_databases``,
    ``postgresql_databases``: the host that ran them when the archive was made runs them now).
    Returns ``{"archive": NAME, "databases": [{"name": N, "type": "sqlite3"|"pgsql",
    "archived": bool, "changed": bool}]}``; ``archived`` is false for an archive made before
    the database was backed up (nothing is touched then). Raises :class:`BackupError`.
    """
    name = _resolve(config, archive)
    sqlite = dict(config.data.get("sqlite_databases") or {})
    postgresql = list(config.data.get("postgresql_databases") or [])
    results: list[dict[str, Any]] = []
    if not sqlite and not postgresql:
        return {"archive": name, "databases": results}
    work = Path(config["staging_dir"]).parent
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="govmail-restore-db-", dir=work) as temp:
        staged = fetch(config, name, Path(temp), ["database"]) / "database"
        for database, live in sqlite.items():
            archived = staged / f"{database}.sqlite3"
            changed = archived.is_file() and restore_sqlite(archived, Path(live))
            results.append({"name": database, "type": "sqlite3", "archived": archived.is_file(), "changed": changed})
        for database in postgresql:
            archived = staged / f"{database}.pgdump"
            changed = archived.is_file() and restore_postgresql(archived, database)
            results.append({"name": database, "type": "pgsql", "archived": archived.is_file(), "changed": changed})
    return {"archive": name, "databases": results}


def restore_filter(config: Config, archive: str) -> dict[str, Any]:
    """Put the content filter's learned state back from ``archive`` (``restore --all`` and ``--filter``).

    On a host whose configuration names the filter's Valkey (``valkey``) and whose archive holds
    its snapshot: :func:`govmail.valkey.restore`. Returns ``{"archive": NAME, "archived": bool,
    "keys": N, "changed": bool}``; ``archived`` is false on a host without Valkey or for an archive
    made before the filter was backed up (nothing is touched then). Raises :class:`BackupError`.
    """
    name = _resolve(config, archive)
    address = config.data.get("valkey") or ""
    manifest = json.loads(dump(config, name, MANIFEST)) if address else {}
    expected = manifest.get("filter")
    if not expected:
        return {"archive": name, "archived": False, "keys": 0, "changed": False}
    work = Path(config["staging_dir"]).parent
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="govmail-restore-filter-", dir=work) as temp:
        rdb = Path(temp) / "valkey.rdb"
        rdb.write_bytes(dump(config, name, valkey.RDB))
        if hashlib.sha256(rdb.read_bytes()).hexdigest() != expected["sha256"]:
            raise BackupError(f"archive {name}: the filter's snapshot differs from its manifest (sha256)")
        changed = valkey.restore(address, rdb, expected)
    return {"archive": name, "archived": True, "keys": expected["keys"], "changed": changed}


def _database_directory(config_ldif: str, base_dn: str) -> str:
    """``olcDbDirectory`` of the database whose ``olcSuffix`` is ``base_dn``, from a cn=config export."""
    for entry in ldif_entries(config_ldif):
        lines = entry.replace("\n ", "").split("\n")
        suffixes = [line.split(":", 1)[1].strip() for line in lines if line.startswith("olcSuffix:")]
        directories = [line.split(":", 1)[1].strip() for line in lines if line.startswith("olcDbDirectory:")]
        if directories and any(s.lower() == base_dn.lower() for s in suffixes):
            return directories[0]
    raise BackupError(f"the archive's cn=config has no database for {base_dn}")


def _systemctl(action: str, unit: str) -> None:
    completed = subprocess.run(["systemctl", action, unit], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BackupError(f"systemctl {action} {unit} failed: {completed.stderr.strip()[-200:]}")


def restore_directory(config: Config, archive: str) -> dict[str, Any]:
    """Put the directory's data back as archived (``slapadd`` of ``directory/data.ldif``).

    Returns ``{"archive": NAME, "directory": {"entries": N, "changed": bool}}``. When a fresh
    ``slapcat`` already has the manifest's digest nothing is touched (restoring twice changes
    nothing); otherwise slapd is stopped, the database's files are moved aside to
    ``<db dir>.before-restore-<time>`` (kept for the operator), the archive's entries are loaded
    with their operational attributes (passwords, ppolicy state, CSNs) and slapd is started again.
    """
    name = _resolve(config, archive)
    with tempfile.TemporaryDirectory(prefix="govmail-restore-") as temp:
        staged = fetch(config, name, Path(temp), [MANIFEST, "directory"])
        manifest = json.loads((staged / MANIFEST).read_text(encoding="utf-8"))
        wanted = manifest.get("directory")
        if not wanted:
            raise BackupError(f"archive {name} holds no directory export")
        current = Path(temp) / "current.ldif"
        base = config["base_dn"]
        subprocess.run(["slapcat", "-b", base, "-l", str(current)], capture_output=True, check=False)
        if current.is_file() and directory_manifest(current) == wanted:
            return {"archive": name, "directory": {"entries": wanted["entries"], "changed": False}}
        database = Path(_database_directory((staged / "directory/config.ldif").read_text(encoding="utf-8"), base))
        owner = database.stat()
        aside = database.with_name(f"{database.name}.before-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        _systemctl("stop", "slapd")
        try:
            aside.mkdir(mode=0o700)
            for path in database.iterdir():
                if path.name.endswith(".mdb"):
                    shutil.move(str(path), aside / path.name)
            loaded = subprocess.run(
                ["slapadd", "-q", "-b", base, "-l", str(staged / "directory/data.ldif")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if loaded.returncode != 0:
                for path in aside.iterdir():
                    shutil.move(str(path), database / path.name)
                raise BackupError(
                    f"slapadd of archive {name} failed (database put back): {loaded.stderr.strip()[-200:]}"
                )
            for path in database.iterdir():
                os.chown(path, owner.st_uid, owner.st_gid)
        finally:
            _systemctl("start", "slapd")
    return {"archive": name, "directory": {"entries": wanted["entries"], "changed": True}}


# --- verification (the drill's proof) ---------------------------------------------------------


def compare_mailbox(address: str, expected: Mapping[str, Any], actual: Mapping[str, Any] | None) -> list[str]:
    """What differs between a mailbox's manifest and a copy of it, one line per finding.

    ``expected``/``actual`` have :func:`mailbox_manifest`'s shape (``actual`` None: no Maildir).
    Lines name the mailbox, the folder and the message's Maildir base name, e.g. ``"alice@d: folder
    'INBOX': message 1.M2.h,S=9 altered (sha256 ab12... in the archive's manifest, cd34... here)"``;
    flags are not compared (a user may have read the mail since). Empty list: identical.
    """
    if actual is None:
        return [f"{address}: mailbox missing ({expected['messages']} messages in the manifest)"]
    found = []
    for folder, want in expected["folders"].items():
        have = actual["folders"].get(folder)
        if have is None:
            found.append(f"{address}: folder {folder!r} missing ({want['messages']} messages in the manifest)")
            continue
        for base, item in want["files"].items():
            other = have["files"].get(base)
            if other is None:
                found.append(f"{address}: folder {folder!r}: message {base} missing")
            elif other["sha256"] != item["sha256"]:
                found.append(
                    f"{address}: folder {folder!r}: message {base} altered (sha256 {item['sha256'][:12]}... in the "
                    f"manifest, {other['sha256'][:12]}... here)"
                )
        for base in sorted(set(have["files"]) - set(want["files"])):
            found.append(f"{address}: folder {folder!r}: message {base} not in the manifest")
    for folder in sorted(set(actual["folders"]) - set(expected["folders"])):
        if actual["folders"][folder]["messages"]:
            found.append(f"{address}: folder {folder!r} not in the manifest")
    return found


def compare(
    manifest: Mapping[str, Any],
    mailboxes: Mapping[str, Any],
    directory: Mapping[str, Any] | None,
    filter_state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare a manifest with what a tree or a host holds now.

    ``mailboxes``: ``{ADDRESS: mailbox_manifest or None}``; ``directory``: ``directory_manifest``
    of a fresh export (or None); ``filter_state``: what the filter's snapshot or live Valkey holds
    (``{"keys", "digest"}`` live, ``{"sha256"}`` of the archived file; None: nothing found),
    compared only when the manifest has a ``filter``. Returns ``{"mailboxes": [{"address",
    "messages", "ok"}], "directory": {"entries", "ok"}, "filter": {"keys", "ok"} | None,
    "mismatches": [str, ...]}`` (the drill's JSON contract, issue 11).
    """
    mismatches: list[str] = []
    rows = []
    for address, expected in sorted(manifest["mailboxes"].items()):
        found = compare_mailbox(address, expected, mailboxes.get(address))
        mismatches += found
        rows.append({"address": address, "messages": expected["messages"], "ok": not found})
    wanted = manifest.get("directory") or {"entries": 0, "digest": ""}
    directory_ok = directory is not None and directory["digest"] == wanted["digest"]
    if not directory_ok:
        have = f"{directory['entries']} entries, digest {directory['digest'][:12]}..." if directory else "no export"
        mismatches.append(
            f"directory: {have} here, the manifest says {wanted['entries']} entries, digest {wanted['digest'][:12]}..."
        )
    directory_row = {"entries": wanted["entries"], "ok": directory_ok}
    filter_row = None
    if manifest.get("filter"):
        wanted_filter = manifest["filter"]
        key = "sha256" if filter_state and "sha256" in filter_state else "digest"
        filter_ok = filter_state is not None and filter_state.get(key) == wanted_filter[key]
        if not filter_ok:
            have = (f"{filter_state.get('keys', '?')} keys, {key} {str(filter_state.get(key))[:12]}..."
                    if filter_state else "nothing")  # fmt: skip
            mismatches.append(
                f"filter (Valkey): {have} here, the manifest says {wanted_filter['keys']} keys, "
                f"{key} {wanted_filter[key][:12]}..."
            )
        filter_row = {"keys": wanted_filter["keys"], "ok": filter_ok}
    return {"mailboxes": rows, "directory": directory_row, "filter": filter_row, "mismatches": mismatches}


def tar_mailboxes(stream: IO[bytes]) -> dict[str, dict[str, Any]]:
    """The mailboxes of a tar stream of a ``vmail`` tree, as :func:`mailbox_manifest` gives them.

    ``stream``: a tar read front to back (``restic dump ARCHIVE <staging>/vmail``), whatever the
    prefix before ``<domain>/<local part>/Maildir/``. Each message is hashed as it streams past:
    nothing is written to disk, so a check of a large archive needs no room on the host (Debian
    13's ``/tmp`` is a tmpfs). A folder is a directory holding ``cur`` (as :func:`_folders`),
    INBOX the ``Maildir`` itself; a hard link counts with its target's bytes. Returns
    ``{ADDRESS: {"messages", "digest", "folders"}}``; raises :class:`BackupError` on a stream
    that is not a tar.
    """
    homes: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    linked: dict[str, str] = {}

    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                parts = [part for part in member.name.split("/") if part not in ("", ".")]
                index = parts.index("Maildir") if "Maildir" in parts else -1
                if index < 2:
                    continue
                address, inside = f"{parts[index - 1]}@{parts[index - 2]}", parts[index + 1 :]
                folders = homes.setdefault(address, {})
                if member.isdir() and inside and inside[-1] == "cur":
                    folders.setdefault("/".join(inside[:-1]), {})
                    continue
                if len(inside) < 2 or inside[-2] not in ("cur", "new") or not (member.isfile() or member.islnk()):
                    continue
                if member.islnk():
                    digest = linked.get(member.linkname.strip("/"), "")
                else:
                    digest_of = hashlib.sha256()
                    reader = archive.extractfile(member)
                    while reader is not None and (chunk := reader.read(1 << 16)):
                        digest_of.update(chunk)
                    digest = digest_of.hexdigest()
                    linked[member.name.strip("/")] = digest
                base, flags = message_key(inside[-1])
                folders.setdefault("/".join(inside[:-2]), {})[base] = {"sha256": digest, "flags": flags}
    except tarfile.TarError as exc:
        raise BackupError(f"the archive's mail is not a readable tar stream: {exc}") from None
    mailboxes = {}
    for address, folders in homes.items():
        named = {}
        every: list[str] = []
        for relative, files in sorted(folders.items()):
            name = "INBOX" if not relative else "/".join(decode_mutf7(part) for part in relative.split("/"))
            sums = [item["sha256"] for item in files.values()]
            every += sums
            named[name] = {"messages": len(files), "digest": _digest(sums), "files": dict(sorted(files.items()))}
        mailboxes[address] = {"messages": len(every), "digest": _digest(every), "folders": named}
    return mailboxes


def dump(config: Config, archive: str, path: str) -> bytes:
    """The bytes of ``path`` (below the staging area) in ``archive`` (``restic dump``); raises :class:`BackupError`."""
    try:
        completed = subprocess.run(
            ["restic", "dump", archive, f"{config['staging_dir']}/{path}"],
            env=config.environment(), capture_output=True, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise BackupError(f"cannot run restic: {exc.strerror}; is the package installed?") from None
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip().splitlines() or [f"exit {completed.returncode}"]
        raise BackupError(f"restic dump {archive} {path} failed: {detail[-1]}")
    return completed.stdout


def archived_mailboxes(config: Config, archive: str) -> dict[str, dict[str, Any]]:
    """:func:`tar_mailboxes` of the archive's ``vmail`` tree, streamed from ``restic dump`` (a tar)."""
    try:
        process = subprocess.Popen(
            ["restic", "dump", "--archive", "tar", archive, f"{config['staging_dir']}/vmail"],
            env=config.environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
    except OSError as exc:
        raise BackupError(f"cannot run restic: {exc.strerror}; is the package installed?") from None
    with process:
        assert process.stdout is not None and process.stderr is not None
        try:
            mailboxes = tar_mailboxes(process.stdout)
        finally:
            process.stdout.read()  # let restic finish writing whatever the tar reader left
            error = process.stderr.read().decode(errors="replace")
    if process.returncode != 0:
        detail = error.strip().splitlines() or [f"exit {process.returncode}"]
        raise BackupError(f"restic dump {archive} vmail failed: {detail[-1]}")
    return mailboxes


def verify(config: Config, archive: str, *, live: bool = False) -> dict[str, Any]:
    """Prove an archive: its manifest against the archived files, or (``live``) against this host.

    Without ``live`` the archive's mail is streamed out of the repository (``restic dump``, a
    tar: :func:`archived_mailboxes`) and its directory export read, and both are compared with
    its manifest: an archived message altered or lost is named. Nothing is extracted to disk, so
    it runs on a live host of any size (the drill's ``check`` phase runs it on the site's
    directory host). With ``live`` the host's mail store and a fresh ``slapcat`` are compared
    (after a restore: nothing lost). The filter's snapshot, when the manifest has one: its file's
    SHA-256 in the archive, or (``live``) the content digest of the host's Valkey (config
    ``valkey``). Returns :func:`compare`'s dict plus ``"archive"`` and ``"time"`` (the
    archive's). Raises :class:`BackupError` (repository, restic).
    """
    name = _resolve(config, archive)
    manifest = json.loads(dump(config, name, MANIFEST))
    with tempfile.TemporaryDirectory(prefix="govmail-verify-") as temp:
        ldif = Path(temp) / "data.ldif"
        if live:
            root = Path(config["vmail_dir"])
            subprocess.run(["slapcat", "-b", config["base_dn"], "-l", str(ldif)], capture_output=True, check=False)
            mailboxes = {}
            for address in manifest["mailboxes"]:
                local, domain = address.split("@")
                home = root / domain / local
                mailboxes[address] = mailbox_manifest(home) if (home / "Maildir").is_dir() else None
        else:
            archived = archived_mailboxes(config, name)
            mailboxes = {address: archived.get(address) for address in manifest["mailboxes"]}
            with contextlib.suppress(BackupError):
                ldif.write_bytes(dump(config, name, "directory/data.ldif"))
        directory = directory_manifest(ldif) if ldif.is_file() else None
    filter_state = None
    if manifest.get("filter") and live and config.data.get("valkey"):
        with contextlib.suppress(BackupError), valkey.Valkey(config.data["valkey"]) as client:
            filter_state = valkey.content_digest(client)
    elif manifest.get("filter") and not live:
        with contextlib.suppress(BackupError):
            filter_state = {"sha256": hashlib.sha256(dump(config, name, valkey.RDB)).hexdigest()}
    return {"archive": name, "time": manifest["time"], **compare(manifest, mailboxes, directory, filter_state)}


# --- failure report --------------------------------------------------------------------------


SENDMAIL = "/usr/sbin/sendmail"


def _send_over_smtp(relay: str, message: EmailMessage, ca_certificate: str) -> None:
    """Hand ``message`` to the MX at ``relay`` (``host:port``, port 25) over STARTTLS verified
    against the internal CA, with the null reverse-path (RFC 5321 §4.5.5: a notice that must not
    cause one back; port 25 accepts it where it refuses unauthenticated senders of the province's
    domain). For a client without Postfix (a webmail host). Raises :class:`BackupError`."""
    host, _, port = relay.rpartition(":")
    context = ssl.create_default_context(cafile=ca_certificate)
    try:
        with smtplib.SMTP(host, int(port), local_hostname=socket.getfqdn(), timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.send_message(message, from_addr="<>", to_addrs=[str(message["To"])])
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        raise BackupError(f"the MX {relay} did not take the failure mail: {exc}") from None


def notify_failure(config: Config) -> str:
    """Mail the operators the end of the failed run's journal; returns the recipient.

    Through the host's Postfix (``/usr/sbin/sendmail``) where it has one, else to the MX named by
    ``relay`` in the configuration (:func:`_send_over_smtp`). Raises :class:`BackupError`."""
    journal = subprocess.run(
        ["journalctl", "--unit", "govmail-backup.service", "--lines", "30", "--no-pager", "--output", "short-iso"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    message = EmailMessage()
    message["From"] = f"govmail-backup@{config.data.get('domain', config['host'])}"
    message["To"] = config["operators"]
    message["Subject"] = f"[govmail] backup of {config['host']} FAILED"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=config.data.get("domain"))
    message.set_content(f"The backup of {config['host']} to {config['repository'].split('@')[-1]} failed.\n\n{journal}")
    if not Path(SENDMAIL).exists() and config.data.get("relay"):
        _send_over_smtp(config.data["relay"], message, config["ca_certificate"])
        return config["operators"]
    completed = subprocess.run(
        [SENDMAIL, "-i", "-f", message["From"], config["operators"]],
        input=message.as_bytes(), capture_output=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise BackupError(
            f"sendmail to {config['operators']} failed: {completed.stderr.decode(errors='replace')[-200:]}"
        )
    return config["operators"]


# --- command line ----------------------------------------------------------------------------


def _print(value: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(value, ensure_ascii=False, indent=2))
    elif isinstance(value, list):
        for item in value:
            print(f"{item['archive']}  {item['time']}  {item['mailboxes']} mailboxes  {item['messages']} messages")
    else:
        print(json.dumps(value, ensure_ascii=False))


def restore_all(config: Config, archive: str) -> dict[str, Any]:
    """Everything this host's archive holds back in place (``restore --all``; playbooks/restore.yml).

    The directory (:func:`restore_directory`) on a directory host (``base_dn`` set), every
    mailbox (:func:`restore`) on a mail store host (``vmail_dir`` set), then on every client the
    files (:func:`restore_files`), the webmail databases this host runs
    (:func:`restore_databases`) and the filter's state (:func:`restore_filter`). Returns
    ``{"archive": NAME, "mailboxes": [...], "directory": {"entries": N, "changed": bool} | None,
    "files": {...}, "databases": [...], "filter": {"archived", "keys", "changed"}}``; ``mailboxes``
    is ``[]`` and ``directory`` ``None`` on a host that holds neither (a webmail host). Raises
    :class:`BackupError`.
    """
    name = _resolve(config, archive)
    directory = restore_directory(config, name)["directory"] if config["base_dn"] else None
    mail = restore(config, name, None) if config["vmail_dir"] else {"archive": name, "mailboxes": []}
    files = restore_files(config, name)
    databases = restore_databases(config, name)["databases"]
    filter_state = restore_filter(config, name)
    filter_state.pop("archive")
    return {**mail, "directory": directory, "files": files, "databases": databases, "filter": filter_state}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="govmail-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG_FILE, help=f"configuration file (default {CONFIG_FILE})")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("run", "list"):
        commands.add_parser(command).add_argument("--json", action="store_true")
    commands.add_parser("init", help="create the repository unless it exists")
    commands.add_parser("notify-failure", help="mail the operators that the last run failed")
    restore_parser = commands.add_parser("restore", help="restore mailboxes from an archive")
    restore_parser.add_argument(
        "--archive",
        default="latest",
        help="NAME (or its prefix), latest, or near:ISO-8601 (the archive closest to that time)",
    )
    target = restore_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--all", action="store_true")
    target.add_argument("--mailbox", action="append")
    target.add_argument("--directory", action="store_true")
    target.add_argument("--databases", action="store_true", help="the webmail's database(s) alone")
    target.add_argument("--filter", action="store_true", help="the content filter's learned state alone")
    restore_parser.add_argument("--into-folder", action="store_true")
    restore_parser.add_argument("--json", action="store_true")
    verify_parser = commands.add_parser("verify", help="compare an archive's manifest with its files or this host")
    verify_parser.add_argument("--archive", default="latest")
    verify_parser.add_argument("--live", action="store_true", help="compare with this host's mail and directory")
    verify_parser.add_argument("--json", action="store_true")
    raw = commands.add_parser("restic", help="run restic with this host's credentials (append-only)")
    raw.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        config = Config.load(args.config)
        if args.command == "run":
            _print(run(config), args.json)
        elif args.command == "list":
            _print(list_archives(config), args.json)
        elif args.command == "init":
            print(init(config))
        elif args.command == "notify-failure":
            print(f"told {notify_failure(config)}")
        elif args.command == "restore" and args.directory:
            _print(restore_directory(config, args.archive), True)
        elif args.command == "restore" and args.databases:
            _print(restore_databases(config, args.archive), True)
        elif args.command == "restore" and args.filter:
            _print(restore_filter(config, args.archive), True)
        elif args.command == "restore" and args.all:
            _print(restore_all(config, args.archive), True)
        elif args.command == "restore":
            _print(
                restore(config, args.archive, None if args.all else args.mailbox, into_folder=args.into_folder), True
            )
        elif args.command == "verify":
            report = verify(config, args.archive, live=args.live)
            _print(report, True)
            for line in report["mismatches"][:10]:
                print(f"govmail-backup: mismatch: {line}", file=sys.stderr)
            return 1 if report["mismatches"] else 0
        elif args.command == "restic":
            completed = subprocess.run(["restic", *args.args], env=config.environment(), check=False)
            return completed.returncode
    except BackupError as exc:
        print(f"govmail-backup: {exc}", file=sys.stderr)
        return 1
    return 0

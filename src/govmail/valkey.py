"""The content filter's learned state in Valkey: archived, proved and put back (issue 11, O1, C3).

Rspamd keeps what it has learned (the Bayes classifier's tokens and its learn counts, trained by
the users' "junk / not junk" moves, roles/dovecot IMAPSieve) in Debian's ``valkey-server`` on the
mx host (the shared fact ``govmail_filter_valkey``, roles/filter). This module runs on that host,
inside ``govmail-backup`` (:mod:`govmail.backup`):

- :func:`snapshot` takes one consistent RDB file from the running server (``valkey-cli --rdb``:
  the server forks and streams a point-in-time dump, as it does for a replica; Valkey docs,
  "valkey-cli", remote backups of RDB files); the archive holds it as ``filter/valkey.rdb``.
- :func:`rdb_digest` describes that file's content for the manifest: a throwaway
  ``valkey-server`` on a private Unix socket loads it, and :func:`content_digest` reads it back.
- :func:`restore` puts an archived RDB in place of the live data (stop, replace the dump file,
  start) unless the live content already has the archived digest, then checks the digest.

What the digest covers: the Bayes classifier's keys (:data:`LEARNED`) without an expiry, each with
its type and its whole value, canonical (a hash's or a set's members sorted): what users taught
the filter, which changes only when they teach it. The snapshot holds every other key too, but
Rspamd rewrites those with every message it scans (its scan history ``rs_history*``, the neural
module's ``rn*`` sets, the rate limits' ``RL*`` and the replies' ``rr*`` caches, measured on the
lab), so a digest over them would differ from any snapshot a minute later.

Speaks RESP2 to the server with the standard library only (valkey.io/topics/protocol), as the
rest of ``govmail-backup`` does. Errors are :class:`~govmail.errors.BackupError`, one line.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import BackupError

#: Debian's unit of the server (package valkey-server).
UNIT = "valkey-server"
#: The archive's file, below the staging area.
RDB = "filter/valkey.rdb"
#: Keys read per SCAN step and per pipelined batch.
BATCH = 1000
#: The Bayes classifier's keys (glob patterns): Rspamd's Redis statistics backend keeps the token
#: counts in ``RS_<token>`` hashes and the learn counts in the hash ``RS`` (``learns_spam``,
#: ``learns_ham``), the users per class in ``BAYES_SPAM_keys``/``BAYES_HAM_keys`` and the
#: Message-IDs already learned in ``learned_ids`` (Debian's statistic.conf: classes BAYES_SPAM and
#: BAYES_HAM; names as found in the lab's Valkey after users moved mail into Junk and out of it).
LEARNED = (b"RS", b"RS_*", b"BAYES_*_keys", b"learned_ids")


class ValkeyError(BackupError):
    """An error reply or a broken connection; the message is one line naming the server."""


class Valkey:
    """One RESP2 connection to a Valkey (or Redis) server.

    ``address``: ``"host:port"`` (TCP) or the path of a Unix socket. ``timeout`` in seconds for
    connecting and for each reply. Raises :class:`ValkeyError` when the server cannot be reached.
    """

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.address = address
        try:
            if address.startswith("/"):
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._socket.settimeout(timeout)
                self._socket.connect(address)
            else:
                host, port = address.rsplit(":", 1)
                self._socket = socket.create_connection((host, int(port)), timeout=timeout)
        except (OSError, ValueError) as exc:
            raise ValkeyError(f"Valkey at {address} does not answer: {exc}") from None
        self._reader = self._socket.makefile("rb")

    def __enter__(self) -> Valkey:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._reader.close()
        self._socket.close()

    def pipeline(self, commands: Sequence[Sequence[str | bytes]]) -> list[Any]:
        """Send ``commands`` at once and return their replies in order (bytes, int, list, None).

        An error reply raises :class:`ValkeyError` after every reply was read.
        """
        payload = bytearray()
        for command in commands:
            payload += b"*%d\r\n" % len(command)
            for argument in command:
                data = argument.encode() if isinstance(argument, str) else argument
                payload += b"$%d\r\n%s\r\n" % (len(data), data)
        try:
            self._socket.sendall(payload)
            replies = [self._reply() for _ in commands]
        except OSError as exc:
            raise ValkeyError(f"Valkey at {self.address}: {exc}") from None
        for reply in replies:
            if isinstance(reply, ValkeyError):
                raise reply
        return replies

    def __call__(self, *command: str | bytes) -> Any:
        """One command's reply."""
        return self.pipeline([command])[0]

    def _line(self) -> bytes:
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ValkeyError(f"Valkey at {self.address} closed the connection")
        return line[:-2]

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return ValkeyError(f"Valkey at {self.address}: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._reader.read(size + 2)
            return data[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ValkeyError(f"Valkey at {self.address} answered something not RESP2: {line[:40]!r}")


def _persistent_keys(client: Valkey) -> Iterator[list[tuple[bytes, bytes]]]:
    """Batches of ``(key, type)`` of the :data:`LEARNED` keys without an expiry, from a full SCAN."""
    cursor = b"0"
    while True:
        cursor, keys = client("SCAN", cursor, "COUNT", str(BATCH))
        keys = [key for key in keys if any(fnmatch.fnmatchcase(key.decode("latin-1"), p.decode()) for p in LEARNED)]
        if keys:
            replies = client.pipeline([command for key in keys for command in (("PTTL", key), ("TYPE", key))])
            yield [(key, replies[2 * i + 1]) for i, key in enumerate(keys) if replies[2 * i] == -1]
        if cursor == b"0":
            return


_READ = {
    b"string": lambda key: ("GET", key),
    b"hash": lambda key: ("HGETALL", key),
    b"set": lambda key: ("SMEMBERS", key),
    b"zset": lambda key: ("ZRANGE", key, "0", "-1", "WITHSCORES"),
    b"list": lambda key: ("LRANGE", key, "0", "-1"),
}


def _canonical(kind: bytes, value: Any) -> list[bytes]:
    if kind in (b"hash", b"zset"):
        return [b"%s=%s" % (value[i], value[i + 1]) for i in sorted(range(0, len(value), 2), key=value.__getitem__)]
    if kind == b"set":
        return sorted(value)
    if kind == b"list":
        return list(value)
    return [value or b""]


def _field(data: bytes) -> bytes:
    return b"%d:%s" % (len(data), data)


def content_digest(client: Valkey) -> dict[str, Any]:
    """``{"keys": N, "digest": SHA256 hex}`` of the :data:`LEARNED` keys without an expiry of ``client``'s database 0.

    Each key gives the SHA-256 of its name, type and canonical value (:func:`_canonical`); the
    digest is the SHA-256 of those sorted. A type this module does not read (a stream) counts with
    its name and type only. Raises :class:`ValkeyError`.
    """
    sums = []
    for batch in _persistent_keys(client):
        readable = [(key, kind) for key, kind in batch if kind in _READ]
        values = client.pipeline([_READ[kind](key) for key, kind in readable]) if readable else []
        read = {key: value for (key, _), value in zip(readable, values, strict=True)}
        for key, kind in batch:
            parts = [_field(key), _field(kind), *(_field(item) for item in _canonical(kind, read.get(key)))]
            sums.append(hashlib.sha256(b"".join(parts)).hexdigest())
    return {"keys": len(sums), "digest": hashlib.sha256("\n".join(sorted(sums)).encode()).hexdigest()}


def _wait(address: str, seconds: float) -> Valkey:
    """A connection once the server answers and has loaded its data (``INFO persistence``: ``loading:0``)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            client = Valkey(address, timeout=10)
            try:
                if b"loading:0" in client("INFO", "persistence"):
                    return client
            except ValkeyError:
                client.close()
                raise
            client.close()
            if time.monotonic() > deadline:
                raise ValkeyError(f"Valkey at {address} is still loading its data after {seconds:.0f} s")
            time.sleep(0.2)
        except ValkeyError as exc:
            if time.monotonic() > deadline:
                raise ValkeyError(f"{exc} after {seconds:.0f} s") from None
            time.sleep(0.2)


def snapshot(address: str, target: Path) -> Path:
    """Write a point-in-time RDB of the server at ``address`` (``host:port``) to ``target``.

    ``valkey-cli --rdb``; raises :class:`BackupError` with its last words when it fails (server
    down, replication refused).
    """
    host, port = address.rsplit(":", 1)
    target.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        completed = subprocess.run(
            ["valkey-cli", "-h", host, "-p", port, "--rdb", str(target)], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise BackupError(f"cannot run valkey-cli: {exc.strerror}; is valkey-tools installed?") from None
    if completed.returncode != 0 or not target.is_file():
        words = (completed.stderr.strip() or completed.stdout.strip() or f"exit {completed.returncode}").splitlines()
        raise BackupError(f"the filter's Valkey at {address} gave no snapshot: {words[-1]}")
    return target


def rdb_digest(rdb: Path, *, seconds: float = 300) -> dict[str, Any]:
    """:func:`content_digest` of an RDB file, plus ``"sha256"`` of the file's bytes.

    A throwaway ``valkey-server`` (no TCP port, a Unix socket in a private temporary directory,
    nothing saved) loads a copy and is shut down afterwards. ``seconds``: how long loading may
    take. Raises :class:`BackupError` when the file does not load.
    """
    file_sha256 = hashlib.sha256()
    with rdb.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            file_sha256.update(block)
    with tempfile.TemporaryDirectory(prefix="govmail-valkey-") as temp:
        shutil.copyfile(rdb, Path(temp) / "dump.rdb")
        sock = f"{temp}/valkey.sock"
        try:
            server = subprocess.Popen(
                ["valkey-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--dir", temp,
                 "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--logfile", f"{temp}/valkey.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            raise BackupError(f"cannot run valkey-server: {exc.strerror}; is valkey-server installed?") from None
        try:
            deadline = time.monotonic() + seconds
            while not os.path.exists(sock) and server.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if server.poll() is not None or not os.path.exists(sock):
                log = Path(f"{temp}/valkey.log")
                words = (log.read_text(errors="replace").strip().splitlines() if log.is_file() else []) or ["no log"]
                raise BackupError(f"the filter's snapshot {rdb.name} does not load: {words[-1]}")
            with _wait(sock, seconds) as client:
                described = content_digest(client)
                with contextlib.suppress(ValkeyError):  # the server closes the connection as it exits
                    client("SHUTDOWN", "NOSAVE")
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=30)
    return {**described, "sha256": file_sha256.hexdigest()}


def _systemctl(action: str) -> None:
    completed = subprocess.run(["systemctl", action, UNIT], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BackupError(f"systemctl {action} {UNIT} failed: {completed.stderr.strip()[-200:]}")


def _config(client: Valkey, name: str) -> str:
    reply = client("CONFIG", "GET", name)
    return reply[1].decode() if reply and len(reply) == 2 else ""


def restore(address: str, rdb: Path, expected: dict[str, Any], *, seconds: float = 300) -> bool:
    """Put the archived RDB ``rdb`` in place of the data of the local server at ``address``; whether it changed.

    ``expected``: the manifest's ``filter`` (``{"keys", "digest"}``, :func:`rdb_digest`). When the
    live content already has that digest nothing is touched (restoring the same archive twice
    changes nothing). Otherwise ``valkey-server`` is stopped (Rspamd scores without Bayes for
    those seconds: mail keeps flowing), the file replaces its dump file (``CONFIG GET dir`` and
    ``dbfilename``, owner and group of that directory, mode 0660), and the server is started and
    waited for. Raises :class:`BackupError` when the server keeps an append-only file (it would
    load that instead of the RDB), when a step fails, or when the content afterwards differs.
    """
    with _wait(address, 30) as client:
        if content_digest(client) == {"keys": expected["keys"], "digest": expected["digest"]}:
            return False
        directory, filename = Path(_config(client, "dir")), _config(client, "dbfilename")
        if _config(client, "appendonly") == "yes":
            raise BackupError(
                f"Valkey at {address} keeps an append-only file, which it would load instead of the archived "
                "snapshot: set appendonly no (Debian's default) and restore again"
            )
    if not filename or not directory.is_dir():
        raise BackupError(f"Valkey at {address} names no dump file ({directory}/{filename})")
    owner = directory.stat()
    _systemctl("stop")  # the server saves its current data on the way out; the archived file replaces it
    try:
        staged = directory / f".{filename}.govmail-restore"
        shutil.copyfile(rdb, staged)
        os.chown(staged, owner.st_uid, owner.st_gid)
        os.chmod(staged, 0o660)
        os.replace(staged, directory / filename)
    finally:
        _systemctl("start")
    with _wait(address, seconds) as client:
        found = content_digest(client)
    if found["digest"] != expected["digest"]:
        raise BackupError(
            f"the filter's Valkey at {address} holds {found['keys']} keys after the restore, digest "
            f"{found['digest'][:12]}...; the archive's snapshot has {expected['keys']}, {expected['digest'][:12]}..."
        )
    return True

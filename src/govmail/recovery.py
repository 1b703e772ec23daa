"""The recovery bundle: the controller's generated secrets and CA, carried inside every archive.

A restore onto hosts that never saw the original needs exactly three things (issue 11, REQUIREMENTS
O1): the backup repository, its passphrase and the inventory with its vault. Everything else must
come out of the archive, and on this appliance some of it lives only on the controller, in
``govmail_secrets_dir`` (``$GOVMAIL_SECRETS_DIR``, the lab's ``.lab/secrets``): the internal CA
with its key and the record of what it issued (``pki/``), the generated service, LDAP and
mailbox passwords, the backup's own credentials, later the webmail key and the DKIM keys.

The converge (``roles/backup``, client entry point) therefore packs that directory with
:func:`pack` (a deterministic ``tar.gz``: sorted names, mtime 0, uid/gid 0, so the same secrets
give the same bytes and a second converge changes nothing), encrypts it with Ansible Vault
(AES-256-CTR + HMAC-SHA256, key from PBKDF2; the ``ansible.builtin.vault`` filter) under
``backup_recovery_passphrase`` and places it on the directory host as
``/etc/govmail/recovery.vault`` (0600 root), which the backup archives with the rest of ``/etc``.
The recovery passphrase is **not** on any host: a compromised mail host that reads its own
archives cannot get the CA key out of them. ``playbooks/restore.yml`` reads the file back from
the repository on the backup host, decrypts it on the controller and unpacks it with
:func:`unpack` before converging the new hosts.

By hand (the documented decryption step, docs/restore.md)::

    restic -r /srv/restic/<directory host> dump latest /etc/govmail/recovery.vault > recovery.vault
    ansible-vault decrypt --vault-password-file recovery.pass --output - recovery.vault \
        | base64 -d | tar -xz -C "$GOVMAIL_SECRETS_DIR"
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import os
import tarfile
from pathlib import Path

from . import pki
from .errors import GovmailError


class RecoveryError(GovmailError):
    """A recovery bundle that cannot be made or read (one line, naming the file)."""


def pack(secrets_dir: Path | str) -> str:
    """Every regular file below ``secrets_dir`` as a deterministic ``tar.gz``, base64 text.

    Returns ASCII (base64 of the gzip of a PAX tar): names sorted, mtime 0, owner 0:0, each file's
    permission bits kept, symlinks and sockets left out. Raises :class:`RecoveryError` when the
    directory does not exist or holds no file.
    """
    root = Path(secrets_dir)
    if not root.is_dir():
        raise RecoveryError(f"the secrets directory {root} does not exist: converge playbooks/site.yml first")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        raise RecoveryError(f"the secrets directory {root} holds no file")
    raw = io.BytesIO()
    # gzip header without a name and with mtime 0: same input, same bytes
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in files:
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = path.stat().st_size
            info.mode = path.stat().st_mode & 0o777
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return base64.b64encode(raw.getvalue()).decode("ascii")


#: Files written only when missing: the CA's record of the certificate it last issued to each
#: host (govmail.pki). A host restored onto a new machine gets a new certificate from the same
#: CA; ``govmail cert revoke`` must keep finding that one, not the archived one.
KEPT_IF_PRESENT = (f"{pki.ca_dir('').as_posix()}/{pki.ISSUED_DIR}/",)


def unpack(bundle: str, secrets_dir: Path | str) -> list[str]:
    """Write the files of a :func:`pack` bundle into ``secrets_dir``; returns the paths it changed.

    The archive's secrets win over ones generated since (a converge run before the restore), except
    :data:`KEPT_IF_PRESENT`. A file whose bytes and mode already match is left alone, so unpacking
    twice changes nothing. Directories are created 0700. Raises :class:`RecoveryError` for text
    that is not a bundle or a member that would land outside ``secrets_dir``.
    """
    root = Path(secrets_dir)
    try:
        data = base64.b64decode(bundle.strip(), validate=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = [
                (m.name, m.mode & 0o777, tar.extractfile(m).read())  # type: ignore[union-attr]
                for m in tar.getmembers()
                if m.isfile()
            ]
    except (binascii.Error, tarfile.TarError, OSError, EOFError) as exc:
        raise RecoveryError(f"the recovery bundle is not a govmail bundle ({exc})") from None
    for name, _mode, _content in members:
        if root.resolve() not in (root / name).resolve().parents:
            raise RecoveryError(f"the recovery bundle names {name!r}, outside {root}")
    changed = []
    for name, mode, content in members:
        target = root / name
        if target.is_file() and name.startswith(KEPT_IF_PRESENT):
            continue
        if target.is_file() and target.read_bytes() == content and (target.stat().st_mode & 0o777) == mode:
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_name(f".{target.name}.restoring")
        temporary.write_bytes(content)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
        changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m govmail.recovery unpack BUNDLE_FILE SECRETS_DIR``: JSON list of changed files.

    Used by ``playbooks/restore.yml`` on the controller; exits 2 with one line on error.
    """
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "unpack":
        print("usage: python -m govmail.recovery unpack BUNDLE_FILE SECRETS_DIR", file=sys.stderr)
        return 2
    try:
        bundle = Path(args[1]).read_text(encoding="ascii")
        print(json.dumps(unpack(bundle, args[2])))
    except (RecoveryError, OSError, UnicodeDecodeError) as exc:
        print(f"govmail.recovery: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

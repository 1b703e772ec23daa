"""The restore drill (issue 11, REQUIREMENTS O1 and A4): prove an archive brings the appliance back.

``govmail drill`` builds a **disposable stack** beside the running one: one container per host of
the site's inventory, from the base image, on a Docker network of its own (``--subnet``, default
172.29.51.0/24), named ``<prefix>-<inventory name>`` (default prefix ``govmail-drill``), with the
restored mail host's SMTP and IMAPS published on 127.0.0.1 at ``--port-base`` + port (default
51000: 51025, 51993). Within that network each container answers to its inventory name, so the
drill's inventory is the site's own (same host names, same group_vars, vault included) with only
``ansible_host`` pointing at the drill's containers: the restore runs **the same
playbooks/restore.yml** a real restore onto new hosts runs, with its own secrets directory holding
only what an operator keeps (``backup-repository``, ``backup-recovery``).

Phases (each on stderr as it starts and ends; durations in the report):

0. ``check``: the archive against its own manifest, before anything is built:
   ``govmail-backup verify --archive A`` on the site's directory host streams the archive's mail
   out of the repository (``restic dump``, nothing written to disk there) and hashes every
   message. An archive with a message altered or missing fails the drill here, naming the
   mailbox, the folder and the message, and no stack is created (minutes saved, and the
   report's verdict does not wait for a restore that cannot be right).
1. ``create``: network and containers (leftovers of an earlier drill with the same prefix are
   removed first; nothing else is touched).
2. ``copy``: the backup clients' repositories (the directory host's, and each webmail host's:
   :meth:`govmail.inventory.Site.backup_clients`) are copied (read-only ``tar``) from the site's
   backup host into the drill's backup container, at the same path.
3. ``restore``: ``ansible-playbook playbooks/restore.yml`` (log: ``<report>/restore.log``).
4. ``verify``: ``govmail-backup verify --live`` on the restored host: every mailbox's and folder's
   messages (SHA-256 of each) and the directory's entries against the archive's manifest.
5. ``login``: a restored mailbox with mail is opened over IMAPS (the restored CA verifies the
   restored host) with **a credential the drill owns**, so it works on every site, where nobody
   knows the users' passwords: a temporary clerk entry ``uid=govmail-drill-<hex>`` with a random
   password, delegated that mailbox (M8's ``govmailDelegateFor``), is added to the *disposable*
   directory over ldapi (root's peer credential) and the drill logs in the way a clerk does,
   ``<mailbox>*<clerk>`` (the passdb of ``roles/dovecot``); the entry is deleted again after the
   ``delivery`` phase (the directory then has the archive's digest again). INBOX is read: each
   message's bytes are in the manifest.
6. ``delivery``: a message sent to that user on port 25 of the restored stack is in INBOX.

RTO: from the start to the end of ``delivery``; RPO: the archive's age at the start; A4's bound:
4 working hours (:data:`RTO_BOUND_SECONDS`). The disposable stack is removed (phase ``remove``,
not part of the RTO) unless ``Options.keep``: then it stays up with its inventory and secrets
directory in ``<report dir>/<prefix>-stack`` (report key ``kept``) for inspection, until
:meth:`Drill.remove_kept` (``govmail drill --remove``) takes both away. Errors:
:class:`DrillError` (one line) when the drill cannot run; a drill that ran and found differences
returns ``result: "fail"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import imaplib
import itertools
import json
import os
import secrets as secrets_module
import shlex
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import yaml

from . import passwords, remote
from .errors import GovmailError, RemoteError
from .inventory import Site

#: The inventory groups the appliance's plays target (playbooks/*.yml): the drill's stack has a
#: container for each of their hosts.
GROUPS = ("ldap", "mx", "mailstore", "webmail", "filter", "backup", "dns")

#: A4 (REQUIREMENTS.md): an outage of more than 4 working hours forces agencies back to paper.
RTO_BOUND_SECONDS = 4 * 3600
DEFAULT_PREFIX = "govmail-drill"
DEFAULT_SUBNET = "172.29.51.0/24"
DEFAULT_PORT_BASE = 51000
DEFAULT_IMAGE = "govmail/trixie-systemd:latest"
PUBLISHED = {"smtp": 25, "imaps": 993}
#: What an operator keeps away from the appliance, in a lab-style secrets directory.
KEPT = ("backup-repository", "backup-recovery")
OUTSIDER = "drill@ubnd.example.org"


class DrillError(GovmailError):
    """The drill could not run (Docker, the inventory, the restore playbook): one line."""


@dataclass
class Options:
    prefix: str = DEFAULT_PREFIX
    subnet: str = DEFAULT_SUBNET
    port_base: int = DEFAULT_PORT_BASE
    image: str = DEFAULT_IMAGE
    #: leave the disposable stack and its work directory (inventory, secrets) after the drill
    keep: bool = False


@dataclass
class Phases:
    """Times each phase and tells stderr; ``rows`` is ``[{"name", "seconds"}]``."""

    say: Callable[[str], None]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        self.say(f"drill: {name}...")
        started = time.monotonic()
        try:
            return action()
        finally:
            seconds = round(time.monotonic() - started, 1)
            self.rows.append({"name": name, "seconds": seconds})
            self.say(f"drill: {name} done in {seconds}s")


def _docker(*args: str, check: bool = True, timeout: int = 600) -> str:
    try:
        completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DrillError(f"docker {args[0]} failed: {exc}") from None
    if check and completed.returncode != 0:
        raise DrillError(f"docker {' '.join(args[:2])} failed: {completed.stderr.strip()[-200:]}")
    return completed.stdout.strip()


class Drill:
    """One drill of ``archive`` of the site ``inventory_dir`` (see the module docstring)."""

    def __init__(
        self,
        inventory_dir: Path,
        project_dir: Path,
        secrets_dir: Path,
        report_dir: Path,
        options: Options,
        say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    ) -> None:
        self.site = Site(inventory_dir, project_dir)
        self.inventory_dir, self.project_dir, self.secrets_dir = inventory_dir, project_dir, secrets_dir
        self.report_dir, self.options = report_dir, options
        self.phases = Phases(say)
        self.network = f"{options.prefix}-net"
        hosts: dict[str, list[str]] = {}
        #: each group's hosts in the site's order: which host is a group's first decides roles
        #: (``groups['webmail'] | first`` runs the webmail's database, ``groups['ldap'] | first`` is
        #: the directory), so the drill's inventory keeps it
        self.members = {group: [str(host) for host in self.site.hosts(group)] for group in GROUPS}
        for group, members in self.members.items():
            for host in members:
                hosts.setdefault(host, []).append(group)
        self.groups = hosts
        self.directory_host = str(self.site.first_host("ldap"))
        self.backup_host = str(self.site.first_host("backup"))
        self.mail_host = str((self.site.hosts("mx") or [self.directory_host])[0])

    def container(self, host: str) -> str:
        return f"{self.options.prefix}-{host}"

    # --- phases ----------------------------------------------------------------------------

    def remove(self) -> None:
        for host in self.groups:
            _docker("rm", "--force", "--volumes", self.container(host), check=False)
        _docker("network", "rm", self.network, check=False)

    def kept_dir(self) -> Path:
        """Where a kept stack's inventory and secrets directory live: ``<report dir>/<prefix>-stack``."""
        return self.report_dir / f"{self.options.prefix}-stack"

    def remove_kept(self) -> dict[str, Any]:
        """Remove a stack left by ``--keep``: its containers, network and work directory (which holds
        the site's decrypted secrets). ``{"removed": [container, ...], "network": NAME, "secrets":
        PATH|None}``: ``secrets`` is the work directory removed, None when there was none under this
        report directory (a ``--keep`` run with another ``--report`` left it there: the CLI says so).
        Removing what is not there is not an error."""
        existing = set(_docker("ps", "-a", "--format", "{{.Names}}").split())
        removed = [self.container(host) for host in self.groups if self.container(host) in existing]
        self.remove()
        kept = self.kept_dir()
        found = kept.is_dir()
        shutil.rmtree(kept, ignore_errors=True)
        return {"removed": removed, "network": self.network, "secrets": str(kept) if found else None}

    def create(self) -> None:
        self.remove()
        _docker("network", "create", "--subnet", self.options.subnet, self.network)
        for host in self.groups:
            argv = ["run", "--detach", "--name", self.container(host), "--hostname", host,
                    "--network", self.network, "--network-alias", host, "--cgroupns", "private",
                    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",  # NET_ADMIN: fail2ban's nftables
                    "--tmpfs", "/run", "--tmpfs", "/run/lock"]  # fmt: skip
            if host == self.mail_host:
                for port in PUBLISHED.values():
                    argv += ["--publish", f"127.0.0.1:{self.options.port_base + port}:{port}"]
            _docker(*argv, self.options.image)

    def copy_repository(self) -> None:
        server_dir = str(self.site.value("backup_server_dir") or self._role_default("backup_server_dir"))
        source = remote.host_runner(self.site, self.backup_host)
        # every client's repository: the directory host's, and each webmail host's, whose own
        # archive of the same night restore.yml puts back there (a client never backed up has none)
        clients = list(dict.fromkeys([self.directory_host, *self.site.backup_clients()]))
        command = ["tar", "-C", server_dir, "--ignore-failed-read", "-cf", "-", *clients]
        reader_argv = [*source.prefix, shlex.join(command)] if source.prefix[0] == "ssh" else [*source.prefix, *command]
        target = self.container(self.backup_host)
        _docker("exec", target, "mkdir", "-p", server_dir)
        with subprocess.Popen(reader_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as reader:
            writer = subprocess.run(
                ["docker", "exec", "-i", target, "tar", "-C", server_dir, "-xf", "-"],
                stdin=reader.stdout, capture_output=True, check=False,
            )  # fmt: skip
            reader.wait()
        if reader.returncode != 0 or writer.returncode != 0:
            raise DrillError(
                f"cannot copy the repositories {', '.join(clients)} in {server_dir} from {source.description}: "
                f"{(reader.stderr.read() if reader.stderr else b'').decode(errors='replace').strip()[-200:]}"
                f"{writer.stderr.decode(errors='replace').strip()[-200:]}"
            )

    def _role_default(self, name: str) -> Any:
        return self.site.load_yaml(self.project_dir / "roles" / "backup" / "defaults" / "main.yml")[name]

    def write_inventory(self, work: Path) -> tuple[Path, Path]:
        """The drill's inventory (site's group_vars, hosts pointed at the drill) and secrets directory."""
        inventory = work / "inventory"
        inventory.mkdir()
        for name in ("group_vars", "host_vars"):
            if (self.inventory_dir / name).is_dir():
                (inventory / name).symlink_to((self.inventory_dir / name).resolve())
        connection = {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
        hosts = {host: {**connection, "ansible_host": self.container(host)} for host in self.groups}
        children = {group: {"hosts": dict.fromkeys(members)} for group, members in self.members.items() if members}
        (inventory / "hosts.yml").write_text(
            yaml.safe_dump({"all": {"hosts": hosts, "children": children}}, sort_keys=False)
        )
        secrets = work / "secrets"
        secrets.mkdir(mode=0o700)
        for name in KEPT:
            if (self.secrets_dir / name).is_file():
                shutil.copy2(self.secrets_dir / name, secrets / name)
        return inventory, secrets

    def restore(self, archive: str, inventory: Path, secrets: Path) -> None:
        env = {**os.environ, "GOVMAIL_SECRETS_DIR": str(secrets)}
        env.pop(remote.CONTAINER_ENV, None)
        log = self.report_dir / "restore.log"
        argv = ["ansible-playbook", "-i", str(inventory), "playbooks/restore.yml",
                "-e", f"backup_restore_archive={archive}", "-e", f"govmail_secrets_dir={secrets}"]  # fmt: skip
        playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
        with log.open("w", encoding="utf-8") as out:
            completed = subprocess.run([playbook, *argv[1:]], cwd=self.project_dir, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, check=False)  # fmt: skip
        if completed.returncode != 0:
            raise DrillError(
                f"playbooks/restore.yml failed in the disposable stack (exit {completed.returncode}): see {log}"
            )

    def check(self, archive: str) -> dict[str, Any]:
        """Phase ``check`` (see the module docstring): ``govmail-backup verify --archive A --json`` on
        the site's directory host; returns its report (``archive``, ``time``, ``mailboxes``,
        ``directory``, ``mismatches``). Raises :class:`DrillError` when it cannot run (host
        unreachable, repository refused, no such archive)."""
        runner = remote.host_runner(self.site, self.directory_host)
        try:
            completed = runner.run(["govmail-backup", "verify", "--archive", archive, "--json"],
                                   timeout=RTO_BOUND_SECONDS)  # fmt: skip
        except RemoteError as exc:
            raise DrillError(str(exc)) from None
        try:
            return json.loads(completed.stdout)
        except ValueError:
            detail = (completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"])[-1]
            raise DrillError(f"govmail-backup verify on {runner.description} failed: {detail}") from None

    def verify(self, archive: str) -> dict[str, Any]:
        completed = subprocess.run(
            ["docker", "exec", self.container(self.directory_host), "govmail-backup", "verify",
             "--archive", archive, "--live", "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            return json.loads(completed.stdout)
        except ValueError:
            raise DrillError(f"govmail-backup verify failed: {completed.stderr.strip()[-200:]}") from None

    def agencies(self) -> dict[str, str]:
        """``{address: agency}`` from the restored directory (``ou=<agency>,ou=agencies``)."""
        found = {}
        for entry in self._entries():
            parts = [p.strip().lower().partition("=") for p in entry["dn"][0].split(",")]
            agency = next((a[2] for a, b in itertools.pairwise(parts) if a[0] == "ou" and b[2] == "agencies"), None)
            for mail in entry.get("mail", []) if agency else []:
                found[mail.strip().lower()] = agency
        return found

    def _entries(self) -> list[dict[str, list[str]]]:
        """The restored directory's entries as ``{"dn": [DN], attribute (lower case): [values]}``."""
        base = str(self.site.required("govmail_ldap_base_dn"))
        ldif = _docker("exec", self.container(self.directory_host), "slapcat", "-b", base, "-o", "ldif-wrap=no")
        entries = []
        for block in ldif.split("\n\n"):
            entry: dict[str, list[str]] = {}
            for line in block.splitlines():
                name, sep, value = line.partition(": ")
                if sep and not line.startswith("#"):
                    entry.setdefault(name.lower(), []).append(value)
            if "dn" in entry:
                entries.append(entry)
        return entries

    def _account(self, manifest_rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The mailbox the drill opens: an active one with the most mail (``{"address", "dn"}``)."""
        messages = {row["address"].lower(): row["messages"] for row in manifest_rows}
        candidates = [
            (messages.get(entry["mail"][0].lower(), 0), entry["mail"][0], entry["dn"][0])
            for entry in self._entries()
            if "govmailmailbox" in {c.lower() for c in entry.get("objectclass", [])}
            and entry.get("govmailstatus") == ["active"] and entry.get("mail")
        ]  # fmt: skip
        if not candidates:
            raise DrillError("the restored directory has no active mailbox to log in to")
        _count, address, dn = max(candidates)
        return {"address": address, "dn": dn}

    def _ldap(self, tool: str, ldif: str) -> None:
        completed = subprocess.run(
            ["docker", "exec", "-i", self.container(self.directory_host), tool, "-Q", "-Y", "EXTERNAL", "-H",
             "ldapi:///"], input=ldif, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if completed.returncode != 0:
            raise DrillError(f"{tool} in the disposable directory failed: {completed.stderr.strip()[-200:]}")

    @contextlib.contextmanager
    def drill_credential(self, account: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """A temporary clerk of ``account``'s mailbox in the disposable directory (module docstring,
        phase 5); yields ``{"address", "login": "<mailbox>*<clerk>", "password"}`` and deletes the
        entry afterwards. The password is random, hashed on this side, never written anywhere."""
        uid = f"govmail-drill-{uuid.uuid4().hex[:8]}"
        clerk = f"{uid}@{account['address'].rpartition('@')[2]}"
        dn = f"uid={uid},{account['dn'].split(',', 1)[1]}"
        password = secrets_module.token_urlsafe(24)
        self._ldap("ldapadd", "\n".join([
            f"dn: {dn}", "objectClass: inetOrgPerson", "objectClass: govmailMailbox", f"uid: {uid}",
            "cn: govmail drill", "sn: govmail drill", f"mail: {clerk}", "govmailKind: personal",
            "govmailStatus: active", f"govmailDelegateFor: {account['address']}",
            f"userPassword: {passwords.hash_password(password)}", "",
        ]))  # fmt: skip
        try:
            yield {"address": account["address"], "login": f"{account['address']}*{clerk}", "password": password}
        finally:
            self._ldap("ldapdelete", f"{dn}\n")

    def _tls(self, secrets: Path) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(secrets / "pki" / "ca.crt"))

    def _imap(self, secrets: Path, account: dict[str, Any]) -> imaplib.IMAP4_SSL:
        hostname = str(self.site.required("govmail_mail_hostname"))

        class Client(imaplib.IMAP4_SSL):
            def _create_socket(inner, timeout):
                sock = socket.create_connection(("127.0.0.1", inner.port), timeout)
                return inner.ssl_context.wrap_socket(sock, server_hostname=hostname)

        client = Client(hostname, self.options.port_base + PUBLISHED["imaps"], ssl_context=self._tls(secrets),
                        timeout=30)  # fmt: skip
        client.login(account["login"], account["password"])
        return client

    def login(self, secrets: Path, account: dict[str, Any], known: set[str]) -> list[str]:
        """Log in, read INBOX; mismatches: messages whose bytes the manifest does not know."""
        client = self._imap(secrets, account)
        try:
            client.select("INBOX", readonly=True)
            found = []
            for number in client.search(None, "ALL")[1][0].split():
                data = client.fetch(number, "(BODY.PEEK[])")[1]
                body = next(part[1] for part in data if isinstance(part, tuple))
                # Dovecot stores LF line ends and sends CRLF (RFC 3501): either form may be the file's
                forms = {hashlib.sha256(body).hexdigest(), hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()}
                if not forms & known:
                    found.append(f"{account['address']}: INBOX message {number.decode()} read over IMAP is not "
                                 "in the manifest")  # fmt: skip
            return found
        finally:
            client.logout()

    def delivery(self, secrets: Path, account: dict[str, Any]) -> list[str]:
        subject = f"govmail drill {uuid.uuid4().hex[:12]}"
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = OUTSIDER, account["address"], subject
        message.set_content("A message sent through the restored stack by govmail drill.\n")
        with smtplib.SMTP("127.0.0.1", self.options.port_base + PUBLISHED["smtp"], timeout=30) as smtp:
            smtp.ehlo("mx.example.org")
            refused = smtp.send_message(message)
        if refused:
            return [f"delivery: the restored stack refused {account['address']}: {refused}"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            client = self._imap(secrets, account)
            try:
                client.select("INBOX", readonly=True)
                if client.search(None, "SUBJECT", f'"{subject}"')[1][0].split():
                    return []
            finally:
                client.logout()
            time.sleep(2)
        return [f"delivery: a message sent to {account['address']} through the restored stack did not arrive in 90s"]

    # --- the whole drill ---------------------------------------------------------------------

    def run(self, archive: str) -> dict[str, Any]:
        started = time.monotonic()
        started_at = datetime.now(UTC)
        self.report_dir.mkdir(parents=True, exist_ok=True)
        mismatches: list[str] = []
        verified: dict[str, Any] = {"mailboxes": [], "directory": {"entries": 0, "ok": False}, "mismatches": []}
        agencies: dict[str, str] = {}
        name, rto, archive_time = archive, None, None
        kept = None
        with tempfile.TemporaryDirectory(prefix="govmail-drill-") as temp:
            work = Path(temp)
            if self.options.keep:
                shutil.rmtree(self.kept_dir(), ignore_errors=True)
                work = self.kept_dir()
                work.mkdir(mode=0o700)
            built = False
            try:
                checked = self.phases.run("check", lambda: self.check(archive))
                name, archive_time = checked["archive"], checked["time"]
                verified = checked
                mismatches += checked["mismatches"]
                if not mismatches:
                    built = True
                    self.phases.run("create", self.create)
                    self.phases.run("copy", self.copy_repository)
                    inventory, secrets = self.write_inventory(work)
                    self.phases.run("restore", lambda: self.restore(name, inventory, secrets))
                    verified = self.phases.run("verify", lambda: self.verify(name))
                    mismatches += verified["mismatches"]
                    agencies = self.agencies()
                    known = set(self._known_digests(name))
                    with self.drill_credential(self._account(verified["mailboxes"])) as account:
                        mismatches += self.phases.run("login", lambda: self.login(secrets, account, known))
                        mismatches += self.phases.run("delivery", lambda: self.delivery(secrets, account))
                    rto = round(time.monotonic() - started, 1)
            except (DrillError, OSError, imaplib.IMAP4.error, smtplib.SMTPException, ssl.SSLError) as exc:
                mismatches.append(f"{self.phases.rows[-1]['name'] if self.phases.rows else 'check'}: {exc}")
            finally:
                if self.options.keep and built:
                    ports = {name: self.options.port_base + port for name, port in PUBLISHED.items()}
                    kept = {"inventory": str(work / "inventory"), "secrets": str(work / "secrets"),
                            "containers": [self.container(host) for host in self.groups], "network": self.network,
                            "ports": ports}  # fmt: skip
                elif built:
                    self.phases.run("remove", self.remove)
        rpo = round((started_at - datetime.fromisoformat(archive_time)).total_seconds()) if archive_time else None
        report = {
            "result": "pass" if not mismatches and rto is not None else "fail",
            "archive": name,
            "archive_time": archive_time,
            "started": started_at.isoformat(timespec="seconds"),
            "rto_seconds": rto,
            "rpo_seconds": rpo,
            "rto_bound_seconds": RTO_BOUND_SECONDS,
            "rto_within_bound": rto is not None and rto <= RTO_BOUND_SECONDS,
            "phases": self.phases.rows,
            "mailboxes": verified["mailboxes"],
            "directory": verified["directory"],
            "filter": verified.get("filter"),
            "agencies": agency_rows(verified["mailboxes"], agencies),
            "mismatches": mismatches,
        }
        if kept:
            report["kept"] = kept
        report["report_html"] = str(write_reports(report, self.report_dir))
        return report

    def _known_digests(self, archive: str) -> list[str]:
        manifest = _docker("exec", self.container(self.directory_host), "govmail-backup", "restic", "dump", archive,
                           f"{self._staging()}/manifest.json")  # fmt: skip
        mailboxes = json.loads(manifest)["mailboxes"].values()
        return [f["sha256"] for m in mailboxes for d in m["folders"].values() for f in d["files"].values()]

    def _staging(self) -> str:
        return str(self.site.value("backup_staging_dir") or self._role_default("backup_staging_dir"))


def agency_rows(mailboxes: list[dict[str, Any]], agencies: dict[str, str]) -> list[dict[str, Any]]:
    """Per agency: ``[{"agency", "mailboxes", "messages", "ok"}]`` (``-`` for mailboxes of none)."""
    rows: dict[str, dict[str, Any]] = {}
    for item in mailboxes:
        agency = agencies.get(item["address"].lower(), "-")
        row = rows.setdefault(agency, {"agency": agency, "mailboxes": 0, "messages": 0, "ok": True})
        row["mailboxes"] += 1
        row["messages"] += item["messages"]
        row["ok"] = row["ok"] and item["ok"]
    return sorted(rows.values(), key=lambda r: r["agency"])


def write_reports(report: dict[str, Any], report_dir: Path) -> Path:
    """``drill-<time>.json`` and ``drill-<time>.html`` in ``report_dir``; returns the HTML's path."""
    stamp = report["started"].replace(":", "").replace("-", "").replace("+0000", "Z")
    html_path = report_dir / f"drill-{stamp}.html"
    (report_dir / f"drill-{stamp}.json").write_text(
        json.dumps({**report, "report_html": str(html_path)}, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    html_path.write_text(render_html(report), encoding="utf-8")
    return html_path


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: verdict, RTO/RPO against A4, an SVG bar chart of the phases, tables."""
    e = html.escape
    longest = max([row["seconds"] for row in report["phases"]] + [1])
    bars = []
    for index, row in enumerate(report["phases"]):
        width = 420 * row["seconds"] / longest
        y = 10 + index * 26
        bars.append(
            f'<text x="0" y="{y + 14}">{e(row["name"])}</text>'
            f'<rect x="90" y="{y}" width="{width:.1f}" height="18" fill="#3b6ea5"/>'
            f'<text x="{95 + width:.1f}" y="{y + 14}">{row["seconds"]} s</text>'
        )
    chart = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="{20 + 26 * len(report["phases"])}" '
        f'font-family="sans-serif" font-size="13">{"".join(bars)}</svg>'
    )
    agencies = "".join(
        f"<tr><td>{e(r['agency'])}</td><td>{r['mailboxes']}</td><td>{r['messages']}</td>"
        f"<td>{'ok' if r['ok'] else 'MISMATCH'}</td></tr>"
        for r in report["agencies"]
    )
    mismatches = "".join(f"<li>{e(m)}</li>" for m in report["mismatches"]) or "<li>none</li>"
    verdict = "PASS" if report["result"] == "pass" else "FAIL"
    bound = report["rto_bound_seconds"] / 3600
    learned = report.get("filter")
    filter_row = (
        f"<tr><th>Filter (learned spam/ham)</th><td>{learned['keys']} keys, "
        f"{'as archived' if learned['ok'] else 'MISMATCH'}</td></tr>"
        if learned
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>govmail drill {e(str(report["archive"]))}: {verdict}</title>
<style>body{{font-family:sans-serif;max-width:56em;margin:2em auto}}td,th{{padding:.2em .8em;text-align:left}}
.pass{{color:#1a7f37}}.fail{{color:#b42318}}</style></head><body>
<h1 class="{report["result"]}">Restore drill: {verdict}</h1>
<p>Archive <b>{e(str(report["archive"]))}</b> written {e(str(report["archive_time"]))}; drill started
{e(report["started"])}.</p>
<table><tr><th>RTO (start to verified stack)</th><td>{report["rto_seconds"]} s</td></tr>
<tr><th>RPO (age of the archive)</th><td>{report["rpo_seconds"]} s</td></tr>
<tr><th>A4 bound (4 working hours)</th><td>{bound:.0f} h: {"met" if report["rto_within_bound"] else "NOT met"}</td></tr>
<tr><th>Directory</th><td>{report["directory"]["entries"]} entries,
{"as archived" if report["directory"]["ok"] else "MISMATCH"}</td></tr>{filter_row}</table>
<h2>Phases</h2>{chart}
<h2>Agencies</h2><table><tr><th>agency</th><th>mailboxes</th><th>messages</th><th>state</th></tr>{agencies}</table>
<h2>Mismatches</h2><ul>{mismatches}</ul>
</body></html>
"""

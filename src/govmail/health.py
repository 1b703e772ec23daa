"""``govmail check``: what a person on call looks at first, for every host of a site.

The controller works out from the inventory (read by Ansible, :class:`govmail.inventory.Site`)
what each host must offer (its groups: ``ldap`` -> slapd and LDAP 389/636, ``mx`` -> Postfix and
SMTP 25/587/465, ``mailstore`` -> Dovecot and IMAP/POP3/ManageSieve), runs the stdlib-only probe
(:mod:`govmail.probe`) on the host through the project's remote runner (:mod:`govmail.remote`:
``docker exec`` in the lab, ``ssh`` + ``sudo -n`` on data-centre hosts), and judges the facts
against the thresholds the inventory sets once (``govmail_check_*`` in
``roles/govmail/defaults/main.yml``). Nothing here prints.

Report (the JSON of ``govmail check --json``; issue 14)::

    {"status": "ok" | "warning" | "critical",
     "checks": [{"host": "mail1", "service": "dovecot", "check": "port 993 (imaps)",
                 "status": "critical", "detail": "connection refused (nothing listens)"}, ...]}

A check may carry ``"data"`` (figures: messages, seconds, percent) for scripts and the daily mail.
The report's status is the worst of its checks; :data:`EXIT_CODES` maps it to the exit status a
monitoring system reads (0 ok, 1 warning, 2 critical: the Nagios plugin convention).

Backup age: :func:`backup_checks` (the newest archive of each backup client). Not yet here,
with its seam: replication state (no replicated directory yet). DNS: each host asks its own
resolver for every record of ``govmail dns`` (:func:`dns_queries`, :func:`judge_dns`); with the
site's own DNS server (roles/dns) those queries never leave the site's network.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import contract, dns, remote
from .errors import GovmailError, InventoryError
from .inventory import Site

STATUSES = ("ok", "warning", "critical")
EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}

# What each inventory group runs: the systemd units that must be active and the ports (services of
# govmail.contract.SERVICE_PORTS) that must answer with TLS, with how TLS starts on each.
GROUP_SERVICES: dict[str, dict[str, Any]] = {
    "ldap": {"unit": "slapd", "ports": {"ldap": "ldap", "ldaps": "implicit"}},
    "mx": {"unit": "postfix", "ports": {"smtp": "smtp", "submission": "smtp", "submissions": "implicit"}},
    "mailstore": {
        "unit": "dovecot",
        "ports": {"imap": "imap", "imaps": "implicit", "pop3": "pop3", "pop3s": "implicit", "managesieve": "sieve"},
    },
}
# Timers of the project's own host programs (roles/lifecycle, roles/operations on the directory host).
GROUP_TIMERS = {
    "ldap": [
        "govmail-lifecycle.timer",
        "govmail-daily-mail.timer",
        "govmail-host-check.timer",
        "govmail-usage-rollup.timer",
    ]
}

# The inventory variables of the thresholds (documented in roles/govmail/defaults/main.yml).
THRESHOLDS = (
    "govmail_check_certificate_warning_days",
    "govmail_check_certificate_critical_days",
    "govmail_check_queue_warning_messages",
    "govmail_check_queue_critical_messages",
    "govmail_check_queue_warning_minutes",
    "govmail_check_queue_critical_minutes",
    "govmail_check_store_warning_free_percent",
    "govmail_check_store_critical_free_percent",
    "govmail_check_quota_warning_percent",
)
POSTFIX_DOMAINS_TABLE = "ldap:/etc/postfix/ldap/virtual_domains.cf"  # roles/postfix/vars/main.yml
PROBE_TIMEOUT = 300


class CheckError(GovmailError):
    """The check cannot start: the inventory lacks a host or sets a threshold that is not a number."""


def check(status: str, host: str, service: str, name: str, detail: str, data: dict | None = None) -> dict[str, Any]:
    """One row of the report (module docstring)."""
    row = {"host": host, "service": service, "check": name, "status": status, "detail": detail}
    if data is not None:
        row["data"] = data
    return row


def worst(statuses: Iterable[str]) -> str:
    """The most severe of ``statuses`` (``ok`` for none)."""
    return max(statuses, key=STATUSES.index, default="ok")


# --- what the site expects ---------------------------------------------------------------------


def thresholds(site: Site) -> dict[str, int]:
    """The ``govmail_check_*`` numbers of the site; :class:`CheckError` names one that is not a
    non-negative integer or a warning level less severe than its critical level."""
    values: dict[str, int] = {}
    for name in THRESHOLDS:
        value = site.value(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise CheckError(f"{name} is {value!r} in inventory {site.inventory_dir}: give a whole number")
        values[name.removeprefix("govmail_check_")] = int(value)
    pairs = (
        ("certificate_warning_days", "certificate_critical_days", ">="),
        ("queue_warning_messages", "queue_critical_messages", "<="),
        ("queue_warning_minutes", "queue_critical_minutes", "<="),
        ("store_warning_free_percent", "store_critical_free_percent", ">="),
    )
    for warning, critical, relation in pairs:
        low, high = values[warning], values[critical]
        if (relation == ">=" and low < high) or (relation == "<=" and low > high):
            raise CheckError(
                f"govmail_check_{warning} ({low}) must be {relation} govmail_check_{critical} ({high}) "
                f"in inventory {site.inventory_dir}"
            )
    return values


def host_spec(site: Site, host: str) -> dict[str, Any]:
    """What the probe asks of ``host`` (govmail.probe's SPEC), from the host's groups."""
    groups = [group for group in GROUP_SERVICES if host in site.hosts(group)]
    spec = spec_for(
        groups,
        hostname=str(site.required("govmail_mail_hostname")),
        ca_file=str(site.host_value(host, "govmail_tls_ca_certificate")),
        domain=str(site.required("govmail_domain")),
        store=str(site.host_value(host, "govmail_vmail_dir")),
    )
    # where a host that publishes the internal CA's CRL keeps it (roles/pki); absent elsewhere
    root, path = site.host_value(host, "govmail_public_http_root"), site.host_value(host, "govmail_crl_path")
    spec["crl_file"] = f"{str(root).rstrip('/')}/{path}" if root and path else None
    return spec


def spec_for(groups: Iterable[str], *, hostname: str, ca_file: str, domain: str, store: str) -> dict[str, Any]:
    """The probe's SPEC for a host in ``groups`` (``ldap``, ``mx``, ``mailstore``; others add
    nothing): its units, ports, and the queue / mail store / quota / directory facts."""
    groups = [group for group in GROUP_SERVICES if group in set(groups)]
    units = [GROUP_SERVICES[group]["unit"] for group in groups]
    units += [timer for group in groups for timer in GROUP_TIMERS.get(group, [])]
    ports = [
        {"service": service, "port": contract.SERVICE_PORTS[service], "mode": mode, "unit": unit}
        for group in groups
        for unit in [GROUP_SERVICES[group]["unit"]]
        for service, mode in GROUP_SERVICES[group]["ports"].items()
    ]
    domain = domain.lower()
    mail_store = store if "mailstore" in groups else None
    return {
        "hostname": hostname.lower(),
        "ca_file": ca_file,
        "units": units,
        "ports": ports,
        "queue": "mx" in groups,
        "store": mail_store,
        "quota_domain": domain if mail_store else None,
        "directory": {"table": POSTFIX_DOMAINS_TABLE, "key": domain} if "mx" in groups else None,
    }


# --- judging the facts ---------------------------------------------------------------------------


def _days(seconds: float) -> int:
    return int(seconds // 86400)


def judge(host: str, spec: dict[str, Any], facts: dict[str, Any], limits: dict[str, int]) -> list[dict[str, Any]]:
    """The checks of one host from its probe's facts (govmail.probe's answer) and the thresholds."""
    now = float(facts.get("now") or time.time())
    rows = []
    for unit, state in facts.get("units", {}).items():
        service = unit.removesuffix(".timer")
        status = "ok" if state == "active" else "critical"
        rows.append(check(status, host, service, "active", f"{unit} is {state}"))
    units_of = {port["service"]: port["unit"] for port in spec["ports"]}
    for port in facts.get("ports", []):
        rows.append(_judge_port(host, units_of.get(port["service"], port["service"]), port, spec, now, limits))
    if "queue" in facts:
        rows.append(_judge_queue(host, facts["queue"], now, limits))
    if "store" in facts:
        rows.extend(_judge_store(host, facts["store"], limits))
    if "quota" in facts:
        rows.append(_judge_quota(host, facts["quota"], limits))
    if "crl" in facts:
        rows.append(_judge_crl(host, facts["crl"], now, limits))
    if "dns" in facts and spec.get("dns"):
        rows.extend(judge_dns(host, spec["dns"], facts["dns"]))
    if "directory" in facts:
        found = facts["directory"]
        key = spec["directory"]["key"]
        if found.get("error"):
            rows.append(
                check(
                    "critical", host, "postfix", "directory", f"Postfix's LDAP lookup of {key} failed: {found['error']}"
                )
            )
        else:
            rows.append(check("ok", host, "postfix", "directory", f"Postfix's LDAP lookup of {key} answered"))
    return rows


def _judge_port(host: str, unit: str, port: dict, spec: dict, now: float, limits: dict[str, int]) -> dict[str, Any]:
    name = f"port {port['port']} ({port['service']})"
    if port.get("error"):
        verify = str(port.get("verify") or "")
        detail = port["error"] + (" (the certificate has expired)" if "expired" in verify else "")
        return check("critical", host, unit, name, detail)
    days = _days(port["not_after"] - now) if port.get("not_after") else None
    detail = f"{port['protocol']}, certificate for {spec['hostname']} verified by the site CA"
    data = {"protocol": port["protocol"], "certificate_days_left": days}
    if days is None:
        return check("warning", host, unit, name, f"{detail}; its expiry date is unknown", data)
    expiry = time.strftime("%Y-%m-%d", time.gmtime(port["not_after"]))
    detail += f", expires {expiry} ({days} days)"
    if days < limits["certificate_critical_days"]:
        return check("critical", host, unit, name, f"{detail}: renew it now", data)
    if days < limits["certificate_warning_days"]:
        return check("warning", host, unit, name, f"{detail}: renew it soon", data)
    return check("ok", host, unit, name, detail, data)


def _judge_crl(host: str, published: dict, now: float, limits: dict[str, int]) -> dict[str, Any]:
    """The CRL a host publishes, watched like a certificate (issue 15): its nextUpdate against the
    certificate thresholds, its signature against the site CA (govmail.pki.crl_status)."""
    from . import pki  # the cryptography package: on the controller (and the hosts' Debian python3)

    if published.get("error"):
        return check("critical", host, "pki", "crl", published["error"])
    try:
        ca = base64.b64decode(published.get("ca") or "") or None
        state = pki.crl_status(base64.b64decode(published["data"]), ca, dt.datetime.fromtimestamp(now, dt.UTC))
    except (GovmailError, ValueError) as exc:
        return check("critical", host, "pki", "crl", f"{published.get('path')}: {exc}")
    days = state["days_left"]
    data = {"crl_days_left": days, "revoked": len(state["revoked"])}
    detail = f"{published.get('path')}: next update in {days:.0f} days, {len(state['revoked'])} revoked"
    if state["state"] == "bad-signature":
        return check("critical", host, "pki", "crl", f"{published.get('path')} is not signed by the site CA", data)
    if days < limits["certificate_critical_days"]:
        return check("critical", host, "pki", "crl", detail + " (converge to sign it again)", data)
    if days < limits["certificate_warning_days"]:
        return check("warning", host, "pki", "crl", detail + " (converge to sign it again)", data)
    return check("ok", host, "pki", "crl", detail, data)


def _judge_queue(host: str, queue: dict, now: float, limits: dict[str, int]) -> dict[str, Any]:
    if queue.get("error"):
        return check("critical", host, "postfix", "queue", f"cannot read the queue: {queue['error']}")
    messages = int(queue["messages"])
    age = max(0.0, now - queue["oldest"]) if queue.get("oldest") else 0.0
    minutes = int(age // 60)
    data = {"messages": messages, "oldest_seconds": int(age)}
    detail = f"{messages} message{'s' if messages != 1 else ''} in the queue"
    if messages:
        detail += f", the oldest waiting {minutes} min"
    if messages >= limits["queue_critical_messages"] or (minutes >= limits["queue_critical_minutes"] and messages):
        return check("critical", host, "postfix", "queue", detail, data)
    if messages >= limits["queue_warning_messages"] or (minutes >= limits["queue_warning_minutes"] and messages):
        return check("warning", host, "postfix", "queue", detail, data)
    return check("ok", host, "postfix", "queue", detail, data)


def _judge_store(host: str, store: dict, limits: dict[str, int]) -> list[dict[str, Any]]:
    if store.get("error"):
        return [check("critical", host, "dovecot", "mail store", f"{store['path']}: {store['error']}")]
    rows = []
    for what, total, free in (("space", "bytes", "bytes_free"), ("inodes", "inodes", "inodes_free")):
        if not store[total]:  # file systems without an inode table (btrfs) report 0
            continue
        percent = 100.0 * store[free] / store[total]
        detail = f"{store['path']}: {percent:.0f}% of its {what} free"
        if what == "space":
            detail += f" ({store[free] / 2**30:.1f} of {store[total] / 2**30:.1f} GiB)"
        data = {"free_percent": round(percent, 1)}
        if percent < limits["store_critical_free_percent"]:
            rows.append(check("critical", host, "dovecot", f"mail store {what}", detail, data))
        elif percent < limits["store_warning_free_percent"]:
            rows.append(check("warning", host, "dovecot", f"mail store {what}", detail, data))
        else:
            rows.append(check("ok", host, "dovecot", f"mail store {what}", detail, data))
    return rows


def _judge_quota(host: str, quota: dict, limits: dict[str, int]) -> dict[str, Any]:
    if quota.get("error") and not quota.get("mailboxes"):
        return check("warning", host, "dovecot", "quota", f"cannot read the quotas: {quota['error']}")
    bound = limits["quota_warning_percent"]
    full = []
    for mailbox in quota["mailboxes"]:
        if mailbox["limit_kib"]:
            percent = 100.0 * mailbox["used_kib"] / mailbox["limit_kib"]
            if percent >= bound:
                full.append({"address": mailbox["address"], "percent": round(percent, 1)})
    full.sort(key=lambda item: -item["percent"])
    data = {"mailboxes": len(quota["mailboxes"]), "above": full}
    if not full:
        return check(
            "ok",
            host,
            "dovecot",
            "quota",
            f"no mailbox at or above {bound}% of its quota ({len(quota['mailboxes'])} mailboxes)",
            data,
        )
    names = ", ".join(f"{item['address']} {item['percent']:.0f}%" for item in full[:10])
    more = f" and {len(full) - 10} more" if len(full) > 10 else ""
    return check(
        "warning",
        host,
        "dovecot",
        "quota",
        f"{len(full)} mailbox{'es' if len(full) != 1 else ''} at or above {bound}% of the quota: {names}{more}",
        data,
    )


# --- seams: DNS and backups ---------------------------------------------------------------------


def dns_queries(site: Site) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What each host's resolver is asked: the records of ``govmail dns`` (govmail.dns, the one
    list roles/dns serves), one query per name and type with its expected values, and rows to add
    (a warning naming a malformed fact, so the rest of the check still runs). Nothing when the
    inventory sets ``govmail_check_dns: false``."""
    if not site.value("govmail_check_dns", True):
        return [], []
    try:
        records = dns.site_records(site)
    except dns.DnsError as exc:
        host = site.first_host("mx") if site.hosts("mx") else "site"
        return [], [check("warning", host, "dns", "records", f"the records cannot be made: {exc}")]
    queries: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        query = queries.setdefault((record["name"], record["type"]), {**record, "expected": []})
        query["expected"].append(record["value"])
    return [{"name": q["name"], "type": q["type"], "expected": q["expected"]} for q in queries.values()], []


def judge_dns(host: str, queries: list[dict[str, Any]], found: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per record (``check``: ``MX quangtri.gov.vn.``) from what the host's resolver answered
    (govmail.probe.dns). Present and equal (in govmail.dns.normalise's form): ok; missing or
    different: warning naming what is expected and what was seen; the resolver unreachable: one
    warning naming it. Never critical: the host's resolver is not the Internet's view of the zone
    (a site may run split DNS), and mail inside the site does not depend on it (README)."""
    resolver = ", ".join(found.get("resolvers") or []) or "none (no nameserver in /etc/resolv.conf)"
    if found.get("error"):
        detail = f"the host's resolver {resolver} does not answer: {found['error']}"
        return [check("warning", host, "dns", "resolver", detail)]
    answers = {(a["name"], a["type"]): a for a in found.get("answers", [])}
    rows = []
    for query in queries:
        name, kind = query["name"], query["type"]
        answer = answers.get((name, kind), {"status": None, "values": [], "error": "not asked"})
        expected = sorted(dns.normalise(kind, value) for value in query["expected"])
        seen = sorted(dns.normalise(kind, value) for value in answer["values"])
        label = f"{kind} {name}"
        shown = " | ".join(expected)
        if answer.get("error"):
            rows.append(check("warning", host, "dns", label, f"asking {resolver} failed: {answer['error']}"))
        elif seen == expected:
            rows.append(check("ok", host, "dns", label, f"{shown} (resolver {resolver})"))
        elif not seen:
            detail = f"missing: expected {shown}; resolver {resolver} answered {answer['status']} with no {kind} record"
            rows.append(check("warning", host, "dns", label, detail, {"expected": expected, "seen": seen}))
        else:
            detail = f"expected {shown}, resolver {resolver} sees {' | '.join(seen)}"
            rows.append(check("warning", host, "dns", label, detail, {"expected": expected, "seen": seen}))
    return rows


BACKUP_THRESHOLDS = ("govmail_check_backup_warning_hours", "govmail_check_backup_critical_hours")
BACKUP_PROGRAM = "govmail-backup"  # roles/backup's client program (govmail.backup), on the client's PATH


def backup_thresholds(site: Site) -> tuple[int, int]:
    """(warning, critical) hours of ``govmail_check_backup_*``; :class:`CheckError` names a bad one."""
    values = []
    for name in BACKUP_THRESHOLDS:
        value = site.value(name)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise CheckError(f"{name} is {value!r} in inventory {site.inventory_dir}: give a whole number of hours")
        values.append(int(value))
    if values[0] > values[1]:
        raise CheckError(
            f"govmail_check_backup_warning_hours ({values[0]}) must be <= govmail_check_backup_critical_hours "
            f"({values[1]}) in inventory {site.inventory_dir}"
        )
    return values[0], values[1]


def _archive_time(text: str) -> dt.datetime:
    """restic's snapshot time (RFC 3339 with nanoseconds) as an aware datetime."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(trimmed)


def judge_backup(host: str, archives: list[dict[str, Any]], limits: tuple[int, int], now: dt.datetime) -> dict:
    """The ``backup age`` row of one client from its archives (``govmail backup list``'s JSON):
    warning / critical once the newest is ``limits`` hours old or more. None yet is a warning, not
    critical: a site deployed today has not reached its first timer run (its age is what the
    critical threshold would have to be measured from)."""
    warning, critical = limits
    if not archives:
        return check("warning", host, "backup", "backup age", "no archive of this host yet: run `govmail backup run`")
    newest = max(archives, key=lambda item: _archive_time(item["time"]))
    age = (now - _archive_time(newest["time"])).total_seconds() / 3600
    status = "critical" if age >= critical else "warning" if age >= warning else "ok"
    detail = (
        f"latest archive {newest['archive']} is {age:.1f} hours old ({newest['time'][:19]}Z; "
        f"warning {warning} h, critical {critical} h), {len(archives)} archives"
    )
    data = {"age_hours": round(age, 2), "archive": newest["archive"], "archives": len(archives)}
    return check(status, host, "backup", "backup age", detail, data)


def backup_checks(
    site: Site,
    runner_for: Callable[[Site, str], remote.Runner] | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Backup age per client (the hosts playbooks/backup.yml backs up:
    :meth:`govmail.inventory.Site.backup_clients`, the directory host and each webmail host),
    from what ``govmail backup list`` reads there (``govmail-backup list --json``: the client's
    restic snapshots). Nothing when the site has no ``backup`` host. An unreadable list is critical.
    Thresholds: ``govmail_check_backup_warning_hours`` / ``_critical_hours`` (the inventory)."""
    if not site.hosts("backup"):
        return []
    limits = backup_thresholds(site)
    runner_for = runner_for or (lambda site_, host: remote.host_runner(site_, host))
    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for host in site.backup_clients():
        try:
            completed = runner_for(site, host).run([BACKUP_PROGRAM, "list", "--json"])
            archives = json.loads(completed.stdout) if completed.returncode == 0 else None
        except (remote.RemoteError, ValueError):
            archives, completed = None, None
        if not isinstance(archives, list):
            lines = (completed.stderr.strip().splitlines() if completed else []) or ["no answer"]
            detail = lines[-1].removeprefix(f"{BACKUP_PROGRAM}: ")
            rows.append(check("critical", host, "backup", "backup age", f"the archives cannot be listed: {detail}"))
            continue
        rows.append(judge_backup(host, archives, limits, now))
    return rows


# --- running it -----------------------------------------------------------------------------------


def probe_source() -> str:
    """The probe program as the hosts run it (this package's own govmail/probe.py)."""
    return (Path(__file__).with_name("probe.py")).read_text(encoding="utf-8")


def collect(runner: remote.Runner, spec: dict[str, Any], python: str = "/usr/bin/python3") -> dict[str, Any]:
    """Run the probe on one host; its facts, or :class:`govmail.errors.RemoteError`."""
    completed = runner.run([python, "-", json.dumps(spec)], input=probe_source(), timeout=PROBE_TIMEOUT)
    try:
        facts = json.loads(completed.stdout)
    except ValueError:
        lines = completed.stderr.strip().splitlines() or [f"exit {completed.returncode}"]
        raise remote.RemoteError(f"the probe failed on {runner.description}: {lines[-1]}") from None
    if not isinstance(facts, dict):
        raise remote.RemoteError(f"the probe on {runner.description} answered {completed.stdout[:80]!r}")
    return facts


def run(
    inventory_dir: Path | str,
    *,
    site: Site | None = None,
    runner_for: Callable[[Site, str], remote.Runner] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Check every host of the site (module docstring); the report.

    ``now`` (aware, default the controller's clock) is what the newest archive's age is
    measured against.

    Raises :class:`CheckError` / :class:`InventoryError` when the inventory cannot say what to
    check; an unreachable host is a ``critical`` row, not an exception.
    """
    site = site or Site(inventory_dir)
    limits = thresholds(site)
    runner_for = runner_for or (lambda site_, host: remote.host_runner(site_, host))
    hosts = site.hosts("all")
    if not hosts:
        raise InventoryError(f"inventory {site.inventory_dir} has no hosts: add them to hosts.yml")
    queries, rows = dns_queries(site)
    for host in hosts:
        spec = host_spec(site, host)
        if queries:
            spec["dns"] = queries
        try:
            runner = runner_for(site, host)
            python = str(site.host_value(host, "ansible_python_interpreter") or "/usr/bin/python3")
            facts = collect(runner, spec, python)
        except remote.RemoteError as exc:
            rows.append(check("critical", host, "host", "reachable", str(exc)))
            continue
        rows.append(check("ok", host, "host", "reachable", f"probed through {runner.description}"))
        rows.extend(judge(host, spec, facts, limits))
    rows.extend(backup_checks(site, runner_for, now=now))
    return {"status": worst(row["status"] for row in rows), "checks": rows}


def summary(report: dict[str, Any]) -> str:
    """One line for people: ``critical: 2 critical, 1 warning, 30 ok on mail1, backup1``."""
    counts = {status: sum(1 for row in report["checks"] if row["status"] == status) for status in STATUSES}
    hosts = list(dict.fromkeys(row["host"] for row in report["checks"]))
    parts = ", ".join(f"{counts[status]} {status}" for status in reversed(STATUSES) if counts[status])
    return f"{report['status']}: {parts} on {', '.join(hosts)}"

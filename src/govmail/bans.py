"""Brute-force bans (issue 13): lift fail2ban's block of an address on every host that runs it.

roles/fail2ban runs fail2ban on the hosts of the ``mx``, ``mailstore`` and ``webmail`` groups (the
hosts that take logins; a webmail host bans on Roundcube's failed logins, issue 12). ``govmail
unban ADDRESS`` asks each of them, through the project's remote runner (``docker exec`` in the
lab, ``ssh`` + ``sudo -n`` in a data centre, :mod:`govmail.remote`), which jails ban the address
(``fail2ban-client banned ADDRESS``), then lifts it from all of them (``fail2ban-client unban
ADDRESS``; fail2ban 1.1.0's client commands, fail2ban-client(1)).
"""

from __future__ import annotations

import ast
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from . import remote
from .errors import BanError
from .inventory import Site

#: The inventory groups whose hosts run fail2ban (roles/fail2ban, playbooks/fail2ban.yml).
GROUPS = ("mx", "mailstore", "webmail")
CLIENT = "fail2ban-client"

__all__ = ["GROUPS", "BanError", "hosts", "parse_address", "parse_networks", "unban"]


def parse_address(text: str) -> str:
    """``text`` as one IPv4 or IPv6 address in its normal form (``"192.0.2.010"`` is refused,
    ``"2001:DB8::1"`` -> ``"2001:db8::1"``). Raises :class:`BanError` naming it."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise BanError(f"{text!r} is not an IP address: give one address, e.g. 192.0.2.10 or 2001:db8::10") from None


def parse_networks(values: Iterable[Any], name: str) -> list[str]:
    """Each of ``values`` (addresses or CIDR networks, e.g. from ``govmail_trusted_addresses``) in
    normal form: ``["192.0.2.10", "10.0.0.0/8"]``. Raises :class:`BanError` naming ``name`` and the
    first value that is neither."""
    found = []
    for value in values:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise BanError(
                f"{name}: {value!r} is not an IP address or network: write e.g. 192.0.2.10 or 192.0.2.0/24"
            ) from None
        found.append(str(network.network_address) if network.num_addresses == 1 else str(network))
    return found


def hosts(site: Site) -> list[str]:
    """The inventory hosts that run fail2ban (``mx``, ``mailstore``, ``webmail``), each once, in inventory order."""
    found: list[str] = []
    for group in GROUPS:
        found += [host for host in site.hosts(group) if host not in found]
    return found


def _jails(answer: str) -> list[str]:
    """The jails in ``fail2ban-client banned ADDRESS``'s answer, a Python literal such as
    ``[['govmail-dovecot', 'govmail-postfix-sasl']]`` (one list per address asked)."""
    try:
        parsed = ast.literal_eval(answer.strip() or "[]")
    except (ValueError, SyntaxError):
        raise BanError(f"{CLIENT} banned answered {answer.strip()[:80]!r}, not a list of jails") from None
    if parsed and isinstance(parsed[0], list):
        parsed = parsed[0]
    return sorted(str(jail) for jail in parsed)


def _ask(runner: remote.Runner, *args: str) -> str:
    completed = runner.run([CLIENT, *args], timeout=60)
    if completed.returncode != 0:
        lines = (completed.stderr or completed.stdout).strip().splitlines() or [f"exit {completed.returncode}"]
        if completed.returncode in (126, 127) or "not found" in lines[-1]:
            raise BanError(f"fail2ban is not installed on {runner.description}: run playbooks/site.yml")
        raise BanError(f"{CLIENT} {' '.join(args)} on {runner.description} failed: {lines[-1]}")
    return completed.stdout


def unban(site: Site, address: str, runner_for: Callable[[Site, str], remote.Runner] | None = None) -> dict[str, Any]:
    """Lift every ban of ``address`` on every host of :func:`hosts`.

    Returns ``{"address": A, "unbanned": [{"host": H, "jails": [J, ...]}, ...]}``: one entry per
    host that runs fail2ban, ``jails`` the jails that banned the address there (``[]``: it was not
    banned on that host). Raises :class:`BanError` for a malformed address, a site without such
    hosts, or a host whose fail2ban does not answer; :class:`govmail.errors.RemoteError` when a
    host cannot be reached.
    """
    address = parse_address(address)
    runner_for = runner_for or remote.host_runner
    names = hosts(site)
    if not names:
        raise BanError(
            f"inventory {site.inventory_dir} has no host in the mx, mailstore or webmail groups: nothing runs fail2ban"
        )
    unbanned = []
    for name in names:
        runner = runner_for(site, name)
        jails = _jails(_ask(runner, "banned", address))
        _ask(runner, "unban", address)  # also where no jail lists it: a no-op answered 0
        unbanned.append({"host": name, "jails": jails})
    return {"address": address, "unbanned": unbanned}

"""Logins from the host this runs on (a container of the stack's own network, not the controller).

Copied with ``clients.py`` into that container by ``test_bruteforce.py`` and run with its python3:

    python3 logins_from_here.py '{"protocol": "imaps", "address": "172.29.42.2", "port": 993,
        "hostname": "mail.quangtri.gov.vn", "ca": "/etc/ssl/govmail/ca.crt",
        "user": "a@b", "password": "...", "times": 3}'

Prints one JSON list, an outcome per attempt: "ok" (logged in), "refused" (the server refused the
login), "connection refused" (what a ban answers: fail2ban's nftables action rejects), "timeout",
or "error: <text>". Protocols: imaps (993), imap (143, STARTTLS), pop3s (995), managesieve (4190,
STARTTLS), submission (587, STARTTLS + AUTH PLAIN), connect (a bare TCP connection, "ok" if it opens),
webmail (443: Roundcube's login form as a browser posts it, see :func:`webmail_login`; a refusal is
"refused: <the message the login page shows>"), webmail-post (443: one POST to the login form's
address without credentials, which Roundcube answers with its login page and does not log as a
failed login; the outcome is "HTTP <status>", see :func:`webmail_post`). With ``"parallel": true``
the attempts are made at once, each from its own thread (outcomes in attempt order).
"""

from __future__ import annotations

import html
import http.client
import imaplib
import json
import poplib
import re
import smtplib
import socket
import ssl
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import clients


def attempt(spec: dict, context: ssl.SSLContext) -> str:
    address, hostname, port = spec["address"], spec["hostname"], spec["port"]
    user, password = spec.get("user", ""), spec.get("password", "")
    protocol = spec["protocol"]
    if protocol == "connect":
        socket.create_connection((address, port), clients.CONNECT_TIMEOUT).close()
        return "ok"
    if protocol in ("imaps", "imap"):
        if protocol == "imaps":
            client = clients.IMAP_SSL(address, hostname, port, context)
        else:
            client = clients.IMAP(address, hostname, port)
            client.starttls(ssl_context=context)
        try:
            client.login(user, password)
            return "ok"
        except imaplib.IMAP4.error:
            return "refused"
        finally:
            client.shutdown()
    if protocol == "pop3s":
        client = clients.POP3_SSL(address, hostname, port, context)
        try:
            client.user(user)
            client.pass_(password)
            return "ok"
        except poplib.error_proto:
            return "refused"
        finally:
            client.close()
    if protocol == "managesieve":
        client = clients.ManageSieve(address, hostname, port)
        try:
            client.starttls(context)
            return "ok" if client.authenticate(user, password).upper().startswith("OK") else "refused"
        finally:
            client.close()
    if protocol == "submission":
        client = clients.SMTP(address, hostname, port)
        try:
            client.ehlo("client.example")
            client.starttls(context=context)
            client.ehlo("client.example")
            client.user, client.password = user, password
            client.auth("PLAIN", client.auth_plain)  # one attempt per login (login() goes on to LOGIN)
            return "ok"
        except smtplib.SMTPAuthenticationError:
            return "refused"
        finally:
            client.close()
    if protocol == "webmail-post":
        return webmail_post(spec, context)
    if protocol == "webmail":
        return webmail_login(spec, context)
    raise ValueError(f"unknown protocol {protocol!r}")


def _https(spec: dict, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    """A connection to the webmail's address that verifies its certificate for the mail host name."""
    connection = http.client.HTTPSConnection(spec["address"], spec["port"], context=context,
                                             timeout=clients.CONNECT_TIMEOUT)  # fmt: skip
    raw = socket.create_connection((spec["address"], spec["port"]), clients.CONNECT_TIMEOUT)
    connection.sock = context.wrap_socket(raw, server_hostname=spec["hostname"])
    return connection


def webmail_login(spec: dict, context: ssl.SSLContext) -> str:
    """One Roundcube login as a browser does it: GET the login page (session cookie, the form's
    _token), POST the form. "ok" when Roundcube redirects into the mailbox; otherwise "refused: "
    and the message the page shows (rcmail.display_message's text, e.g. "Không đăng nhập được").
    ``spec["headers"]`` (optional): more request headers, sent with both requests."""
    headers = {"Host": spec["hostname"], "User-Agent": "govmail-tests", "Accept-Language": "vi",
               **spec.get("headers", {})}  # fmt: skip
    connection = _https(spec, context)
    try:
        connection.request("GET", "/", headers=headers)
        page = connection.getresponse()
        body = page.read().decode()
        cookies = "; ".join(value.split(";", 1)[0] for name, value in page.getheaders() if name.lower() == "set-cookie")
        token = re.search(r'name="_token" value="([^"]+)"', body)[1]
        form = urllib.parse.urlencode({"_token": token, "_task": "login", "_action": "login",
                                       "_timezone": "Asia/Ho_Chi_Minh", "_url": "", "_user": spec["user"],
                                       "_pass": spec["password"]})  # fmt: skip
        connection.request("POST", "/?_task=login", body=form, headers={
            **headers, "Cookie": cookies, "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        answer = connection.getresponse()
        text = answer.read().decode()
    finally:
        connection.close()
    if answer.status in (301, 302) and "_task=mail" in (answer.getheader("Location") or ""):
        return "ok"
    shown = re.search(r'display_message\("((?:[^"\\]|\\.)*)"', text)
    return "refused: " + (html.unescape(json.loads(f'"{shown[1]}"')) if shown else f"HTTP {answer.status}")


def webmail_post(spec: dict, context: ssl.SSLContext) -> str:
    """One POST to Roundcube's login form address (``/?_task=login``) with no credentials and no
    session: what nginx's per-address pace counts (roles/webmail, limit_req), while Roundcube,
    seeing no login action, shows its login page without logging a failed login (so fail2ban
    stays out of it). Returns "HTTP <status>": 200 (served, perhaps after a delay), or for a
    refusal "HTTP 429: <the page's title>" (the role's page in Vietnamese, not nginx's own)."""
    connection = _https(spec, context)
    try:
        connection.request("POST", "/?_task=login", body="", headers={
            "Host": spec["hostname"], "User-Agent": "govmail-tests",
            "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        answer = connection.getresponse()
        body = answer.read()
    finally:
        connection.close()
    if answer.status == 429:
        title = re.search(rb"<title>(.*?)</title>", body, re.S)
        said = title.group(1).decode("utf-8", "replace").strip() if title else repr(body[:80])
        return f"HTTP 429: {said}"
    return f"HTTP {answer.status}"


def outcome(spec: dict, context: ssl.SSLContext) -> str:
    """One attempt's outcome, its failures named as the module docstring lists them."""
    try:
        return attempt(spec, context)
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return "timeout"
    except (OSError, EOFError, ssl.SSLError, smtplib.SMTPException, imaplib.IMAP4.error) as exc:
        return f"error: {type(exc).__name__}: {exc}"


def main() -> None:
    spec = json.loads(sys.argv[1])
    context = ssl.create_default_context(cafile=spec["ca"])
    times = spec.get("times", 1)
    if spec.get("parallel"):
        with ThreadPoolExecutor(max_workers=times) as pool:
            outcomes = list(pool.map(lambda _: outcome(spec, context), range(times)))
    else:
        outcomes = [outcome(spec, context) for _ in range(times)]
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()

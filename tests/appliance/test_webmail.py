"""The webmail over HTTP(S) as a browser meets it (issue 12, REQUIREMENTS A1, A5).

Plain HTTP only redirects to https://<mail host name>/ (the CRL path excepted: test_crl.py); HTTPS
serves Roundcube in Vietnamese with the appliance's certificate (TLS versions and the certificate:
test_tls.py, the auditor's scan: test_tls_scan.py), the security headers and hardened session
cookies. The address book's search attribute (``govmailAsciiName``) is found without diacritics,
for the seeded directory and for a person `account add` creates. The browser tests are in
test_webmail_browser.py.
"""

from __future__ import annotations

import http.client
import re
import socket

import pytest
from conftest import site_base_dn


def _https(address, port, hostname, tls) -> http.client.HTTPSConnection:
    """A connection to the published 443 that verifies the certificate for the mail host name."""
    connection = http.client.HTTPSConnection(address, port("https"), context=tls, timeout=30)
    # connect to 127.0.0.1 but verify and send SNI for the mail host name
    connection.sock = tls.wrap_socket(
        socket.create_connection((address, port("https")), timeout=30), server_hostname=hostname
    )
    return connection


def _get(connection, path: str, hostname: str) -> http.client.HTTPResponse:
    connection.request("GET", path, headers={"Host": hostname, "User-Agent": "govmail-tests"})
    response = connection.getresponse()
    response.read()
    return response


@pytest.fixture(scope="module")
def login_page(address, port, hostname, tls):
    """Roundcube's login page: (response, body as text)."""
    connection = _https(address, port, hostname, tls)
    try:
        connection.request("GET", "/", headers={"Host": hostname, "User-Agent": "govmail-tests"})
        response = connection.getresponse()
        return response, response.read().decode("utf-8")
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/", "/?_task=mail&_mbox=INBOX", "/pki/"], ids=["root", "query", "crl-directory"])
def test_plain_http_answers_only_with_a_redirect_to_https(address, port, hostname, path):
    connection = http.client.HTTPConnection(address, port("http"), timeout=30)
    try:
        response = _get(connection, path, hostname)
    finally:
        connection.close()
    if path == "/pki/":  # the CRL's directory is served over HTTP, but lists nothing
        assert response.status in (403, 404)
        return
    assert response.status == 301
    assert response.getheader("Location") == f"https://{hostname}{path}"


def test_login_page_is_roundcube_in_vietnamese(login_page):
    response, body = login_page
    assert response.status == 200
    assert response.getheader("Content-Type").lower().replace(" ", "") == "text/html;charset=utf-8"
    assert re.search(r'<html[^>]* lang="vi"', body), body[:500]
    assert 'name="_user"' in body and 'name="_pass"' in body
    assert "Đăng nhập" in body  # the login button's label in vi_VN


# header -> a rule its value must satisfy (each header sent exactly once)
SECURITY_HEADERS = {
    "Strict-Transport-Security": lambda v: int(re.fullmatch(r"max-age=(\d+)(; ?includeSubDomains)?", v)[1]) >= 31536000,
    "X-Frame-Options": lambda v: v.upper() == "SAMEORIGIN",
    "X-Content-Type-Options": lambda v: v == "nosniff",
    "Referrer-Policy": lambda v: v in ("no-referrer", "same-origin", "strict-origin"),
    "Content-Security-Policy": lambda v: (
        "frame-ancestors 'self'" in v and "object-src 'none'" in v and re.search(r"default-src 'self'(;|$)", v)
    ),
}


@pytest.mark.parametrize("header", SECURITY_HEADERS)
def test_https_answers_carry_the_security_header_once(login_page, header):
    response, _ = login_page
    values = [value for name, value in response.getheaders() if name.lower() == header.lower()]
    assert len(values) == 1, f"{header}: {values}"
    assert SECURITY_HEADERS[header](values[0]), f"{header}: {values[0]}"


def test_session_cookie_is_secure_httponly_and_samesite(login_page):
    response, _ = login_page
    cookies = [value for name, value in response.getheaders() if name.lower() == "set-cookie"]
    session = [c for c in cookies if c.startswith("roundcube_sessid=")]
    assert session, cookies
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in session[0].split(";")[1:]}
    assert "secure" in attributes and "httponly" in attributes, session[0]
    assert attributes.get("samesite", "").lower() in ("samesite=strict", "samesite=lax"), session[0]


def test_server_does_not_name_its_version(login_page):
    response, _ = login_page
    assert response.getheader("Server") == "nginx"
    assert response.getheader("X-Powered-By") is None


@pytest.mark.parametrize("path", ["/config/config.inc.php", "/temp/", "/logs/", "/composer.json"])
def test_roundcube_internals_are_not_served(address, port, hostname, tls, path):
    connection = _https(address, port, hostname, tls)
    try:
        assert _get(connection, path, hostname).status in (403, 404)
    finally:
        connection.close()


# --- the address book's search without diacritics (M9): what Roundcube's LDAP address book sends --


def _address_book_search(ldap_admin, words: str) -> list[str]:
    """The names a Roundcube search for ``words`` finds: per word (cn|mail|govmailAsciiName)=*word*, ANDed."""
    from ldap3.utils.conv import escape_filter_chars

    groups = "".join(
        f"(|(cn=*{w}*)(mail=*{w}*)(govmailAsciiName=*{w}*))" for w in map(escape_filter_chars, words.split())
    )
    base, wanted = f"ou=agencies,{site_base_dn()}", f"(&(objectClass=govmailMailbox)(govmailStatus=active){groups})"
    ldap_admin.search(base, wanted, attributes=["cn"])
    return [str(entry.cn) for entry in ldap_admin.entries]


@pytest.mark.parametrize("words", ["nguyen van long", "long", "Nguyễn", "NGUYEN Văn"])
def test_the_seeded_directory_is_found_without_diacritics(ldap_admin, words):
    assert "Nguyễn Văn Long" in _address_book_search(ldap_admin, words)


def test_account_add_writes_the_name_without_diacritics(new_agency, ldap_admin):
    agency = new_agency("Phòng Thử nghiệm Danh bạ", "danhba")
    agency.person("Đặng Thị Hạnh")
    assert "Đặng Thị Hạnh" in _address_book_search(ldap_admin, "dang thi hanh")

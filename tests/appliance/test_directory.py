"""The directory: anonymous clients learn nothing but the root DSE; passwords only over TLS."""

from __future__ import annotations

import ssl

import ldap3
import pytest
from conftest import site_base_dn
from ldap3.core.exceptions import LDAPException


def _server(address, port, service, hostname, ca):
    tls = ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=ca,
        version=ssl.PROTOCOL_TLS_CLIENT,
        valid_names=[hostname],
    )
    return ldap3.Server(
        address, port=port(service), use_ssl=service == "ldaps", tls=tls, get_info=ldap3.NONE, connect_timeout=20
    )


@pytest.fixture
def ldaps(address, port, hostname, creds):
    return _server(address, port, "ldaps", hostname, creds["ca_certificate"])


@pytest.fixture
def ldap_starttls(address, port, hostname, creds):
    return _server(address, port, "ldap", hostname, creds["ca_certificate"])


def test_anonymous_client_reads_the_root_dse(ldaps):
    conn = ldap3.Connection(ldaps, auto_bind=True)
    conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["namingContexts"])
    assert conn.entries, "the root DSE must be readable"


def test_anonymous_client_reads_no_mailbox(ldaps, domain, alice):
    conn = ldap3.Connection(ldaps, auto_bind=True)
    conn.search(site_base_dn(), f"(mail={alice['address']})", attributes=["cn", "mail"])
    assert conn.entries == []
    conn.search(site_base_dn(), "(objectClass=*)")
    assert conn.entries == []


def test_user_authenticates_over_ldaps_and_reads_the_address_book(ldaps, domain, alice, bob):
    conn = ldap3.Connection(ldaps, user=_dn_of(ldaps, domain, alice), password=alice["password"], auto_bind=True)
    conn.search(f"ou=agencies,{site_base_dn()}", f"(mail={bob['address']})", attributes=["cn", "userPassword"])
    assert len(conn.entries) == 1
    assert conn.entries[0].cn.value == bob["name"]
    assert "userPassword" not in conn.entries[0].entry_attributes_as_dict or not conn.entries[0].userPassword.values


def _dn_of(server, domain, account):
    return f"uid={account['address'].split('@')[0]},ou={account['agency']},ou=agencies,{site_base_dn()}"


def test_simple_bind_without_tls_is_refused(ldap_starttls, domain, alice):
    conn = ldap3.Connection(ldap_starttls, user=_dn_of(ldap_starttls, domain, alice), password=alice["password"])
    conn.open()
    assert not conn.bind()
    assert conn.result["description"] == "confidentialityRequired"


def test_simple_bind_after_starttls_succeeds(ldap_starttls, domain, alice):
    conn = ldap3.Connection(ldap_starttls, user=_dn_of(ldap_starttls, domain, alice), password=alice["password"])
    conn.open()
    assert conn.start_tls()
    assert conn.bind()


def test_admin_binds_over_ldaps(ldaps, creds):
    try:
        conn = ldap3.Connection(
            ldaps, user=creds["ldap_admin"]["dn"], password=creds["ldap_admin"]["password"], auto_bind=True
        )
    except LDAPException as exc:  # pragma: no cover - shown on failure
        pytest.fail(f"admin bind failed: {exc}")
    assert conn.extend.standard.who_am_i() == f"dn:{creds['ldap_admin']['dn']}"

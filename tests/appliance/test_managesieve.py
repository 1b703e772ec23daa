"""ManageSieve (filters, vacation) on 4190: login only after STARTTLS."""

from __future__ import annotations

import clients


def test_managesieve_refuses_login_before_starttls(address, hostname, port, alice):
    client = clients.ManageSieve(address, hostname, port("managesieve"))
    try:
        assert any(line.startswith('"STARTTLS"') for line in client.capabilities)
        assert client.authenticate(alice["address"], alice["password"]).upper().startswith("NO")
    finally:
        client.close()


def test_managesieve_accepts_login_after_starttls(address, hostname, port, tls, alice):
    client = clients.ManageSieve(address, hostname, port("managesieve"))
    try:
        assert client.starttls(tls).upper().startswith("OK")
        assert client.authenticate(alice["address"], alice["password"]).upper().startswith("OK")
    finally:
        client.close()

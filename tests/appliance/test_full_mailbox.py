"""A full mailbox: refused at RCPT under every address that leads to it; its owner can still clean up.

Issue 10, faults 2 and 4. Uses the third demo person (conftest's full_mailbox fixture).
"""

from __future__ import annotations

import re
import uuid

import ldap3
import pytest
from conftest import imap_fetch, mailbox_dn, make_message


@pytest.fixture
def alias(ldap_admin, domain, personal):
    """A fresh alias of the third person (govmailAlias), removed afterwards."""
    account = personal[2]
    dn = mailbox_dn(domain, account)
    name = f"bi-danh-{uuid.uuid4().hex[:6]}@{domain}"
    ldap_admin.modify(dn, {"govmailAlias": [(ldap3.MODIFY_ADD, [name])]})
    assert ldap_admin.result["description"] == "success", ldap_admin.result
    yield name
    ldap_admin.modify(dn, {"govmailAlias": [(ldap3.MODIFY_DELETE, [name])]})


# --- fault 2: the quota check applies to the final mailbox, whatever address was used --------


def test_alias_of_a_mailbox_with_room_is_accepted_at_rcpt(smtp, alias):
    smtp.ehlo("mx.example.org")
    smtp.mail("van.thu@ubnd.example.org", options=["SIZE=2000"])
    code, text = smtp.rcpt(alias)
    assert code == 250, text


@pytest.mark.parametrize("form", ["mailbox", "alias", "alias+tag", "mailbox+tag", "ALIAS", "mailbox.", "ALIAS+tag."])
def test_every_address_of_a_full_mailbox_is_refused_at_rcpt(form, smtp, alias, full_mailbox):
    local, domain = alias.split("@")
    own_local = full_mailbox["address"].split("@")[0]
    recipient = {
        "mailbox": full_mailbox["address"],
        "alias": alias,
        "alias+tag": f"{local}+baocao@{domain}",
        "mailbox+tag": f"{own_local}+baocao@{domain}",
        "ALIAS": alias.upper(),
        # a domain ending with a dot: Postfix resolves it to the mailbox, the quota check must too
        "mailbox.": f"{full_mailbox['address']}.",
        "ALIAS+tag.": f"{local.upper()}+baocao@{domain.upper()}.",
    }[form]
    smtp.ehlo("mx.example.org")
    smtp.mail("van.thu@ubnd.example.org", options=["SIZE=2000"])
    code, text = smtp.rcpt(recipient)
    assert code == 552, (recipient, text)
    assert b"Mailbox is full" in text


# --- fault 4: a full mailbox can still be cleaned up (moved to Trash), nothing else grows ------


def _uid_of(client, message_id: str) -> bytes:
    client.select("INBOX")
    typ, data = client.uid("SEARCH", "HEADER", "Message-ID", message_id)
    assert typ == "OK" and data[0], data
    return data[0].split()[-1]


def test_moving_a_message_to_trash_works_over_quota(imaps, full_mailbox):
    client = imaps(full_mailbox)
    uid = _uid_of(client, full_mailbox["filler_id"])
    typ, data = client.uid("MOVE", uid, "Trash")
    assert typ == "OK", data
    assert imap_fetch(client, full_mailbox["filler_id"], mailbox="Trash") is not None
    assert imap_fetch(client, full_mailbox["filler_id"], mailbox="INBOX") is None


def test_copying_a_message_to_trash_works_over_quota(imaps, full_mailbox):
    client = imaps(full_mailbox)
    uid = _uid_of(client, full_mailbox["filler_id"])
    typ, data = client.uid("COPY", uid, "Trash")
    assert typ == "OK", data
    assert imap_fetch(client, full_mailbox["filler_id"], mailbox="Trash") is not None


def test_append_to_another_folder_is_still_refused_over_quota(imaps, full_mailbox):
    client = imaps(full_mailbox)
    draft = make_message(full_mailbox["address"], "a@example.org", "Nháp", "x" * 4000 + "\n").as_bytes()
    typ, data = client.append("Drafts", None, None, draft)
    assert typ == "NO", data
    assert re.search(rb"OVERQUOTA|[Qq]uota", b" ".join(data)), data


def test_copying_to_another_folder_is_still_refused_over_quota(imaps, full_mailbox):
    client = imaps(full_mailbox)
    uid = _uid_of(client, full_mailbox["filler_id"])
    typ, data = client.uid("COPY", uid, "Drafts")
    assert typ == "NO", data

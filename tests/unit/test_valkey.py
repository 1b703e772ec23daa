"""govmail.valkey's RESP2 replies and the manifest comparison of the filter's state (issue 11).

The server itself is exercised for real in tests/appliance/test_backup.py (a snapshot, a lost
store, the restore); here only what needs no server: the reply parser over a socket pair, the
canonical form of values, and what ``compare`` says about the filter.
"""

from __future__ import annotations

import socket

import pytest

from govmail import backup, valkey


def client_with(answer: bytes) -> valkey.Valkey:
    """A Valkey client whose server side has already written ``answer``."""
    ours, theirs = socket.socketpair()
    theirs.sendall(answer)
    client = valkey.Valkey.__new__(valkey.Valkey)
    client.address, client._socket, client._reader = "test", ours, ours.makefile("rb")
    client._peer = theirs  # kept open for the test's length
    return client


def test_every_reply_type_of_a_pipeline_is_read_in_order():
    client = client_with(b"+OK\r\n:-1\r\n$5\r\nhe\r\nl\r\n$-1\r\n*2\r\n$1\r\n0\r\n*1\r\n$2\r\nRS\r\n")
    assert client.pipeline([["PING"], ["PTTL", "k"], ["GET", "k"], ["GET", "x"], ["SCAN", "0"]]) == [
        b"OK", -1, b"he\r\nl", None, [b"0", [b"RS"]],
    ]  # fmt: skip


def test_an_error_reply_is_raised_after_the_whole_pipeline_was_read():
    client = client_with(b"-LOADING Valkey is loading the dataset in memory\r\n+PONG\r\n")
    with pytest.raises(valkey.ValkeyError, match="Valkey at test: LOADING Valkey is loading"):
        client.pipeline([["SCAN", "0"], ["PING"]])


def test_a_closed_connection_is_an_error_not_an_empty_reply():
    client = client_with(b"+O")
    client._peer.shutdown(socket.SHUT_WR)
    with pytest.raises(valkey.ValkeyError, match="closed the connection"):
        client("PING")


def test_the_canonical_form_ignores_the_order_of_hash_fields_and_set_members_but_not_of_lists():
    assert valkey._canonical(b"hash", [b"S", b"3", b"H", b"1"]) == valkey._canonical(b"hash", [b"H", b"1", b"S", b"3"])
    assert valkey._canonical(b"set", [b"b", b"a"]) == [b"a", b"b"]
    assert valkey._canonical(b"list", [b"b", b"a"]) == [b"b", b"a"]


MANIFEST = {"mailboxes": {}, "directory": {"entries": 0, "digest": ""}, "filter": {"keys": 42, "digest": "d" * 64,
            "sha256": "f" * 64}}  # fmt: skip


def test_compare_names_a_filter_state_that_differs_from_the_manifest():
    live = backup.compare(MANIFEST, {}, {"entries": 0, "digest": ""}, {"keys": 3, "digest": "e" * 64})
    assert live["filter"] == {"keys": 42, "ok": False}
    assert live["mismatches"] == [
        "filter (Valkey): 3 keys, digest eeeeeeeeeeee... here, the manifest says 42 keys, digest dddddddddddd..."
    ]
    archived = backup.compare(MANIFEST, {}, {"entries": 0, "digest": ""}, {"sha256": "f" * 64})
    assert archived["filter"] == {"keys": 42, "ok": True} and archived["mismatches"] == []
    missing = backup.compare(MANIFEST, {}, {"entries": 0, "digest": ""}, None)
    assert missing["mismatches"] == ["filter (Valkey): nothing here, the manifest says 42 keys, digest dddddddddddd..."]


def test_an_archive_without_the_filter_compares_as_before():
    older = {key: value for key, value in MANIFEST.items() if key != "filter"}
    assert backup.compare(older, {}, {"entries": 0, "digest": ""}, None)["filter"] is None


@pytest.mark.parametrize(
    ("key", "learned"),
    [("RS", True), ("RS_7321885098996805108", True), ("BAYES_SPAM_keys", True), ("BAYES_HAM_keys", True),
     ("learned_ids", True), ("rs_historygovmail-mol-mail1_zst", False), ("rn2_default_1_default", False),
     ("RL_cache_prefix", False), ("rr8nakd3tro5icdgj3fyck", False)],
)  # fmt: skip
def test_the_digest_covers_the_bayes_keys_and_not_what_every_scan_rewrites(key, learned):
    """Keys found in the lab's Valkey: Bayes' (changed only by learning) and those Rspamd rewrites
    with every scanned message (history, neural, rate limits, replies)."""
    client = client_with(b"*2\r\n$1\r\n0\r\n*1\r\n$%d\r\n%s\r\n:-1\r\n+hash\r\n" % (len(key), key.encode()))
    batches = list(valkey._persistent_keys(client))
    assert batches == ([[(key.encode(), b"hash")]] if learned else [])


def test_a_filter_store_that_gives_no_snapshot_leaves_only_its_state_out(tmp_path, monkeypatch, capsys):
    """The backup goes on with the mail (the manifest's ``filter`` is None) and says why on stderr."""

    def refused(address, target):
        target.parent.mkdir()
        target.write_bytes(b"REDIS0011 torn")  # what a broken transfer may leave
        raise backup.BackupError(f"the filter's Valkey at {address} gave no snapshot: Connection refused")

    monkeypatch.setattr(valkey, "snapshot", refused)
    assert backup.stage_filter("127.0.0.1:6379", tmp_path) is None
    assert not (tmp_path / "filter").exists()
    assert capsys.readouterr().err == (
        "govmail-backup: warning: the filter's learned state is not in this archive: the filter's Valkey at "
        "127.0.0.1:6379 gave no snapshot: Connection refused\n"
    )

"""govmail.dkim: the site's DKIM key, generated once with the secrets; its TXT record; the lookup."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from govmail import dkim


def test_the_key_is_generated_once_in_the_secrets_directory(tmp_path):
    path = dkim.ensure_key(tmp_path, "QuangTri.gov.vn", "govmail")
    assert path == tmp_path / "dkim" / "quangtri.gov.vn.govmail.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = path.read_bytes()
    assert dkim.ensure_key(tmp_path, "quangtri.gov.vn", "govmail").read_bytes() == first  # never replaced
    key = serialization.load_pem_private_key(first, password=None)
    assert key.key_size == 2048


def test_the_txt_record_carries_the_public_half(tmp_path):
    path = dkim.ensure_key(tmp_path, "quangtri.gov.vn", "govmail")
    value = dkim.txt_value(path)
    assert value.startswith("v=DKIM1; k=rsa; p=")
    public = serialization.load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert public.public_numbers() == private.public_key().public_numbers()


@pytest.mark.parametrize("selector", ["", "two.labels", "-dash", "x" * 64], ids=["empty", "dotted", "dash", "long"])
def test_a_selector_that_is_not_one_dns_label_is_named(tmp_path, selector):
    with pytest.raises(dkim.DkimError, match="govmail_dkim_selector is"):
        dkim.ensure_key(tmp_path, "quangtri.gov.vn", selector)


def test_an_unreadable_key_is_named(tmp_path):
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(dkim.DkimError, match=f"the DKIM key {tmp_path / 'bad.key'} cannot be read"):
        dkim.txt_value(tmp_path / "bad.key")


def test_the_backups_recovery_bundle_carries_the_key(tmp_path):
    """roles/backup archives govmail.recovery.pack(govmail_secrets_dir) with every backup."""
    from govmail import recovery

    path = dkim.ensure_key(tmp_path / "secrets", "quangtri.gov.vn", "govmail")
    restored = tmp_path / "restored"
    written = recovery.unpack(recovery.pack(tmp_path / "secrets"), restored)
    assert "dkim/quangtri.gov.vn.govmail.key" in [str(name) for name in written]
    assert (restored / "dkim" / "quangtri.gov.vn.govmail.key").read_bytes() == path.read_bytes()

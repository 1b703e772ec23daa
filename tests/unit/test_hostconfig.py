"""The host program's JSON configuration files: one reader, one kind of error line."""

from __future__ import annotations

import pytest

from govmail import hostconfig
from govmail.errors import BackupError
from govmail.usage import UsageError


def test_an_object_is_returned_as_it_is(tmp_path):
    path = tmp_path / "usage.json"
    path.write_text('{"dir": "/var/lib/govmail/usage", "afternoon_from": 12}', encoding="utf-8")
    assert hostconfig.read(path, UsageError) == {"dir": "/var/lib/govmail/usage", "afternoon_from": 12}


def test_a_missing_file_names_it_and_the_playbook_that_writes_it(tmp_path):
    path = tmp_path / "backup.json"
    with pytest.raises(BackupError) as caught:
        hostconfig.read(path, BackupError, "playbooks/backup.yml")
    assert str(caught.value) == f"configuration {path} does not exist: deploy playbooks/backup.yml on this host"


@pytest.mark.parametrize(("text", "reason"), [("{not json", "not JSON"), ('["a list"]', "not a JSON object")])
def test_a_broken_file_says_why_and_to_converge_again(tmp_path, text, reason):
    path = tmp_path / "usage.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=rf"^configuration {path} cannot be read: {reason}.*converge playbooks/site"):
        hostconfig.read(path, UsageError)

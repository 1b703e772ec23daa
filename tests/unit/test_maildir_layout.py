"""The dovecot role's Maildir++ -> fs layout migration, on Maildirs built in a temporary directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["comment"] = lambda text: f"# {text}"
    template = (ROOT / "roles/dovecot/templates/maildir-layout.j2").read_text()
    path = tmp_path_factory.mktemp("bin") / "maildir-layout"
    path.write_text(environment.from_string(template).render(ansible_managed="managed"))
    return path


def run(script: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, str(script), *args, "--json"], capture_output=True, text=True, check=False)
    return done.returncode, json.loads(done.stdout)


def folder(maildir: Path, name: str, messages: dict[str, str]) -> Path:
    path = maildir / name
    for part in ("cur", "new", "tmp"):
        (path / part).mkdir(parents=True, exist_ok=True)
    (path / "maildirfolder").touch()
    (path / "dovecot-uidlist").write_text("3 V1 N2\n")
    for filename, text in messages.items():
        (path / "cur" / filename).write_text(text)
    return path


@pytest.fixture
def old_maildir(tmp_path) -> Path:
    maildir = tmp_path / "vmail" / "example.test" / "lan" / "Maildir"
    folder(maildir, "", {"1.M1.host:2,S": "inbox"})
    folder(maildir, ".Sent", {"2.M2.host:2,S": "sent"})
    folder(maildir, ".D&HvE- &AOE-n.C&Hqc-u", {"3.M3.host:2,FSa": "nested"})  # Dự án/Cầu, no parent folder
    (maildir / "subscriptions").write_text("V\t2\n\nSent\nD&HvE- &AOE-n\tC&Hqc-u\n")
    (maildir / "dovecot.list.index").write_text("stale")
    return maildir


def test_old_folders_move_into_directories_with_their_mail_and_flags(script, old_maildir):
    code, report = run(script, "migrate", str(old_maildir.parents[2]))
    assert code == 0
    assert report == {"lan@example.test": {"conflicts": [], "moved": ["Sent", "D&HvE- &AOE-n/C&Hqc-u"]}}
    assert (old_maildir / "Sent/cur/2.M2.host:2,S").read_text() == "sent"
    assert (old_maildir / "D&HvE- &AOE-n/C&Hqc-u/cur/3.M3.host:2,FSa").read_text() == "nested"
    assert (old_maildir / "D&HvE- &AOE-n/C&Hqc-u/dovecot-uidlist").is_file()
    assert (old_maildir / "cur/1.M1.host:2,S").read_text() == "inbox"
    assert (old_maildir / "subscriptions").read_text() == "V\t2\n\nSent\nD&HvE- &AOE-n\tC&Hqc-u\n"
    assert not (old_maildir / "dovecot.list.index").exists()
    assert not list(old_maildir.glob(".[!.]*"))


def test_second_run_finds_nothing_to_do(script, old_maildir):
    run(script, "migrate", str(old_maildir.parents[2]))
    assert run(script, "check", str(old_maildir.parents[2])) == (0, {})
    assert run(script, "migrate", str(old_maildir.parents[2])) == (0, {})


def test_check_lists_without_moving(script, old_maildir):
    code, report = run(script, "check", str(old_maildir.parents[2]))
    assert code == 0 and report["lan@example.test"]["old_folders"] == [".Sent", ".D&HvE- &AOE-n.C&Hqc-u"]
    assert (old_maildir / ".Sent").is_dir()


def test_an_empty_folder_of_the_new_layout_gives_way_but_one_with_mail_is_a_conflict(script, old_maildir):
    folder(old_maildir, "Sent", {})  # auto-created at a login under the new layout, empty
    folder(old_maildir, ".Drafts", {"4.M4.host:2,D": "draft"})
    folder(old_maildir, "Drafts", {"5.M5.host:2,": "newer"})
    code, report = run(script, "migrate", str(old_maildir.parents[2]))
    assert code == 1
    assert report["lan@example.test"]["conflicts"] == [".Drafts"]
    assert (old_maildir / "Sent/cur/2.M2.host:2,S").read_text() == "sent"
    assert (old_maildir / ".Drafts/cur/4.M4.host:2,D").read_text() == "draft"  # left where it was
    assert (old_maildir / "Drafts/cur/5.M5.host:2,").read_text() == "newer"


def test_a_folder_of_the_new_layout_named_with_a_leading_dot_is_left_alone(script, tmp_path):
    maildir = tmp_path / "vmail" / "example.test" / "lan" / "Maildir"
    hidden = folder(maildir, ".hidden", {"6.M6.host:2,S": "kept"})
    (hidden / "maildirfolder").unlink()  # Dovecot writes it only in Maildir++ folders
    assert run(script, "migrate", str(tmp_path / "vmail")) == (0, {})
    assert (maildir / ".hidden/cur/6.M6.host:2,S").read_text() == "kept"

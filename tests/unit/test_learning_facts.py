"""Users mark spam (C3): the mail store teaches the controller Rspamd listens on, with its password.

Rendered with Ansible's own templating (tests/unit/rendering.py) for an inventory that overrides
the shared fact govmail_filter_controller and the \\Junk folder's name.
"""

from __future__ import annotations

import re

from rendering import RoleView
from test_shared_facts import site_with  # noqa: F401 (fixture)

CONTROLLER = """\
---
govmail_filter_controller: "127.0.0.1:21334"
filter_controller_password: "S3cret!pw"
dovecot_filter_controller_password: "S3cret!pw"
"""


def test_the_mail_store_posts_users_verdicts_to_the_controller_rspamd_listens_on(site_with):  # noqa: F811
    site = site_with(CONTROLLER)
    controller = RoleView(site, "filter").render("etc/rspamd/override.d/worker-controller.inc.j2")
    learn = RoleView(site, "dovecot").render("rspamd-learn.j2")
    assert 'bind_socket = "127.0.0.1:21334";' in controller
    assert '"http://127.0.0.1:21334/learn$1"' in learn


def test_the_controller_needs_its_password_from_every_client_and_it_is_never_on_a_command_line(site_with):  # noqa: F811
    site = site_with(CONTROLLER)
    controller = RoleView(site, "filter").render("etc/rspamd/override.d/worker-controller.inc.j2")
    learn = RoleView(site, "dovecot").render("rspamd-learn.j2")
    assert 'password = "S3cret!pw";' in controller and 'enable_password = "S3cret!pw";' in controller
    assert "secure_ip = [];" in controller  # Debian's loopback exemption is gone
    assert "S3cret" not in learn
    assert "--header @/etc/dovecot/filter-controller.header" in learn


def test_bayes_learns_only_what_users_teach_it(site_with):  # noqa: F811
    bayes = RoleView(site_with(CONTROLLER), "filter").render("etc/rspamd/local.d/classifier-bayes.conf.j2")
    assert [line for line in bayes.splitlines() if line and not line.startswith("#")] == ["autolearn = false;"]


def test_the_imapsieve_scripts_watch_the_junk_folder_and_spare_trash(site_with):  # noqa: F811
    site = site_with(
        '---\ndovecot_special_folders:\n  - {name: Spam, special_use: "\\\\Junk"}\n'
        '  - {name: Deleted, special_use: "\\\\Trash"}\n' + CONTROLLER.removeprefix("---\n")
    )
    view = RoleView(site, "dovecot")
    dovecot = view.render("etc/dovecot/dovecot.conf.j2")
    assert re.search(r"^mailbox Spam \{\n  sieve_script learn-spam \{\n", dovecot, flags=re.M)
    assert re.search(r"^imapsieve_from Spam \{\n  sieve_script learn-ham \{\n", dovecot, flags=re.M)
    assert 'if string :is "${mailbox}" ["Deleted", "EXPUNGED"] {' in view.render("learn-ham.sieve.j2")

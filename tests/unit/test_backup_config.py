"""/etc/govmail/backup.json names the webmail's database on the host that runs it (issue 11).

Rendered with Ansible's own templating (tests/unit/rendering.py) from the lab's inventory and from
the same inventory with a second webmail host: one fact (govmail_webmail_database_type, _name,
govmail_webmail_sqlite_dir, derived from the webmail group) decides which client stages what.
"""

from __future__ import annotations

import json
import shutil

import yaml
from rendering import REPOSITORY, RoleView

from govmail.inventory import Site


def backup_json(site: Site, host: str) -> dict:
    return json.loads(RoleView(site, "backup", host).render("etc/govmail/backup.json.j2"))


def two_webmail(tmp_path) -> Site:
    """The lab's inventory with a second webmail host, web2."""
    inventory = tmp_path / "inventories" / "two-webmail"
    shutil.copytree(REPOSITORY / "inventories" / "lab", inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["hosts"]["web2"] = dict(hosts["all"]["hosts"]["mail1"], ansible_host="govmail-lab-web2")
    hosts["all"]["children"]["webmail"]["hosts"]["web2"] = None
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return Site(inventory, REPOSITORY)


def test_one_webmail_host_stages_roundcube_s_sqlite_file_where_dbconfig_common_made_it():
    lab = Site(REPOSITORY / "inventories" / "lab", REPOSITORY)
    config = backup_json(lab, "mail1")
    assert config["sqlite_databases"] == {"roundcube": "/var/lib/dbconfig-common/sqlite3/roundcube/roundcube"}
    assert config["postgresql_databases"] == []


def test_with_two_webmail_hosts_the_database_host_dumps_postgresql_and_nobody_stages_sqlite(tmp_path):
    site = two_webmail(tmp_path)
    config = backup_json(site, "mail1")
    assert config["postgresql_databases"] == ["roundcube"]
    assert config["sqlite_databases"] == {}
    assert backup_json(site, "web2")["postgresql_databases"] == []


def test_a_webmail_host_is_a_client_that_archives_its_logs_and_etc_but_no_mail_directory_or_data(tmp_path):
    """A webmail host of its own backs up its logs (O2) and /etc; it stages no mailbox, exports no
    directory, and mails a failed run to the first MX (it has no Postfix)."""
    site = two_webmail(tmp_path)
    assert site.backup_clients() == ["mail1", "web2"]
    web2, mail1 = backup_json(site, "web2"), backup_json(site, "mail1")
    assert (web2["vmail_dir"], web2["base_dn"], web2["data_paths"]) == ("", "", [])
    assert web2["paths"] == ["/etc", "/var/log"]
    assert web2["repository"].endswith("/web2/") and web2["username"] == "web2"
    assert web2["relay"] == "mail1:25"
    assert mail1["vmail_dir"] == "/var/vmail" and mail1["base_dn"] and len(mail1["data_paths"]) == 2


def test_backup_client_groups_of_the_inventory_decide_the_clients(tmp_path):
    site = lab_with(tmp_path, "---\nbackup_client_groups: [ldap]\n")
    assert site.backup_clients() == ["mail1"]


def lab_with(tmp_path, overrides: str) -> Site:
    """The lab's inventory with ``overrides`` (YAML) in group_vars/all."""
    inventory = tmp_path / "inventories" / "lab-copy"
    shutil.copytree(REPOSITORY / "inventories" / "lab", inventory)
    (inventory / "group_vars" / "all" / "overrides.yml").write_text(overrides)
    return Site(inventory, REPOSITORY)


def test_the_mx_host_archives_the_filter_s_valkey_and_rspamd_uses_the_same_address(tmp_path):
    """One fact (govmail_filter_valkey): the filter points Rspamd at it, the mx host's client snapshots it."""
    lab = Site(REPOSITORY / "inventories" / "lab", REPOSITORY)
    assert backup_json(lab, "mail1")["valkey"] == "127.0.0.1:6379"
    moved = lab_with(tmp_path, '---\ngovmail_filter_valkey: "127.0.0.1:16379"\n')
    assert backup_json(moved, "mail1")["valkey"] == "127.0.0.1:16379"
    assert 'servers = "127.0.0.1:16379";' in RoleView(moved, "filter", "mail1").render(
        "etc/rspamd/local.d/redis.conf.j2"
    )


def test_a_site_with_its_own_redis_archives_no_filter_state(tmp_path):
    site = lab_with(tmp_path, '---\ngovmail_filter_valkey: ""\nfilter_redis_servers: "redis.dc.example:6379"\n')
    assert backup_json(site, "mail1")["valkey"] == ""
    redis = RoleView(site, "filter", "mail1").render("etc/rspamd/local.d/redis.conf.j2")
    assert 'servers = "redis.dc.example:6379";' in redis

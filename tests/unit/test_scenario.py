"""molecule/default's group_vars: the lab's, plus what the scenario changes (one place each)."""

from __future__ import annotations

from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
SCENARIO = REPOSITORY / "molecule" / "default"
LAB_ALL = REPOSITORY / "inventories" / "lab" / "group_vars" / "all"


def test_every_file_of_the_lab_s_group_vars_all_is_linked_in_the_scenario():
    scenario_all = SCENARIO / "group_vars" / "all"
    for lab_file in sorted(LAB_ALL.iterdir()):
        linked = scenario_all / lab_file.name
        assert linked.is_symlink(), f"{linked} should link to {lab_file} (the scenario converges with the lab's values)"
        assert linked.resolve() == lab_file.resolve()


def test_the_scenario_s_webmail_database_host_is_a_webmail_platform_other_than_the_directory_host():
    platforms = yaml.safe_load((SCENARIO / "molecule.yml").read_text())["platforms"]
    groups = {platform["name"]: platform["groups"] for platform in platforms}
    host = yaml.safe_load((SCENARIO / "group_vars" / "all" / "scenario.yml").read_text())[
        "govmail_webmail_database_host"
    ]
    assert "webmail" in groups[host] and "ldap" not in groups[host]

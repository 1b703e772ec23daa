"""Finding the project directory: environment variable, walking up, editable checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from govmail.errors import ProjectError
from govmail.project import Project, find_project_dir


def test_environment_variable_wins(project: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_project_dir() == project.resolve()


def test_environment_variable_naming_no_directory_is_an_error(tmp_path: Path):
    with pytest.raises(ProjectError, match=r"GOVMAIL_PROJECT_DIR=.*nowhere is not a directory.*unset it"):
        find_project_dir(environ={"GOVMAIL_PROJECT_DIR": str(tmp_path / "nowhere")})


def test_walks_up_to_the_directory_holding_the_site_playbook(project: Path):
    nested = project / "roles" / "postfix" / "tasks"
    nested.mkdir(parents=True)
    assert find_project_dir(nested, environ={}) == project.resolve()


def test_falls_back_to_the_checkout_the_package_was_installed_from(tmp_path: Path):
    repo = Path(__file__).resolve().parents[2]
    assert find_project_dir(tmp_path, environ={}) == repo


def test_error_says_to_run_inside_the_repository(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("govmail.project._package_checkout", lambda: None)
    with pytest.raises(ProjectError, match=r"no govmail project found from .*set GOVMAIL_PROJECT_DIR"):
        find_project_dir(tmp_path, environ={})


def test_project_paths(project: Path):
    paths = Project.discover()
    assert paths.secrets_dir == project.resolve() / ".lab" / "secrets"
    assert paths.lab_inventory == project.resolve() / "inventories" / "lab"
    assert paths.ansible_cfg == project.resolve() / "ansible.cfg"


def test_secrets_dir_follows_its_environment_variable(project: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("GOVMAIL_SECRETS_DIR", str(tmp_path / "elsewhere"))
    assert Project.discover().secrets_dir == (tmp_path / "elsewhere").resolve()

"""Lab definitions that need no Docker engine: names, ports, image hash, state mapping."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import docker.errors
import pytest

from govmail import lab
from govmail.errors import DockerUnavailableError, LabError

MAIL1_PORTS = {
    "25/tcp": 10025,
    "465/tcp": 10465,
    "587/tcp": 10587,
    "110/tcp": 10110,
    "995/tcp": 10995,
    "143/tcp": 10143,
    "993/tcp": 10993,
    "4190/tcp": 14190,
    "389/tcp": 10389,
    "636/tcp": 10636,
    "80/tcp": 10080,
    "443/tcp": 10443,
}
HOSTS = {spec.name: spec for spec in lab.LAB_HOSTS}


@pytest.mark.parametrize(("port", "published"), MAIL1_PORTS.items(), ids=list(MAIL1_PORTS))
def test_mail1_publishes_each_service_on_localhost_only(port, published):
    assert HOSTS["mail1"].port_bindings()[port] == ("127.0.0.1", published)


def test_mail1_publishes_exactly_the_twelve_services():
    assert set(HOSTS["mail1"].port_bindings()) == set(MAIL1_PORTS)


def test_backup1_publishes_nothing():
    assert HOSTS["backup1"].port_bindings() == {}


def test_lab_has_mail1_and_backup1_with_contract_names():
    assert [(s.name, s.container) for s in lab.LAB_HOSTS] == [
        ("mail1", "govmail-lab-mail1"),
        ("backup1", "govmail-lab-backup1"),
    ]
    assert lab.NETWORK == "govmail-lab" and lab.SUBNET == "172.29.10.0/24"


def test_data_volumes_are_named_after_their_host():
    assert HOSTS["mail1"].volume("vmail") == "govmail-lab-mail1-vmail"
    assert set(HOSTS["mail1"].volumes.values()) == {"/var/vmail", "/var/lib/ldap"}


def test_run_flags_boot_systemd_without_privileged():
    assert lab.RUN_FLAGS["cgroupns"] == "private"
    assert lab.RUN_FLAGS["cap_add"] == ["SYS_ADMIN", "NET_ADMIN"]
    assert set(lab.RUN_FLAGS["tmpfs"]) == {"/run", "/run/lock"}
    assert "privileged" not in lab.RUN_FLAGS


@pytest.mark.parametrize(
    ("status", "state"),
    [("running", "running"), ("exited", "stopped"), ("created", "stopped"), ("paused", "stopped"), (None, "absent")],
    ids=["running", "exited", "created", "paused", "missing"],
)
def test_docker_status_maps_to_contract_state(status, state):
    assert lab.container_state(status) == state


class FakeContainers:
    def __init__(self, statuses):
        self.statuses = statuses

    def get(self, name):
        if name not in self.statuses:
            raise docker.errors.NotFound(f"No such container: {name}")
        return SimpleNamespace(status=self.statuses[name], name=name)


def test_host_states_reads_each_lab_container():
    client = SimpleNamespace(containers=FakeContainers({"govmail-lab-mail1": "running"}))
    assert lab.host_states(client) == {"mail1": "running", "backup1": "absent"}


def test_host_states_can_read_the_molecule_stack():
    client = SimpleNamespace(containers=FakeContainers({"govmail-mol-backup1": "exited"}))
    assert lab.host_states(client, prefix="govmail-mol-") == {"mail1": "absent", "backup1": "stopped"}


def test_dockerfile_boots_systemd_and_keeps_apt_cache_stale():
    dockerfile = (lab.IMAGE_CONTEXT / "Dockerfile").read_text()
    for needle in (
        "FROM ${BASE_IMAGE}",
        "ENV container=docker",
        "touch -d @0 /var/lib/apt/lists",
        ": > /etc/machine-id",
        "STOPSIGNAL SIGRTMIN+3",
        'CMD ["/lib/systemd/systemd"]',
    ):
        assert needle in dockerfile


def test_context_hash_is_stable_and_follows_content_and_base(tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = lab.context_hash(tmp_path, "sha256:aaa")
    assert first == lab.context_hash(tmp_path, "sha256:aaa")
    assert first != lab.context_hash(tmp_path, "sha256:bbb")
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert first != lab.context_hash(tmp_path, "sha256:aaa")
    assert len(first) == 12


def test_port_in_use_sees_a_listener():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert lab.port_in_use(server.getsockname()[1])


def test_busy_ports_name_the_service_and_address(monkeypatch):
    monkeypatch.setattr(lab, "port_in_use", lambda port, host="127.0.0.1": port == 10993)
    assert lab.busy_ports(HOSTS["mail1"]) == ["imaps (127.0.0.1:10993)"]


def test_unreachable_engine_says_how_to_start_it(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(DockerUnavailableError, match=r"not answering: start it with `sudo bash scripts/setup.sh`"):
        lab.connect(timeout=2)


def test_base_image_build_needs_root(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match=r"debootstrap, which needs root: run `sudo make up`"):
        lab.build_base_image(client=None, logs_dir=tmp_path)


def test_docker_api_errors_become_lab_errors_naming_the_action():
    with (
        pytest.raises(LabError, match=r"could not remove volume v: volume is in use"),
        lab.docker_errors("remove volume v"),
    ):
        raise docker.errors.APIError("409", explanation="volume is in use")


def test_newest_dated_base_image_is_chosen():
    images = [
        SimpleNamespace(tags=["govmail/trixie-base:20260101"]),
        SimpleNamespace(tags=["govmail/trixie-base:manual", "govmail/trixie-base:20260315"]),
    ]
    client = SimpleNamespace(images=SimpleNamespace(list=lambda name: images))
    tag, image = lab.find_base_image(client)
    assert tag == "govmail/trixie-base:20260315" and image is images[1]

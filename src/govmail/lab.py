"""The local lab: base images, network, volumes and systemd containers, through the Docker SDK.

Nothing is pulled from a registry. ``govmail/trixie-base:<yyyymmdd>`` is made here with
debootstrap and imported; ``govmail/trixie-systemd:<hash>`` (also ``:latest``) is built from it
with the Dockerfile shipped in this package, the hash covering that build context and the base
image, so an unchanged image is reused and a changed one rebuilt.

Names (docs/CONTRACT-internal.md): network ``govmail-lab`` (172.29.10.0/24), containers
``govmail-lab-<host>`` for the hosts in :data:`LAB_HOSTS`, volumes ``govmail-lab-<host>-<purpose>``.
Every object made here carries the label ``org.govmail.lab=true``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import IPAMConfig, IPAMPool

from .contract import LAB_PORT_OFFSET, LOCALHOST, SERVICE_PORTS
from .errors import DockerUnavailableError, LabError

Progress = Callable[[str], None]

NETWORK = "govmail-lab"
SUBNET = "172.29.10.0/24"
PREFIX = "govmail-lab-"
LABEL = "org.govmail.lab"
HOST_LABEL = "org.govmail.host"

BASE_REPOSITORY = "govmail/trixie-base"
SYSTEMD_REPOSITORY = "govmail/trixie-systemd"
SUITE = "trixie"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "GOVMAIL_DEBIAN_MIRROR"
IMAGE_CONTEXT = Path(__file__).resolve().parent / "images" / "trixie-systemd"

# Run flags that boot systemd under this machine's Docker (DESIGN.md, "The lab"):
# --cgroupns=private --cap-add SYS_ADMIN --tmpfs /run --tmpfs /run/lock (never --privileged), and
# --cap-add NET_ADMIN for fail2ban's nftables bans (roles/fail2ban; notes/debian13.md §5).
RUN_FLAGS: dict[str, Any] = {
    "cgroupns": "private",
    "cap_add": ["SYS_ADMIN", "NET_ADMIN"],
    "tmpfs": {"/run": "", "/run/lock": ""},
}
SYSTEMD_BOOT_TIMEOUT = 120


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its short name, published ports and data volumes."""

    name: str
    services: tuple[str, ...] = ()  # services of SERVICE_PORTS published on 127.0.0.1
    volumes: Mapping[str, str] = field(default_factory=dict)  # purpose -> mount point

    @property
    def container(self) -> str:
        return f"{PREFIX}{self.name}"

    def volume(self, purpose: str) -> str:
        return f"{PREFIX}{self.name}-{purpose}"

    def port_bindings(self, offset: int = LAB_PORT_OFFSET) -> dict[str, tuple[str, int]]:
        """Docker SDK ``ports=``: ``{"25/tcp": ("127.0.0.1", 10025), ...}``."""
        return {f"{SERVICE_PORTS[s]}/tcp": (LOCALHOST, SERVICE_PORTS[s] + offset) for s in self.services}


# mail1 runs ldap, mx, mailstore and webmail and publishes every service; backup1 publishes
# nothing. Data volumes keep mail, directory and backups apart from the container's own layer;
# `govmail lab down` removes them.
LAB_HOSTS: tuple[HostSpec, ...] = (
    HostSpec("mail1", tuple(SERVICE_PORTS), {"vmail": "/var/vmail", "ldap": "/var/lib/ldap"}),
    HostSpec("backup1", (), {"backups": "/var/backups/govmail"}),
)


@dataclass
class ImageInfo:
    tag: str
    id: str
    built: bool
    base_tag: str


@dataclass
class HostInfo:
    name: str
    container: str
    state: str  # running | stopped | absent
    action: str = "reused"  # created | started | reused
    systemd: str = ""  # running | degraded after boot
    outdated: bool = False  # made from another image than the current one
    container_id: str = ""


@dataclass
class DownResult:
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


def _noop(_: str) -> None:
    pass


# --- Docker engine ---------------------------------------------------------------------------


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


@contextlib.contextmanager
def docker_errors(action: str) -> Iterator[None]:
    """Turn Docker SDK errors into one-line :class:`LabError` messages naming ``action``."""
    try:
        yield
    except (requests.exceptions.ConnectionError, ConnectionError) as exc:
        raise DockerUnavailableError(
            f"lost the Docker engine while trying to {action} ({exc.__class__.__name__}): "
            "check that dockerd is running (sudo bash scripts/setup.sh starts it)"
        ) from None
    except docker.errors.DockerException as exc:
        raise LabError(f"could not {action}: {_explain(exc)}") from None


def connect(timeout: int = 600) -> docker.DockerClient:
    """A Docker client whose engine answers, or :class:`DockerUnavailableError`."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        text = str(exc)
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        if "Permission denied" in text:
            raise DockerUnavailableError(
                f"permission denied on the Docker engine at {host}: run as root (sudo) or join the docker group"
            ) from None
        raise DockerUnavailableError(
            f"the Docker engine at {host} is not answering: start it with `sudo bash scripts/setup.sh` "
            "(installs docker.io and starts dockerd where needed)"
        ) from None
    return client


# --- images ----------------------------------------------------------------------------------


def _date_tags(client: docker.DockerClient, repository: str) -> list[tuple[str, Any]]:
    tags = []
    with docker_errors(f"list the {repository} images"):
        for image in client.images.list(name=repository):
            for tag in image.tags:
                repo, _, version = tag.rpartition(":")
                if repo == repository and re.fullmatch(r"\d{8}", version):
                    tags.append((tag, image))
    return sorted(tags, key=lambda item: item[0])


def find_base_image(client: docker.DockerClient) -> tuple[str, Any] | None:
    """The newest ``govmail/trixie-base:<yyyymmdd>`` present, as ``(tag, image)``."""
    tags = _date_tags(client, BASE_REPOSITORY)
    return tags[-1] if tags else None


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        points = [line.split()[4] for line in handle]
    return [p for p in points if p.startswith(prefix)]


def _remove_tree(path: Path) -> None:
    """Remove a debootstrap target, unmounting whatever an interrupted run left mounted in it."""
    for point in sorted(_mounts_below(path), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if _mounts_below(path):
        return  # never recurse into a mounted /proc or /sys: leave it for the operator
    shutil.rmtree(path, ignore_errors=True)


def build_base_image(
    client: docker.DockerClient,
    logs_dir: Path,
    *,
    mirror: str | None = None,
    progress: Progress = _noop,
) -> str:
    """debootstrap a minimal trixie and import it as ``govmail/trixie-base:<today>``."""
    mirror = mirror or os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    if os.geteuid() != 0:
        raise LabError(
            "building the base image runs debootstrap, which needs root: run `sudo make up` "
            "(or `sudo .venv/bin/govmail lab image`)"
        )
    debootstrap = shutil.which("debootstrap", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if debootstrap is None:
        raise LabError(
            "debootstrap is not installed: run `sudo bash scripts/setup.sh` (or apt-get install debootstrap)"
        )
    logs_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{BASE_REPOSITORY}:{dt.date.today():%Y%m%d}"
    log_path = logs_dir / "debootstrap.log"
    target = Path(tempfile.mkdtemp(prefix="govmail-debootstrap-", dir="/var/tmp"))
    try:
        progress(f"debootstrap {SUITE} from {mirror} (about a minute; log {log_path})")
        with open(log_path, "w", encoding="utf-8") as log:
            done = subprocess.run(
                [debootstrap, "--variant=minbase", SUITE, str(target), mirror],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if done.returncode != 0:
            raise LabError(
                f"debootstrap of {SUITE} from {mirror} failed (exit {done.returncode}): see {log_path}; "
                f"check that the mirror is reachable or set {MIRROR_ENV}"
            )
        progress(f"importing the root file system as {tag}")
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(target), "-c", "."],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        assert tar.stdout is not None
        chunks = iter(lambda: tar.stdout.read(1 << 20), b"")
        repository, _, version = tag.partition(":")
        try:
            with docker_errors(f"import {tag}"):
                client.api.import_image(src=chunks, repository=repository, tag=version, stream_src=True)
        finally:
            tar.stdout.close()
            tar.wait()
        if tar.returncode != 0:
            raise LabError(
                f"tar of the debootstrap tree {target} failed (exit {tar.returncode}): check free disk space"
            )
        with docker_errors(f"find the imported {tag}"):
            client.images.get(tag)
    finally:
        _remove_tree(target)
    return tag


def context_hash(context: Path, base_id: str) -> str:
    """Hash of the image build context (every file, by name and content) and the base image id."""
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def ensure_image(
    client: docker.DockerClient,
    logs_dir: Path,
    *,
    rebuild: bool = False,
    progress: Progress = _noop,
) -> ImageInfo:
    """Reuse or build ``govmail/trixie-systemd:<hash>`` and point ``:latest`` at it.

    ``rebuild`` makes a fresh base image (a new debootstrap) and so a fresh systemd image.
    """
    found = None if rebuild else find_base_image(client)
    built = False
    if found is None:
        base_tag = build_base_image(client, logs_dir, progress=progress)
        with docker_errors(f"inspect {base_tag}"):
            base = client.images.get(base_tag)
        built = True
    else:
        base_tag, base = found
    tag = f"{SYSTEMD_REPOSITORY}:{context_hash(IMAGE_CONTEXT, base.id)}"
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        image = None
    except docker.errors.DockerException as exc:
        raise LabError(f"could not inspect {tag}: {_explain(exc)}") from None
    if image is None:
        image = _build_systemd_image(client, tag, base_tag, logs_dir, progress)
        built = True
    with docker_errors(f"tag {tag} as {SYSTEMD_REPOSITORY}:latest"):
        image.tag(SYSTEMD_REPOSITORY, "latest")
    return ImageInfo(tag=tag, id=image.id, built=built, base_tag=base_tag)


def _build_systemd_image(
    client: docker.DockerClient, tag: str, base_tag: str, logs_dir: Path, progress: Progress
) -> Any:
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / "image-build.log"
    progress(f"building {tag} from {base_tag} (log {log_path})")
    error = None
    with open(log_path, "w", encoding="utf-8") as log, docker_errors(f"build {tag}"):
        for chunk in client.api.build(
            path=str(IMAGE_CONTEXT),
            tag=tag,
            buildargs={"BASE_IMAGE": base_tag},
            pull=False,
            rm=True,
            forcerm=True,
            decode=True,
            labels={LABEL: "true"},
        ):
            if "stream" in chunk:
                log.write(chunk["stream"])
                line = chunk["stream"].strip()
                if line.startswith("Step "):
                    line = " ".join(line.split())
                    progress(line if len(line) <= 100 else line[:99] + "…")
            if "error" in chunk:
                error = chunk["error"].strip()
                log.write(error + "\n")
    if error:
        raise LabError(f"building {tag} failed: {error.splitlines()[-1]}; see {log_path}")
    with docker_errors(f"find the built {tag}"):
        return client.images.get(tag)


# --- network, volumes, containers ------------------------------------------------------------


def ensure_network(client: docker.DockerClient, name: str = NETWORK, subnet: str = SUBNET) -> Any:
    """The lab's bridge network with its fixed subnet (created when missing)."""
    with docker_errors(f"look up network {name}"):
        existing = client.networks.list(names=[name])
    existing = [n for n in existing if n.name == name]
    if existing:
        network = existing[0]
        configs = (network.attrs.get("IPAM") or {}).get("Config") or []
        subnets = [c.get("Subnet") for c in configs]
        if subnet not in subnets:
            raise LabError(
                f"network {name} exists with subnet {', '.join(filter(None, subnets)) or 'none'}, not {subnet}: "
                "run `govmail lab down` to remove it"
            )
        return network
    try:
        return client.networks.create(
            name,
            driver="bridge",
            labels={LABEL: "true"},
            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]),
        )
    except docker.errors.APIError as exc:
        text = _explain(exc)
        if "overlap" in text.lower():
            raise LabError(
                f"cannot create network {name}: subnet {subnet} overlaps another Docker network or route "
                f"({text}); remove the network that uses it"
            ) from None
        raise LabError(f"could not create network {name}: {text}") from None


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_ports(spec: HostSpec, offset: int = LAB_PORT_OFFSET) -> list[str]:
    """``service (127.0.0.1:port)`` for each port of ``spec`` that is already taken."""
    return [
        f"{service} ({LOCALHOST}:{SERVICE_PORTS[service] + offset})"
        for service in spec.services
        if port_in_use(SERVICE_PORTS[service] + offset)
    ]


def _container(client: docker.DockerClient, name: str) -> Any | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise LabError(f"could not inspect container {name}: {_explain(exc)}") from None


def container_state(status: str | None) -> str:
    """Docker container status -> ``running``, ``stopped`` or ``absent``."""
    if status is None:
        return "absent"
    return "running" if status == "running" else "stopped"


def host_states(
    client: docker.DockerClient | None = None,
    *,
    prefix: str = PREFIX,
    hosts: Sequence[str] = tuple(h.name for h in LAB_HOSTS),
) -> dict[str, str]:
    """``{"mail1": "running"|"stopped"|"absent", ...}`` for containers ``<prefix><host>``.

    ``prefix="govmail-mol-"`` gives the Molecule stack's hosts.
    """
    client = client or connect()
    states = {}
    for host in hosts:
        container = _container(client, f"{prefix}{host}")
        states[host] = container_state(container.status if container is not None else None)
    return states


def _create_host(client: docker.DockerClient, spec: HostSpec, image: str, aliases: Sequence[str], offset: int) -> Any:
    busy = busy_ports(spec, offset)
    if busy:
        raise LabError(
            f"cannot publish {spec.name}: already in use on this machine: {', '.join(busy)}; "
            "stop the program that holds them (`ss -ltnp` shows it)"
        )
    labels = {LABEL: "true", HOST_LABEL: spec.name}
    volumes = {}
    for purpose, mount in spec.volumes.items():
        with docker_errors(f"create volume {spec.volume(purpose)}"):
            client.volumes.create(spec.volume(purpose), labels=labels)
        volumes[spec.volume(purpose)] = {"bind": mount, "mode": "rw"}
    with docker_errors(f"create container {spec.container}"):
        endpoint = client.api.create_endpoint_config(aliases=[spec.name, *aliases])
        return client.containers.run(
            image,
            detach=True,
            name=spec.container,
            hostname=spec.name,
            labels=labels,
            volumes=volumes,
            ports=spec.port_bindings(offset),
            network=NETWORK,
            networking_config={NETWORK: endpoint},
            # systemd derives /etc/machine-id (empty in the image) from container_uuid: without it
            # every container would boot with the same machine id.
            environment={"container_uuid": str(uuid.uuid4())},
            **RUN_FLAGS,
        )


def wait_for_systemd(container: Any, timeout: int = SYSTEMD_BOOT_TIMEOUT) -> str:
    """Wait until systemd in ``container`` is ``running`` or ``degraded``; return that state."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        remaining = max(1, int(deadline - time.monotonic()))
        with docker_errors(f"ask systemd in {container.name} for its state"):
            _, output = container.exec_run(
                ["timeout", str(min(remaining, 60)), "systemctl", "is-system-running", "--wait"]
            )
        lines = (output or b"").decode(errors="replace").strip().splitlines()
        state = lines[-1].strip() if lines else ""
        if state in ("running", "degraded"):
            return state
        if time.monotonic() >= deadline:
            raise LabError(
                f"systemd in {container.name} did not finish booting within {timeout}s (state {state!r}): "
                f"see `docker logs {container.name}` and `docker exec {container.name} systemctl --failed`"
            )
        time.sleep(1)


def ensure_hosts(
    client: docker.DockerClient,
    image: ImageInfo,
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    offset: int = LAB_PORT_OFFSET,
    progress: Progress = _noop,
) -> list[HostInfo]:
    """Create, start or reuse every lab host, then wait for systemd in each."""
    ensure_network(client)
    infos = []
    containers = []
    for spec in LAB_HOSTS:
        container = _container(client, spec.container)
        if container is None:
            progress(f"creating {spec.container}")
            container = _create_host(client, spec, image.tag, (aliases or {}).get(spec.name, ()), offset)
            action = "created"
        elif container.status != "running":
            progress(f"starting {spec.container}")
            with docker_errors(f"start {spec.container}"):
                container.start()
            action = "started"
        else:
            action = "reused"
        outdated = container.attrs.get("Image") != image.id
        infos.append(
            HostInfo(spec.name, spec.container, "running", action, outdated=outdated, container_id=container.id)
        )
        containers.append(container)
    for info, container in zip(infos, containers, strict=True):
        progress(f"waiting for systemd in {info.container}")
        info.systemd = wait_for_systemd(container)
    return infos


# What the roles write on a lab host: a digest of these files (paths and contents) is kept with
# the converge stamp, so `lab up` converges again when one was edited on the host (drift).
MANAGED_PATHS = (
    "/etc/postfix",
    "/etc/dovecot",
    "/etc/ldap/ldap.conf",
    "/etc/ldap/slapd.d",
    "/etc/default/slapd",
    "/etc/govmail",
    "/etc/ssl/govmail",
    "/etc/systemd/system",
    "/usr/local/sbin",
    "/usr/local/lib/govmail",
    "/opt/govmail/venv/govmail.sha256",
)


def managed_files_digest(client: docker.DockerClient, name: str) -> str:
    """sha256 over every regular file under :data:`MANAGED_PATHS` in the lab host ``name``
    (``mail1``) or the container of that full name (``govmail-mol-mail1``), from ``sha256sum`` of
    each file in path order; ``""`` when the container is not running."""
    script = (
        "find " + " ".join(MANAGED_PATHS) + " -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum | sha256sum"
    )
    container = _container(client, name if name.startswith("govmail-") else PREFIX + name)
    if container is None or container.status != "running":
        return ""
    with docker_errors(f"read the managed files of {name}"):
        code, output = container.exec_run(["sh", "-c", script])
    return output.decode().split()[0] if code == 0 and output else ""


def down(client: docker.DockerClient, *, progress: Progress = _noop) -> DownResult:
    """Remove the lab's containers, volumes and network (images stay for the next `lab up`)."""
    result = DownResult()
    for spec in LAB_HOSTS:
        container = _container(client, spec.container)
        if container is not None:
            progress(f"removing {spec.container}")
            with docker_errors(f"remove container {spec.container}"):
                container.remove(force=True)
            result.containers.append(spec.container)
    names = {spec.volume(p) for spec in LAB_HOSTS for p in spec.volumes}
    with docker_errors("list the lab volumes"):
        labelled = client.volumes.list(filters={"label": f"{LABEL}=true"})
    names |= {v.name for v in labelled if v.name.startswith(PREFIX)}
    for name in sorted(names):
        try:
            volume = client.volumes.get(name)
        except docker.errors.NotFound:
            continue
        with docker_errors(f"remove volume {name} (is another container using it?)"):
            volume.remove()
        result.volumes.append(name)
    with docker_errors(f"look up network {NETWORK}"):
        networks = [n for n in client.networks.list(names=[NETWORK]) if n.name == NETWORK]
    for network in networks:
        with docker_errors(f"remove network {NETWORK} (is another container attached to it?)"):
            network.remove()
        result.networks.append(NETWORK)
    return result

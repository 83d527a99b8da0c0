"""A Docker engine and a `python:3.11-slim` base image for the image tests, per CONTAINERS.md.

Order of preference for the engine:
1. an engine the Docker client already reaches (`docker info` works): a user's own;
2. Debian's `docker.io` (installed if missing, as the other system programs of the tests are),
   started as our own `dockerd` with no bridge, no iptables and no IP forwarding, its state
   under CACHE_DIR so that the base image (a 50 s debootstrap) is made once per machine;
3. where another engine's package is installed but its engine does not answer (docker.io
   would conflict with it), or with TABSERVE_TEST_DOCKER=0, the test fails loudly saying it
   did not run (never a silent skip). TABSERVE_TEST_DOCKER=1 (and CI) install docker.io anyway.

Containers use `--network host` and loopback ports only; no bridge network is ever created.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.root import as_root

CACHE_DIR = Path(os.environ.get("TABSERVE_DOCKER_CACHE", "/var/tmp/tabserve-docker"))
DEBIAN_CLIENT = "/usr/bin/docker"  # Debian's client has buildx; a newer one on PATH may not
BASE_IMAGE = "python:3.11-slim"
STANDIN_IMAGE = "tabserve-standin/python:3.11-slim"
STANDIN_VERSION = "1"  # bump to rebuild the cached stand-in


class DockerUnavailable(RuntimeError):
    """No engine could be reached or started here; the message says how to get one."""


@dataclass
class Engine:
    """A reachable Docker engine: the client binary and the environment that points at it."""

    client: str
    env: dict[str, str]
    pidfile: Path | None = None  # set when we started dockerd ourselves
    process: subprocess.Popen[bytes] | None = None

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the Docker client with this engine's environment."""
        return subprocess.run(
            [self.client, *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=input is None,
            input=input,
            timeout=timeout,
        )

    def works(self) -> bool:
        """True when `docker info` answers."""
        try:
            return self.run("info", check=False, timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def has_image(self, ref: str) -> bool:
        """True when the image is present locally."""
        return self.run("image", "inspect", ref, check=False, timeout=30).returncode == 0


# Packages of other Docker engines: Debian's docker.io conflicts with them.
OTHER_ENGINES = ("docker-ce", "containerd.io", "moby-engine")


def installed_packages(names: tuple[str, ...]) -> list[str]:
    """Those of these Debian packages that are installed (none where dpkg is missing)."""
    if shutil.which("dpkg-query") is None:
        return []
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names],
        capture_output=True,
        text=True,
        check=False,  # 1 when some name is unknown: the others are still listed
    )
    return [line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")]


def _refusal() -> str | None:
    """Why the test must not install and start its own engine here, or None when it may."""
    wanted = os.environ.get("TABSERVE_TEST_DOCKER")
    if os.environ.get("CI") or wanted == "1":
        return None
    if wanted == "0":
        return "TABSERVE_TEST_DOCKER=0 forbids installing Debian's docker.io. Start an engine"
    if shutil.which("apt-get") is None:
        return "this is not a Debian machine (no apt-get) to install docker.io on. Start an engine"
    other = installed_packages(OTHER_ENGINES)
    if other:
        return (
            f"{', '.join(other)} is installed, and Debian's docker.io would replace it. Start "
            "its engine, or set TABSERVE_TEST_DOCKER=1 to install docker.io anyway"
        )
    return None


def _apt_install(*packages: str) -> None:
    sudo = as_root()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, capture_output=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        capture_output=True,
        env=env,
        timeout=900,
    )


def ensure_debian_packages() -> None:
    """Install docker.io, debootstrap and docker-registry from Debian when one is missing."""
    needed = {
        "docker.io": Path("/usr/sbin/dockerd"),
        "debootstrap": Path("/usr/sbin/debootstrap"),
        "docker-registry": Path("/usr/bin/docker-registry"),
    }
    missing = [pkg for pkg, path in needed.items() if not path.exists()]
    if missing:
        _apt_install(*missing)
        # Debian starts its own engine (with a bridge) and registry on install, where an init
        # system runs; the tests start their own, on a private socket and a free port.
        if shutil.which("service") is not None:
            for service in ("docker", "docker-registry"):
                subprocess.run(
                    [*as_root(), "service", service, "stop"], capture_output=True, check=False
                )


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    # Two test sessions on one machine must not start two engines on one data root.
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _spawn_dockerd(
    sock: Path, state: Path, pidfile: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "/usr/sbin/dockerd",
            "-H",
            f"unix://{sock}",
            "--data-root",
            str(CACHE_DIR / "data"),
            "--exec-root",
            str(state / "exec"),
            "--pidfile",
            str(pidfile),
            # No bridge, no NAT rules, no IP forwarding: containers use the host's network.
            "--bridge=none",
            "--iptables=false",
            "--ip-forward=false",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def _start_own_dockerd() -> Engine:
    state = CACHE_DIR / "engine"
    state.mkdir(parents=True, exist_ok=True)
    sock = state / "docker.sock"
    pidfile = state / "dockerd.pid"
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "1"}
    engine = Engine(DEBIAN_CLIENT, env, pidfile)
    if engine.works():  # left running by a session that is still using it
        return Engine(DEBIAN_CLIENT, env, None)
    with (state / "dockerd.log").open("ab") as log:  # the child keeps its own descriptor
        engine.process = _spawn_dockerd(sock, state, pidfile, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if engine.works():
            return engine
        time.sleep(0.2)
    raise DockerUnavailable(f"dockerd did not answer within 60 s; see {state / 'dockerd.log'}")


def stop_engine(engine: Engine) -> None:
    """Stop a dockerd we started, by its pid file; an engine we only reused stays up."""
    if engine.pidfile is None or not engine.pidfile.exists():
        return
    pid = int(engine.pidfile.read_text().strip())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 15)
    if engine.process is not None:
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.process.kill()
            engine.process.wait()
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def engine() -> Engine:
    """A working engine (existing, or our own dockerd); DockerUnavailable says why not."""
    client = os.environ.get("TABSERVE_DOCKER") or (
        DEBIAN_CLIENT if Path(DEBIAN_CLIENT).exists() else shutil.which("docker") or "docker"
    )
    existing = Engine(client, {**os.environ, "DOCKER_BUILDKIT": "1"})
    if existing.works():
        return existing
    refusal = _refusal()
    if refusal is not None:
        raise DockerUnavailable(
            "THE DOCKER IMAGE TEST DID NOT RUN: no Docker engine answers `docker info`, and "
            f"{refusal}."
        )
    ensure_debian_packages()
    with _locked("engine"):
        return _start_own_dockerd()


def _debootstrap_rootfs_tar() -> Path:
    tar = CACHE_DIR / f"standin-rootfs-{STANDIN_VERSION}.tar"
    if tar.exists():
        return tar
    root = CACHE_DIR / "rootfs"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(root)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    subprocess.run(
        [
            "chroot",
            str(root),
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "python3",
            "python3-venv",
            "python3-pip",
            "ca-certificates",
        ],
        check=True,
        capture_output=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True, capture_output=True)
    partial = tar.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
    partial.rename(tar)
    shutil.rmtree(root, ignore_errors=True)
    return tar


# The stand-in's additions: names as in the official image, and the host's CA bundle, since
# package downloads here pass through a proxy with its own authority. Stand-in only.
_STANDIN_DOCKERFILE = """\
FROM tabserve-standin/raw:bookworm
RUN ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip \\
    && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
"""


def base_image(engine: Engine) -> str:
    """A `python:3.11-slim` the engine can build FROM: the real one, else a local stand-in."""
    if engine.has_image(BASE_IMAGE):
        return BASE_IMAGE
    if engine.has_image(STANDIN_IMAGE):
        return STANDIN_IMAGE
    # A machine that reaches Docker Hub gets the real image; these machines fail at once.
    if engine.run("pull", BASE_IMAGE, check=False, timeout=300).returncode == 0:
        return BASE_IMAGE
    with _locked("standin"):
        if engine.has_image(STANDIN_IMAGE):
            return STANDIN_IMAGE
        ensure_debian_packages()
        tar = _debootstrap_rootfs_tar()
        engine.run("import", "-", "tabserve-standin/raw:bookworm", input=tar.read_bytes())
        context = CACHE_DIR / "standin-context"
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(_STANDIN_DOCKERFILE)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", context / "ca-certificates.crt")
        engine.run("build", "--network", "host", "-t", STANDIN_IMAGE, str(context))
    return STANDIN_IMAGE


@dataclass
class LocalRegistry:
    """Debian's docker-registry on a loopback port, storage in a temp folder."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry part of an image tag (loopback needs no TLS)."""
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def local_registry(workdir: Path, port: int) -> Iterator[LocalRegistry]:
    """Run docker-registry on 127.0.0.1:port until the block ends."""
    ensure_debian_packages()
    storage = workdir / "registry-data"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with (workdir / "registry.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            ["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
    try:
        yield LocalRegistry(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

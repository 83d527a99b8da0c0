"""Security against the real server and the CLI: untrusted model files, path traversal through
model names, bearer-token auth exactly where it belongs, and dependency versions that close
known advisories.

Model servers have a long record here (BentoML pickled bodies, TorchServe and Ray open admin
APIs, MLflow path traversal); each test tries the attack the way an outsider would.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import skops.io
from packaging.version import Version
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from tabserve.types import Manifest
from tests.support.models import copy_home
from tests.support.server import Server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
FLOWER = [7.7, 3.0, 6.1, 2.3]
TOKEN = "t0ken-for-the-reliability-suite"
OLD = 1_000_000_000  # 2001: any read of a file or listing of a folder moves its atime to now


class _Evil:
    """Unpickling this creates `marker`: the proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class Sneaky(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A type no skops trust list holds; loading it would run this module's code."""

    marker = ""

    def fit(self, X: object, y: object = None) -> Sneaky:
        return self

    def transform(self, X: object) -> object:
        return X

    def __setstate__(self, state: dict[str, object]) -> None:
        Path(str(state.get("marker") or "/nonexistent/x")).touch()
        self.__dict__.update(state)


def run_cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`tabserve ARGS` as a user runs it, with TABSERVE_HOME=home."""
    return subprocess.run(
        [sys.executable, "-m", "tabserve", *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TABSERVE_")},
            "TABSERVE_HOME": str(home),
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- untrusted model files --------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pkl", ".joblib", ".skops"])
def test_a_malicious_pickle_is_refused_without_trust_pickle(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / f"model{suffix}"
    evil.write_bytes(pickle.dumps(_Evil(marker)))
    result = run_cli(tmp_path / "home", "import", str(evil))
    print(f"{evil.name}: exit={result.returncode} {result.stderr.strip()}")
    assert result.returncode == 2
    assert not marker.exists()  # nothing was unpickled
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    if suffix != ".skops":
        assert "--trust-pickle" in result.stderr
    assert not list((tmp_path / "home").glob("models/*/*"))  # nothing registered


def test_a_skops_file_with_an_untrusted_type_is_refused(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    marker = tmp_path / "pwned"
    sneaky = Sneaky()
    sneaky.marker = str(marker)
    pipeline = Pipeline([("sneaky", sneaky), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    path = tmp_path / "model.skops"
    skops.io.dump(pipeline, path)
    result = run_cli(tmp_path / "home", "import", str(path))
    print(f"exit={result.returncode} {result.stderr.strip()}")
    assert result.returncode == 2
    assert "Sneaky" in result.stderr  # the refused type is named
    assert not marker.exists()
    assert not list((tmp_path / "home").glob("models/*/*"))


# -- path traversal ---------------------------------------------------------------------------


def _snapshot(paths: list[Path]) -> dict[str, tuple[int, int, int]]:
    """(size, mtime, atime) of each path, by lstat only: reading or listing any of them (or
    writing) changes this, since relatime moves an atime older than a day."""
    found = {}
    for path in paths:
        st = path.lstat()
        found[str(path)] = (st.st_size, int(st.st_mtime), int(st.st_atime))
    return found


@dataclass
class Baited:
    server: Server
    root: Path
    home: Path
    name: str
    bait: list[Path]
    before: dict[str, tuple[int, int, int]]
    entries: set[str]

    def untouched(self) -> bool:
        """Nothing outside TABSERVE_HOME was read, listed, written or added."""
        return (
            _snapshot(self.bait) == self.before
            and {p.name for p in self.root.iterdir()} == self.entries
        )


@pytest.fixture(scope="module")
def baited(
    trained: tuple[Manifest, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Baited]:
    """A server whose home sits beside bait a traversal would reach: a model copy and etc/."""
    manifest, artifact, registry = trained
    root = tmp_path_factory.mktemp("traversal")
    home = copy_home(registry, root / "home")
    for name in ("x", "etc", "bait", "models"):
        shutil.copytree(artifact, root / name / "1")
        shutil.copytree(artifact, root / name / manifest.name)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "report").mkdir()
    (root / "report" / "confusion_matrix.png").write_bytes(b"\x89PNG bait")
    bait = []
    for name in ("x", "etc", "bait", "models", "report"):
        bait += [root / name, *(root / name).rglob("*")]
    for path in bait:
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    logs = tmp_path_factory.mktemp("traversal-logs")
    server = Server(home, logs / "serve.log").wait_ready()
    try:
        before = _snapshot(bait)
        yield Baited(
            server, root, home, manifest.name, bait, before, {p.name for p in root.iterdir()}
        )
    finally:
        server.stop()


def raw(port: int, method: str, target: str, body: bytes = b"") -> int:
    """Send a request line exactly as written (no client normalizes the dots); the status."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode() + body)
        first = conn.recv(65536)
        while chunk := conn.recv(65536):
            first += chunk
    return int(first.split(b" ", 2)[1])


V1 = b'{"instances": [[7.7, 3.0, 6.1, 2.3]]}'
V2 = b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [7.7, 3, 6.1, 2.3]}]}'
LECTURE_QUERY = "?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
DOTS = ["..", "..%2F..", "..%2f..%2f..", "%2e%2e", "%2e%2e%2f%2e%2e", "..%5C..", "%252e%252e%252f"]


def traversal_requests(model: str) -> list[tuple[str, str, bytes]]:
    """(method, target, body) that try to reach outside TABSERVE_HOME through a model name."""
    found: list[tuple[str, str, bytes]] = [
        ("POST", "/v2/models/..%2F..%2Fetc/infer", V2),
        ("POST", "/v2/models/../../etc/infer", V2),
        ("GET", "/models/../x", b""),
        ("GET", "/models/..%2Fx" + LECTURE_QUERY, b""),
        ("GET", "/models/%2e%2e%2f%2e%2e%2fx" + LECTURE_QUERY, b""),
        ("GET", "/models/..%252f..%252fx" + LECTURE_QUERY, b""),
        ("POST", f"/v2/models/{model}/versions/..%2F..%2F..%2Fx%2F1/infer", V2),
        ("POST", f"/v1/models/{model}/versions/..:predict", V1),
        ("GET", "/v2/models/..%2F..%2Fbait", b""),
        ("GET", "/v1/models/..%2F..%2Fbait", b""),
        ("GET", f"/ui/models/{model}/report/..%2F..%2F..%2Fetc%2Fpasswd", b""),
        ("GET", f"/ui/models/{model}/report/..%2F..%2F..%2Freport%2Fconfusion_matrix.png", b""),
        ("GET", f"/ui/models/{model}/report/%2e%2e%2fmanifest.json", b""),
        ("GET", "/ui/static/..%2F..%2F..%2Fetc%2Fpasswd", b""),
        ("GET", "/docs/assets/..%2F..%2Fetc%2Fpasswd", b""),
    ]
    for dots in DOTS:
        found += [
            ("POST", f"/v1/models/{dots}%2Fx:predict", V1),
            ("POST", f"/v2/models/{dots}%2Fbait/infer", V2),
            ("GET", f"/ui/models/{dots}%2Fbait", b""),
            ("GET", f"/ui/models/{dots}%2Fx/live", b""),
            ("GET", f"/ui/api/models/{dots}%2Fetc/live", b""),
        ]
    return found


def test_path_traversal_in_model_names_over_http_is_404_or_400(baited: Baited) -> None:
    server = baited.server
    statuses = {}
    for method, target, body in traversal_requests(baited.name):
        statuses[target] = raw(server.port, method, target, body)
    print(f"{len(statuses)} requests: {sorted(set(statuses.values()))}")
    bad = {t: s for t, s in statuses.items() if s not in (400, 404)}
    assert not bad, bad
    assert httpx.get(f"{server.url}/v2/health/ready", timeout=10).status_code == 200
    assert baited.untouched()


@pytest.mark.parametrize(
    "args",
    [
        ("models", "show", "../x"),
        ("models", "show", "../../x:1"),
        ("models", "show", "..%2Fx"),
        ("models", "show", "/etc"),
        ("serve", "../x", "--port", "9"),
        ("serve", "../../bait:1", "--port", "9"),
        ("serve", "..", "--port", "9"),
        ("models", "promote", "../x:1", "production"),
        ("models", "delete", "../../bait:1"),
    ],
)
def test_path_traversal_in_model_names_on_the_cli_is_refused(
    baited: Baited, args: tuple[str, ...]
) -> None:
    result = run_cli(baited.home, *args, cwd=baited.root)
    print(f"tabserve {' '.join(args)}: exit={result.returncode} {result.stderr.strip()}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert baited.untouched()


# -- bearer-token auth ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_servers(
    trained: tuple[Manifest, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """(health and metrics open as by default, everything closed), both with TABSERVE_API_TOKENS."""
    _, _, registry = trained
    root = tmp_path_factory.mktemp("auth")
    servers = [
        Server(copy_home(registry, root / "open"), root / "open.log",
               env={"TABSERVE_API_TOKENS": f"other-token,{TOKEN}"}, token=TOKEN),
        Server(copy_home(registry, root / "closed"), root / "closed.log",
               env={"TABSERVE_API_TOKENS": TOKEN, "TABSERVE_OPEN_HEALTH": "false",
                    "TABSERVE_OPEN_METRICS": "false"}, token=TOKEN),
    ]  # fmt: skip
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


HEALTH = ["/v2/health/live", "/v2/health/ready", "/ping", "/health"]


def protected(manifest: Manifest) -> list[tuple[str, str, bytes]]:
    """Every prediction, metadata, docs and UI route, as a request that answers 200 with a token."""
    name = manifest.name
    found = [
        ("GET", "/" + LECTURE_QUERY, b""),
        ("GET", f"/models/{name}" + LECTURE_QUERY, b""),
        ("POST", f"/v1/models/{name}:predict", V1),
        ("POST", f"/v1/models/{name}:predict_proba", V1),
        ("POST", f"/v1/models/{name}/versions/{manifest.version}:predict", V1),
        ("POST", f"/v1/models/{name}/versions/{manifest.version}:predict_proba", V1),
        ("POST", f"/v2/models/{name}/infer", V2),
        ("POST", f"/v2/models/{name}/versions/{manifest.version}/infer", V2),
        ("POST", "/invocations", V1),
        ("GET", "/v2", b""),
        ("GET", f"/v2/models/{name}", b""),
        ("GET", f"/v2/models/{name}/ready", b""),
        ("GET", f"/v2/models/{name}/versions/{manifest.version}", b""),
        ("GET", f"/v2/models/{name}/versions/{manifest.version}/ready", b""),
        ("GET", f"/v1/models/{name}", b""),
        ("GET", "/version", b""),
        ("GET", "/openapi.json", b""),
        ("GET", "/docs", b""),
        ("GET", "/docs/assets/swagger-ui.css", b""),
        ("GET", "/ui", b""),
        ("GET", f"/ui/models/{name}", b""),
        ("GET", f"/ui/models/{name}/try", b""),
        ("GET", f"/ui/models/{name}/live", b""),
        ("GET", "/ui/api/models", b""),
        ("GET", f"/ui/api/models/{name}/live", b""),
        ("GET", "/ui/static/ui.css", b""),
    ]
    found += [
        ("GET", f"/ui/models/{name}/report/{file.removeprefix('report/')}", b"")
        for file in manifest.files
        if file.startswith("report/") and file.endswith(".png")
    ]
    return found


def _send(
    client: httpx.Client, method: str, path: str, body: bytes, token: str | None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client.request(method, path, content=body or None, headers=headers)


def _assert_401(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, (what, response.status_code)
    assert response.headers["www-authenticate"].startswith("Bearer"), what
    assert response.json()["error"], what


def test_auth_on_401_exactly_on_protected_routes(
    auth_servers: tuple[Server, Server], trained: tuple[Manifest, Path, Path]
) -> None:
    manifest = trained[0]
    server, _ = auth_servers
    routes = protected(manifest)
    counts = {"401": 0, "200": 0}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path, body in routes:
            for token in (None, "wrong-token", TOKEN[:-1], TOKEN + "x"):
                _assert_401(_send(client, method, path, body, token), f"{method} {path} {token}")
                counts["401"] += 1
            bearer = {"authorization": f"Basic {TOKEN}"}  # right secret, wrong scheme
            _assert_401(client.request(method, path, headers=bearer), f"{method} {path} Basic")
            answer = _send(client, method, path, body, TOKEN)
            assert answer.status_code == 200, (method, path, answer.text[:300])
            assert "www-authenticate" not in answer.headers
            counts["200"] += 1
        for path in [*HEALTH, "/metrics"]:  # open by default: probes and Prometheus need no secret
            assert client.get(path).status_code == 200, path
            counts["200"] += 1
        _assert_401(client.get("/nowhere"), "an unknown path says nothing without a token")
        assert _send(client, "GET", "/nowhere", b"", TOKEN).status_code == 404
        other = _send(client, "POST", f"/v1/models/{manifest.name}:predict", V1, "other-token")
        assert other.status_code == 200  # every configured token works
    print(f"{len(routes)} protected routes; answers {counts}")


def test_auth_closes_health_and_metrics_when_configured(
    auth_servers: tuple[Server, Server],
) -> None:
    _, server = auth_servers
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path in [*HEALTH, "/metrics"]:
            _assert_401(client.get(path), path)
            assert _send(client, "GET", path, b"", TOKEN).status_code == 200, path
    print(f"{len(HEALTH) + 1} health and metrics paths closed, open with the token")


# -- dependency versions ----------------------------------------------------------------------

# The lowest version of each that closes a known advisory in this stack.
MINIMUMS = {
    "gunicorn": ("23.0.0", "request smuggling: CVE-2024-1135 (22.0), CVE-2024-6827 (23.0)"),
    "starlette": ("0.40.0", "multipart form DoS: CVE-2024-47874"),
    "skops": ("0.13.0", "untrusted types loaded by skops.io: fixes through 0.13"),
    "h11": ("0.16.0", "request smuggling through chunked bodies: CVE-2025-43859"),
    "jinja2": ("3.1.6", "sandbox breakout through attr: CVE-2025-27516"),
}


def test_locked_and_installed_versions_meet_the_advisory_minimums() -> None:
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;#]+).*", line.strip())
        if match:
            locked[match[1].lower().replace("_", "-")] = match[2]
    for package, (minimum, why) in MINIMUMS.items():
        installed = version(package)
        print(f"{package}: locked {locked.get(package)} installed {installed} >= {minimum} ({why})")
        assert package in locked, f"{package} is not pinned in requirements.lock"
        assert Version(locked[package]) >= Version(minimum), (package, why)
        assert Version(installed) >= Version(minimum), (package, why)
        assert Version(installed) == Version(locked[package]), f"{package} differs from the lock"

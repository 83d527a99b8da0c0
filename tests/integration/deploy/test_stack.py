"""The compose stack's parts run for real as local processes: Postgres with init.sql, the API
under its production server, nginx in front (plain and TLS), all from what compose.yaml names."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.integration.deploy.stack import (
    Compose,
    local_command,
    local_env,
    map_text,
    start,
    stop,
)
from tests.support import postgres
from tests.support.net import free_port, wait_until
from tests.unit.deploy.helpers import (
    LECTURE_BODY,
    LECTURE_QUERY,
    render_all,
    self_signed_pair,
    trained_iris,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@dataclass
class Stack:
    compose: Compose
    pg: postgres.Cluster
    database_url: str
    http: str
    https: str
    cert: Path


def _init_database(compose: Compose, cluster: postgres.Cluster) -> str:
    db = compose.service("postgres")["environment"]["POSTGRES_DB"]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    # The init script as the postgres image runs it, with compose's secret paths mapped.
    init_host = compose.bind_mounts("postgres")["/docker-entrypoint-initdb.d/10-tabserve.sql"]
    script = map_text(init_host.read_text(), {k: str(v) for k, v in compose.secret_files().items()})
    local = compose.folder.parent / "init-local.sql"
    local.write_text(script)
    subprocess.run(
        [str(postgres.bin_dir() / "psql"), "-X", "-q", "-d", cluster.url(db), "-f", str(local)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cluster.url(db)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    manifest, artifact = trained_iris(root / "trained")
    cert, key = self_signed_pair(root / "pki")
    folder = render_all(manifest, artifact, root / "out", tls_cert=cert, tls_key=key)
    compose = Compose(folder)
    processes: list[subprocess.Popen[bytes]] = []
    with postgres.throwaway_cluster() as cluster:
        try:
            database_url = _init_database(compose, cluster)
            api_port, http_port, https_port = free_port(), free_port(), free_port()

            # The API, as compose runs it; its registry volume is seeded from the image's home/.
            api = compose.service("api")
            home = root / "registry-volume"
            home.mkdir(exist_ok=True)
            subprocess.run(["cp", "-a", f"{folder / 'home'}/.", f"{home}/"], check=True)
            mapping = {
                **{k: str(v) for k, v in compose.secret_files().items()},
                "postgres:5432": f"127.0.0.1:{cluster.port}",
                api["environment"]["TABSERVE_HOME"]: str(home),
            }
            env = local_env(api["environment"], mapping)
            env["TABSERVE_HOST"] = "127.0.0.1"  # loopback only here; 0.0.0.0 inside its container
            env["TABSERVE_PORT"] = str(api_port)
            processes.append(start(local_command(api["command"]), env, root / "api.log"))
            # compose's own healthcheck command decides when the API is healthy.
            check = local_command(api["healthcheck"]["test"][1:])

            def healthy() -> bool:
                if processes[0].poll() is not None:
                    raise AssertionError((root / "api.log").read_text()[-3000:])
                return subprocess.run(check, env=env, capture_output=True).returncode == 0

            wait_until(healthy, 120, "the API's compose healthcheck", interval=0.5)

            # nginx, as compose runs it, with its bind mounts mapped to the rendered files.
            nginx = compose.service("nginx")
            mounts = compose.bind_mounts("nginx")
            conf = map_text(
                mounts["/etc/nginx/nginx.conf"].read_text(),
                {
                    f"server api:{api['expose'][0]};": f"server 127.0.0.1:{api_port};",
                    "/etc/nginx/tls": str(mounts["/etc/nginx/tls"]),
                    "listen 8080;": f"listen 127.0.0.1:{http_port};",
                    "listen 8443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
                },
            )
            prefix = root / "nginx-prefix"
            prefix.mkdir()
            (prefix / "nginx.conf").write_text(conf)
            # Argument by argument: -p's prefix and -c's file are container paths.
            paths = {"/tmp/": f"{prefix}/", "/etc/nginx/nginx.conf": str(prefix / "nginx.conf")}
            command = [paths.get(arg, arg) for arg in nginx["command"]]
            processes.append(start(local_command(command), {}, root / "nginx.log"))

            def nginx_up() -> bool:
                if processes[1].poll() is not None:
                    raise AssertionError((root / "nginx.log").read_text()[-3000:])
                try:
                    return httpx.get(f"http://127.0.0.1:{http_port}/v2/health/live").is_success
                except httpx.TransportError:
                    return False

            wait_until(nginx_up, 30, "nginx in front of the API")
            yield Stack(
                compose,
                cluster,
                database_url,
                f"http://127.0.0.1:{http_port}",
                f"https://127.0.0.1:{https_port}",
                cert,
            )
        finally:
            for process in reversed(processes):
                stop(process)


def test_the_lecture_request_through_nginx(stack: Stack) -> None:
    response = httpx.get(f"{stack.http}/?{LECTURE_QUERY}", headers={"X-Request-ID": "lecture-1"})
    assert response.status_code == 200
    assert response.content == LECTURE_BODY
    assert response.headers["x-request-id"] == "lecture-1"


def test_the_lecture_request_through_tls(stack: Stack) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack.cert))) as client:
        response = client.get(f"{stack.https}/?{LECTURE_QUERY}")
    assert response.status_code == 200
    assert response.content == LECTURE_BODY


def test_metrics_are_not_exposed_through_nginx(stack: Stack) -> None:
    response = httpx.get(f"{stack.http}/metrics")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_a_body_over_the_limit_gets_413_json_from_nginx(stack: Stack) -> None:
    host, port = stack.http.removeprefix("http://").split(":")
    limit = 10 * 1024 * 1024
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"application/json" in head
    assert json.loads(body) == {"error": "request body too large"}


def test_the_iris_table_and_a_read_only_training_role(stack: Stack, tmp_path: Path) -> None:
    trainer = stack.database_url.replace("postgres@", "tabserve_trainer@")
    with psycopg.connect(trainer) as conn:
        assert conn.execute("SELECT count(*) FROM iris").fetchone() == (150,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO iris VALUES (1, 1, 1, 1, 0)")
    # Training from it as the lecture's next step does, through the read-only role.
    env = {"TABSERVE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    env["TABSERVE_DB_PASSWORD_FILE"] = str(
        stack.compose.secret_files()["/run/secrets/trainer_db_password"]
    )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tabserve")), "train", "--source", trainer,
         "--table", "iris", "--target", "target"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trained iris:1" in done.stdout


def test_a_burst_past_the_rate_gets_429_json(stack: Stack) -> None:
    # Last: it spends this client's rate budget. 50 r/s with a burst of 100, no delay.
    statuses: dict[int, int] = {}
    bodies = []
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=stack.http) as client:
        for _ in range(400):
            response = client.get("/v2/health/live")
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 429:
                bodies.append(response.json())
            if statuses.get(429, 0) >= 5 or time.monotonic() > deadline:
                break
    assert statuses.get(429, 0) >= 5, statuses
    assert statuses.get(200, 0) >= 100
    assert bodies[0] == {"error": "too many requests: slow down and retry"}

"""The container health probe: 0 when the ready route answers 200, 1 otherwise."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from tests.support.net import free_port

from tabserve.deploy.healthcheck import main, probe


@pytest.fixture
def server() -> Iterator[tuple[int, dict[str, int]]]:
    state = {"status": 503}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"] if self.path == "/v2/health/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], state
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_healthy_only_when_ready_answers_200(
    server: tuple[int, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, state = server
    monkeypatch.setenv("TABSERVE_PORT", str(port))
    assert main(["healthcheck", "/v2/health/ready"]) == 1
    state["status"] = 200
    assert main(["healthcheck", "/v2/health/ready"]) == 0
    assert probe("/elsewhere", port) is False


def test_nothing_listening_is_unhealthy() -> None:
    assert probe("/v2/health/ready", free_port(), timeout=2) is False

"""`POST /admin/reload` on a 2-worker `tabserve serve iris` that polls the registry once an hour.

The reload reaches one worker; every worker must serve the promoted version when it answers,
and a worker respawned after a kill -9 (which starts from the versions the master resolved at
start) must catch up at once, not at its next hourly poll.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest
from tests.support.models import promote
from tests.support.net import wait_until
from tests.support.server import LECTURE, Server, serve_promoted

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": "Bearer reload-s3cret"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"TABSERVE_PREDICTION_LOG": "false", "TABSERVE_ADMIN_TOKEN": "reload-s3cret"}
    tmp = tmp_path_factory.mktemp("reload")
    with serve_promoted(tmp, 3, "--registry-poll", "3600", env=env) as served:
        yield served


def _versions_seen(server: Server, requests: int = 40) -> set[str]:
    """The versions answering the lecture's GET, each on a new connection (spread by the kernel)."""
    seen = set()
    for _ in range(requests):
        answer = httpx.get(server.url + LECTURE, timeout=10)
        assert answer.status_code == 200
        seen.add(answer.headers["x-model-version"])
    return seen


def test_a_reload_answers_once_every_worker_serves_the_promoted_version(server: Server) -> None:
    assert _versions_seen(server) == {"1"}
    promote(server.home, "iris:2")
    answer = server.client.post("/admin/reload", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["models"][0]["version"] == "2"
    assert sorted(w["pid"] for w in body["workers"]) == sorted(server.worker_pids())
    assert {w["models"][0]["version"] for w in body["workers"]} == {"2"}
    assert _versions_seen(server) == {"2"}  # both workers, without waiting for a poll


def test_a_worker_respawned_after_a_reload_serves_the_reloaded_version(server: Server) -> None:
    promote(server.home, "iris:3")
    assert server.client.post("/admin/reload", headers=ADMIN).status_code == 200
    before = set(server.worker_pids())
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(set(server.worker_pids()) - before) == 1 and len(server.worker_pids()) == 2,
        60,
        "the killed worker respawned",
    )
    wait_until(lambda: _versions_seen(server, 10) == {"3"}, 30, "every worker on iris:3")
    answer = server.client.post("/admin/reload", headers=ADMIN)  # both workers answer again
    assert answer.status_code == 200, answer.text
    assert sorted(w["pid"] for w in answer.json()["workers"]) == sorted(server.worker_pids())

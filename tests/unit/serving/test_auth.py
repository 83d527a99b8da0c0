"""Bearer-token auth: 401 exactly where expected, open health and metrics, tokens from env or file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline
from tests.unit.serving.conftest import FLOWER, make_client

from tabserve.errors import UsageError
from tabserve.serving.auth import BearerAuth, load_tokens, with_auth
from tabserve.settings import Settings
from tabserve.types import Manifest

LECTURE = "/?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
PROTECTED = [
    ("GET", LECTURE, None),
    ("GET", "/models/iris?sepal_length=1&sepal_width=1&petal_length=1&petal_width=1", None),
    ("POST", "/v1/models/iris:predict", {"instances": [FLOWER]}),
    ("POST", "/v2/models/iris/infer", {"inputs": []}),
    ("POST", "/invocations", {"instances": [[7.7, 3.0, 6.1, 2.3]]}),
    ("GET", "/v2", None),
    ("GET", "/v2/models/iris", None),
    ("GET", "/v2/models/iris/ready", None),
    ("GET", "/v1/models/iris", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/version", None),
    ("GET", "/ui", None),
    ("GET", "/no/such/path", None),  # no route discovery without a token either
]
HEALTH = ["/v2/health/live", "/v2/health/ready", "/ping", "/health"]


def test_auth_off_leaves_the_app_itself() -> None:
    app = object()
    assert with_auth(app, Settings()) is app


def test_every_protected_route_answers_401_without_a_token(
    iris: tuple[Manifest, Pipeline],
) -> None:
    for client in make_client(iris, api_tokens="alpha,beta"):
        for method, path, body in PROTECTED:
            response = client.request(method, path, json=body)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == 'Bearer realm="tabserve"'
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"].startswith("missing bearer token")
            assert response.headers["x-request-id"]  # still inside the serving middleware


def test_a_wrong_token_or_scheme_answers_401(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens="alpha,beta"):
        for header in ("Bearer gamma", "Bearer alph", "Bearer alphaa", "Basic YWxwaGE6", "alpha"):
            response = client.get(LECTURE, headers={"Authorization": header})
            assert response.status_code == 401, header
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "traceback" not in response.text.lower()
        wrong = client.get(LECTURE, headers={"Authorization": "Bearer gamma"})
        assert wrong.headers["www-authenticate"] == (
            'Bearer realm="tabserve", error="invalid_token"'
        )


def test_any_configured_token_is_accepted(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens=" alpha , beta "):
        for token in ("alpha", "beta"):
            for scheme in ("Bearer", "bearer"):
                response = client.get(LECTURE, headers={"Authorization": f"{scheme} {token}"})
                assert response.status_code == 200, (scheme, token)
                assert response.content == b'{"prediction":"2"}\n'
        v1 = client.post(
            "/v1/models/iris:predict",
            json={"instances": [FLOWER]},
            headers={"Authorization": "Bearer beta"},
        )
        assert v1.json() == {"predictions": [2]}


def test_health_and_metrics_are_open_by_default(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens="alpha"):
        for path in [*HEALTH, "/metrics"]:
            assert client.get(path).status_code == 200, path


def test_health_and_metrics_can_be_closed(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens="alpha", open_health=False, open_metrics=False):
        for path in [*HEALTH, "/metrics"]:
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"Authorization": "Bearer alpha"}).status_code == 200


def test_metrics_closed_health_open(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens="alpha", open_metrics=False):
        assert client.get("/metrics").status_code == 401
        assert client.get("/v2/health/ready").status_code == 200


def test_the_spec_declares_bearer_auth_when_on(iris: tuple[Manifest, Pipeline]) -> None:
    for client in make_client(iris, api_tokens="alpha"):
        spec = client.get("/openapi.json", headers={"Authorization": "Bearer alpha"}).json()
        assert "401" in spec["paths"]["/v1/models/iris:predict"]["post"]["responses"]


def test_tokens_from_a_file_and_env_together(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# the CI token\nfile-token-1\n\n  file-token-2  \n")
    tokens = load_tokens(Settings(api_tokens="env-token", api_tokens_file=path))
    assert tokens == ["env-token", "file-token-1", "file-token-2"]


@pytest.mark.parametrize(
    "settings",
    [
        {"api_tokens": " , "},
        {"api_tokens": "has space"},
        {"api_tokens": "caf\u00e9"},
    ],
)
def test_unusable_token_settings_are_refused(settings: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        load_tokens(Settings(**settings))


def test_an_unreadable_or_empty_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_tokens(Settings(api_tokens_file=tmp_path / "absent"))
    empty = tmp_path / "empty"
    empty.write_text("# nothing here\n")
    with pytest.raises(UsageError, match="holds no token"):
        load_tokens(Settings(api_tokens_file=empty))


def test_every_token_is_compared() -> None:
    # A match on the last token still counts; a prefix of one never does.
    auth = BearerAuth(object(), ["a" * 32, "b" * 32, "c" * 32], frozenset())
    assert auth.allowed(b"c" * 32)
    assert not auth.allowed(b"c" * 31)
    assert not auth.allowed(b"")

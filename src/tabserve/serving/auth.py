"""Optional bearer-token auth: a pure ASGI middleware in front of the router.

Off unless `TABSERVE_API_TOKENS` (comma-separated) or `TABSERVE_API_TOKENS_FILE` (one token a
line, `#` comments) is set; then every request needs `Authorization: Bearer <token>`, compared
with `hmac.compare_digest` against every configured token (no early exit, so the time taken
says nothing about which token came close). A missing or wrong token answers 401 with
`WWW-Authenticate: Bearer` and tabserve's JSON error body. Health (`/v2/health/*`, `/ping`,
`/health`) and `/metrics` stay open by default so probes and Prometheus need no secret
(`TABSERVE_OPEN_HEALTH=false`, `TABSERVE_OPEN_METRICS=false` close them).

With auth off, `with_auth` returns the app itself: the hot path pays nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import MutableMapping, Sequence
from typing import Any

from tabserve.errors import UnauthorizedError, UsageError
from tabserve.serving.responses import Send, send_error
from tabserve.settings import Settings

__all__ = ["HEALTH_PATHS", "METRICS_PATHS", "BearerAuth", "load_tokens", "open_paths", "with_auth"]

Scope = MutableMapping[str, Any]
ASGIApp = Any

HEALTH_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/ping", "/health"})
METRICS_PATHS = frozenset({"/metrics"})
_REALM = b'Bearer realm="tabserve"'
_INVALID = b'Bearer realm="tabserve", error="invalid_token"'


def _check(token: str, where: str) -> str:
    # A token must fit in a header as one word: visible ASCII, no spaces or commas.
    if not token.isascii() or not all(33 <= ord(c) < 127 and c != "," for c in token):
        raise UsageError(
            f"a token in {where} has spaces, commas or non-ASCII characters: use visible ASCII "
            "only (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


def load_tokens(settings: Settings) -> list[str]:
    """The configured tokens (env and file together); empty when auth is off."""
    tokens: list[str] = []
    configured = False
    if settings.api_tokens is not None:
        configured = True
        raw = settings.api_tokens.get_secret_value()
        tokens += [_check(t.strip(), "TABSERVE_API_TOKENS") for t in raw.split(",") if t.strip()]
    if settings.api_tokens_file is not None:
        configured = True
        path = settings.api_tokens_file
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(
                f"cannot read TABSERVE_API_TOKENS_FILE {path}: {error.__class__.__name__}; "
                "give a readable UTF-8 file with one token a line"
            ) from error
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                tokens.append(_check(line, str(path)))
    if configured and not tokens:
        # Refuse rather than serve with auth silently off (or with nobody able to call).
        raise UsageError(
            "TABSERVE_API_TOKENS / TABSERVE_API_TOKENS_FILE is set but holds no token: add one, "
            "or unset both to serve without auth"
        )
    return tokens


def open_paths(settings: Settings) -> frozenset[str]:
    """The paths answered without a token."""
    paths: frozenset[str] = frozenset()
    if settings.open_health:
        paths |= HEALTH_PATHS
    if settings.open_metrics:
        paths |= METRICS_PATHS
    return paths


def _bearer(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return None
            return token.strip() or None
    return None


class BearerAuth:
    """401 for a request without a configured bearer token, except on the open paths."""

    def __init__(self, app: ASGIApp, tokens: Sequence[str], open_paths: frozenset[str]) -> None:
        if not tokens:
            raise UsageError("BearerAuth needs at least one token")
        self.app = app
        self.tokens = [t.encode("ascii") for t in tokens]
        self.open_paths = open_paths

    def allowed(self, token: bytes) -> bool:
        """Whether token is one of the configured tokens, compared in constant time with each."""
        ok = False
        for expected in self.tokens:
            ok |= hmac.compare_digest(expected, token)
        return ok

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            error = UnauthorizedError(
                "missing bearer token: send the header `Authorization: Bearer <token>`"
            )
            await send_error(send, error, [(b"www-authenticate", _REALM)])
            return
        if not self.allowed(token):
            error = UnauthorizedError("wrong bearer token: use one of the server's API tokens")
            await send_error(send, error, [(b"www-authenticate", _INVALID)])
            return
        await self.app(scope, receive, send)


def with_auth(app: ASGIApp, settings: Settings) -> ASGIApp:
    """app behind BearerAuth when tokens are configured, else app itself (no cost)."""
    tokens = load_tokens(settings)
    if not tokens:
        return app
    return BearerAuth(app, tokens, open_paths(settings))

"""The one exception tree of tabserve.

    TabserveError                   any error tabserve raises on purpose (CLI exit code 2)
    ├── UsageError                  bad options or input to a command (400)
    │   └── DataSourceError         a source that can't be read: missing file, column, table (400)
    ├── DatabaseError               unreachable database, wrong credentials (503)
    ├── DeployError                 the Docker engine failed to build, push or is unreachable
    ├── ArtifactError               an artifact that can't be trusted or loaded (500 at startup only)
    │   ├── IntegrityError          a file whose sha256 differs from the manifest
    │   ├── UntrustedArtifactError  pickle without --trust-pickle, untrusted types in a skops file
    │   └── VersionMismatchError    scikit-learn major.minor differs from the one that trained it
    ├── ModelNotFoundError          unknown model name, version or alias (404)
    └── RequestError                a request the server refuses; carries its HTTP status
        ├── BadRequestError         malformed body: JSON, UTF-8, nesting (400)
        ├── UnauthorizedError       missing or wrong bearer token (401)
        ├── ValidationError         well-formed but wrong for the model's schema (422)
        ├── UnsupportedMediaError   a Content-Type tabserve does not parse (415)
        ├── PayloadTooLargeError    body over --max-body-bytes (413)
        ├── OverloadedError         load shed or prediction log full (503)
        └── RequestTimeoutError     a prediction past --request-timeout (504)

Third-party errors (scikit-learn, psycopg, msgspec, SQLAlchemy) are translated into these at
one boundary with `raise ... from`. Messages say what is wrong and what to do.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class TabserveError(Exception):
    """Base of every error tabserve raises on purpose."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(TabserveError):
    status = HTTPStatus.BAD_REQUEST


class DataSourceError(UsageError):
    pass


class DatabaseError(TabserveError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class DeployError(TabserveError):
    pass


class ArtifactError(TabserveError):
    pass


class IntegrityError(ArtifactError):
    pass


class UntrustedArtifactError(ArtifactError):
    pass


class VersionMismatchError(ArtifactError):
    pass


class ModelNotFoundError(TabserveError):
    status = HTTPStatus.NOT_FOUND


class RequestError(TabserveError):
    """An error answered to an HTTP client; `details` are `{"loc": [...], "msg": ...}` items."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class BadRequestError(RequestError):
    status = HTTPStatus.BAD_REQUEST


class UnauthorizedError(RequestError):
    status = HTTPStatus.UNAUTHORIZED


class ValidationError(RequestError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY


class UnsupportedMediaError(RequestError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class PayloadTooLargeError(RequestError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class OverloadedError(RequestError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class RequestTimeoutError(RequestError):
    status = HTTPStatus.GATEWAY_TIMEOUT

"""Parts every operation shares: JSON content, X-Request-ID, 200 and error responses, ids."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tabserve.serving.openapi.schemas import Schema

ERROR_STATUSES: dict[int, str] = {
    400: "Malformed request: JSON, UTF-8, nesting, compressed body or tensor bytes.",
    401: "Missing or wrong bearer token (when TABSERVE_API_TOKENS is set).",
    404: "Unknown model, version or path.",
    405: "Method not allowed on this path.",
    413: "Body over --max-body-bytes (checked before it is read whole).",
    415: "Content-Type or Content-Encoding tabserve does not parse.",
    422: "Well-formed but wrong for the model's schema; `details` name the feature and row.",
    503: "Not ready yet (model loading or self-test) or overloaded; retry after `Retry-After`.",
    504: "The prediction ran past --request-timeout.",
}
_READ_ERRORS = (400, 404, 405, 503)
_PREDICT_ERRORS = (400, 404, 405, 413, 415, 422, 503, 504)
_LECTURE_ERRORS = (400, 404, 405, 503, 504)


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _request_id_header() -> dict[str, Any]:
    return {
        "X-Request-ID": {
            "description": "The client's X-Request-ID, or one generated for this request.",
            "required": True,
            "schema": {"type": "string"},
        }
    }


def _responses(ok: dict[str, Any], errors: Sequence[int], auth: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({*errors, *((401,) if auth else ())}):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return responses


def _ok(description: str, content: dict[str, Any] | None, model_version: bool = False) -> Any:
    headers = _request_id_header()
    if model_version:
        headers["X-Model-Version"] = {
            "description": "`name:version` of the model that answered.",
            "required": True,
            "schema": {"type": "string"},
        }
    response: dict[str, Any] = {"description": description, "headers": headers}
    if content is not None:
        response["content"] = content
    return response


def _op_id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts)

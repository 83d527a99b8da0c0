"""Server-wide paths: V2 server metadata and health, MLflow health, metrics and docs."""

from __future__ import annotations

from typing import Any

from tabserve.serving.openapi.operations import _READ_ERRORS, _json, _ok, _responses


def _get(tag: str, op: str, summary: str, ok: dict[str, Any], auth: bool) -> dict[str, Any]:
    return {
        "get": {
            "tags": [tag],
            "operationId": op,
            "summary": summary,
            "responses": _responses(ok, _READ_ERRORS, auth),
        }
    }


def _server_paths(auth: bool) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/v2": _get(
            "oip-v2",
            "v2_server_metadata",
            "Server metadata",
            _ok(
                "Name, version and extensions.",
                _json(
                    {
                        "type": "object",
                        "required": ["name", "version", "extensions"],
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "extensions": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
            ),
            auth,
        ),
        "/v2/health/live": _get(
            "oip-v2", "v2_live", "Live as soon as the process serves", _ok("Live.", None), auth
        ),
        "/v2/health/ready": _get(
            "oip-v2",
            "v2_ready",
            "Ready (200) once every model loaded and passed its self-test, else 503",
            _ok("Ready.", None),
            auth,
        ),
        "/ping": _get("mlflow", "mlflow_ping", "MLflow health", _ok("Ready.", None), auth),
        "/health": _get("mlflow", "mlflow_health", "MLflow health", _ok("Ready.", None), auth),
        "/version": _get(
            "mlflow",
            "mlflow_version",
            "Server version",
            _ok("Version.", {**text, **_json({"type": ["string", "object"]})}),
            auth,
        ),
        "/metrics": _get(
            "operations",
            "metrics",
            "Prometheus metrics (text exposition format)",
            _ok("Metrics.", text),
            auth,
        ),
        "/openapi.json": _get(
            "operations",
            "openapi",
            "This document",
            _ok("OpenAPI 3.1.", _json({"type": "object"})),
            auth,
        ),
        "/docs": _get(
            "operations",
            "docs",
            "Interactive documentation (served offline)",
            _ok("Swagger UI.", {"text/html": {"schema": {"type": "string"}}}),
            auth,
        ),
    }

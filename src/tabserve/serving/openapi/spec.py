"""The whole document: every path, the shared error responses and bearer security."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabserve.serving.openapi.kserve_v1 import _kserve_v1
from tabserve.serving.openapi.lecture import _lecture
from tabserve.serving.openapi.mlflow import _mlflow_paths
from tabserve.serving.openapi.oip_v2 import _v2_paths
from tabserve.serving.openapi.operations import ERROR_STATUSES, _json, _request_id_header
from tabserve.serving.openapi.schemas import Schema
from tabserve.serving.openapi.server_paths import _server_paths
from tabserve.types import Manifest

_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong and what to do."},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"type": ["string", "integer"]},
                        "description": "Path to the value: e.g. ['instances', 3, 'petal_width'].",
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}


def _components(auth: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {
        f"Error{status}": {
            "description": text,
            "headers": _request_id_header(),
            "content": _json({"$ref": "#/components/schemas/Error"}),
        }
        for status, text in ERROR_STATUSES.items()
    }
    responses["Error401"]["headers"]["WWW-Authenticate"] = {
        "description": "`Bearer`.",
        "schema": {"type": "string"},
    }
    components: dict[str, Any] = {"schemas": {"Error": _ERROR}, "responses": responses}
    if auth:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return components


def _default(manifests: Sequence[Manifest], default_model: str | None) -> Manifest | None:
    if default_model is not None:
        return next((m for m in manifests if m.name == default_model), None)
    return manifests[0] if len(manifests) == 1 else None


def openapi_spec(
    manifests: list[Manifest],
    default_model: str | None,
    *,
    max_batch_rows: int = 10_000,
    auth: bool = False,
) -> dict[str, Any]:
    """OpenAPI 3.1 for every endpoint tabserve serves, with each model's exact feature schema.

    `default_model` is the model behind the lecture's `GET /` and MLflow's `/invocations`
    (None with one model means that one; with several, those paths are left out: they 404).
    `auth` adds bearer security and 401 answers to every operation.
    """
    paths: dict[str, Any] = {}
    default = _default(manifests, default_model)
    if default is not None:
        paths["/"] = _lecture(default, "default", auth)
    paths.update(_server_paths(auth))
    if default is not None:
        paths.update(_mlflow_paths(default, max_batch_rows, auth))
    for manifest in sorted(manifests, key=lambda m: m.name):
        paths[f"/models/{manifest.name}"] = _lecture(manifest, manifest.name, auth)
        paths.update(_kserve_v1(manifest, max_batch_rows, auth))
        paths.update(_v2_paths(manifest, auth))
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "tabserve",
            "version": "1",
            "description": "Tabular model serving: the lecture's GET contract, KServe V1, "
            "Open Inference Protocol V2 and MLflow scoring. Models: "
            + ", ".join(m.ref for m in sorted(manifests, key=lambda m: m.name))
            + ". Every response carries X-Request-ID (the client's, or a new one).",
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "lecture", "description": "The original Flask contract, byte for byte."},
            {"name": "kserve-v1", "description": "KServe V1 / TF-Serving."},
            {"name": "oip-v2", "description": "Open Inference Protocol V2 (KServe, Triton)."},
            {"name": "mlflow", "description": "MLflow scoring server."},
            {"name": "operations", "description": "Metrics and documentation."},
        ],
        "paths": paths,
        "components": _components(auth),
    }
    if auth:
        spec["security"] = [{"bearer": []}]
    return spec

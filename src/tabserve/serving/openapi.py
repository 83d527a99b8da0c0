"""The OpenAPI 3.1 document for `/openapi.json` and the offline Swagger UI page for `/docs`.

Built from the manifests being served, so each model's features appear exactly: numbers as
`type: number` (the training range is described, never enforced: out-of-range values are
served), categories as `enum`, nullable features with `null` allowed. Every model gets its
own paths (`/v1/models/iris:predict`, not `/v1/models/{name}:predict`) so a fuzzer such as
Schemathesis generates valid bodies for each one.

Batches whose JSON must agree across fields (a V2 tensor's `shape` and `data`) are described
for one row: every body the schema allows is then valid, and the descriptions say that any
number of rows is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabserve.types import Feature, Manifest

__all__ = ["ERROR_STATUSES", "STATIC_DIR", "docs_html", "feature_schema", "openapi_spec"]

Schema = dict[str, Any]

# Served under /docs/assets/ (index.html names its assets there); see static/docs/README.md.
STATIC_DIR = Path(__file__).parent / "static" / "docs"

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
_TENSOR_META: Schema = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
_TENSOR_OUT: Schema = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": ["INT64", "FP64", "BYTES"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}


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


def feature_schema(feature: Feature) -> Schema:
    """The JSON Schema of one feature's value: number or category, with null when nullable."""
    if feature.kind == "category":
        categories: list[Any] = list(feature.categories or [])
        schema: Schema = {"type": "string", "enum": categories}
        if feature.nullable:
            schema = {"type": ["string", "null"], "enum": [*categories, None]}
        schema["description"] = f"Category seen in training ({len(categories)} values)."
        return schema
    schema = {"type": ["number", "null"] if feature.nullable else "number"}
    if feature.min is not None and feature.max is not None:
        # Described, not enforced: values outside the training range are served and counted.
        schema["description"] = (
            f"Training range [{feature.min:g}, {feature.max:g}]; values outside it are served."
        )
        schema["x-training-range"] = [feature.min, feature.max]
    if feature.nullable:
        schema["description"] = schema.get("description", "") + " null means missing."
    return schema


def _row_object(manifest: Manifest) -> Schema:
    return {
        "type": "object",
        "properties": {f.name: feature_schema(f) for f in manifest.features},
        "required": [f.name for f in manifest.features],
        "additionalProperties": False,
    }


def _row_array(manifest: Manifest) -> Schema:
    n = len(manifest.features)
    return {
        "type": "array",
        "prefixItems": [feature_schema(f) for f in manifest.features],
        "items": False,
        "minItems": n,
        "maxItems": n,
        "description": "Values in feature order: " + ", ".join(f.name for f in manifest.features),
    }


def _batch(row: Schema, max_rows: int) -> Schema:
    return {"type": "array", "items": row, "minItems": 1, "maxItems": max_rows}


def _rows(manifest: Manifest, max_rows: int) -> Schema:
    # Every row of one batch in the same form: the server refuses a batch that mixes them.
    return {
        "anyOf": [
            _batch(_row_array(manifest), max_rows),
            _batch(_row_object(manifest), max_rows),
        ]
    }


def _label(manifest: Manifest) -> Schema:
    if manifest.task == "classification" and manifest.classes:
        return {"enum": list(manifest.classes)}
    return {"type": "number"}


def _proba_row(manifest: Manifest) -> Schema:
    n = len(manifest.classes or [])
    return {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "minItems": n,
        "maxItems": n,
        "description": f"Class probabilities in the order {list(manifest.classes or [])}.",
    }


def _classifier(manifest: Manifest) -> bool:
    return manifest.task == "classification" and bool(manifest.classes)


def _op_id(*parts: str) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts)


# --- the lecture's GET contract -------------------------------------------------------


def _lecture(manifest: Manifest, path_id: str, auth: bool) -> dict[str, Any]:
    parameters = []
    for feature in manifest.features:
        schema = feature_schema(feature)
        if feature.kind == "number":
            # A query string cannot carry null: a missing value is a missing argument (422).
            description = str(schema.get("description", "")).replace(" null means missing.", "")
            schema = {"type": "number", **({"description": description} if description else {})}
        else:
            schema = {"type": "string", "enum": list(feature.categories or [])}
        parameters.append({"name": feature.name, "in": "query", "required": True, "schema": schema})
    prediction: Schema = {"type": "string"}
    if _classifier(manifest):
        prediction["enum"] = [str(c) for c in manifest.classes or []]
    ok = _ok(
        'The label as a string, e.g. `{"prediction":"2"}` plus a newline '
        "(Content-Type: application/json; charset=UTF-8), as the lecture's Flask app answers.",
        _json(
            {
                "type": "object",
                "required": ["prediction"],
                "properties": {"prediction": prediction},
                "additionalProperties": False,
            }
        ),
        model_version=True,
    )
    responses = _responses(ok, _LECTURE_ERRORS, auth)
    responses["422"] = {
        "description": "A missing or non-float argument, as a JSON string: "
        '`"argument(s) missing: [\'sepal_width\']"` or `"argument(s) not float: [...]"`.',
        "headers": _request_id_header(),
        "content": _json({"type": "string"}),
    }
    return {
        "get": {
            "tags": ["lecture"],
            "operationId": _op_id("lecture", path_id),
            "summary": f"Predict one row of {manifest.name} from query arguments",
            "parameters": parameters,
            "responses": responses,
        }
    }


# --- KServe V1 ------------------------------------------------------------------------------


def _kserve_v1(manifest: Manifest, max_rows: int, auth: bool) -> dict[str, Any]:
    name = manifest.name
    rows = _rows(manifest, max_rows)
    parameters: Schema = {"type": "object"}
    if _classifier(manifest):
        parameters["properties"] = {
            "probabilities": {
                "type": "boolean",
                "description": "true: answer class probabilities, as :predict_proba.",
            }
        }
    body = {
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: rows, "parameters": parameters},
                "additionalProperties": False,
            }
            for key in ("instances", "inputs")
        ]
    }
    labels = {"type": "array", "items": _label(manifest)}
    predictions: Schema = labels
    if _classifier(manifest):
        predictions = {"anyOf": [labels, {"type": "array", "items": _proba_row(manifest)}]}
    paths: dict[str, Any] = {
        f"/v1/models/{name}": {
            "get": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_model", name),
                "summary": f"{name}: ready state",
                "responses": _responses(
                    _ok(
                        "Ready state.",
                        _json(
                            {
                                "type": "object",
                                "required": ["name", "ready"],
                                "properties": {
                                    "name": {"const": name},
                                    "ready": {"type": "boolean"},
                                },
                            }
                        ),
                    ),
                    _READ_ERRORS,
                    auth,
                ),
            }
        },
        f"/v1/models/{name}:predict": {
            "post": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_predict", name),
                "summary": f"{name}: predict rows (lists in feature order or objects by name)",
                "requestBody": {"required": True, "content": _json(body)},
                "responses": _responses(
                    _ok(
                        "One prediction per row (probabilities with parameters.probabilities).",
                        _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {"predictions": predictions},
                            }
                        ),
                        model_version=True,
                    ),
                    _PREDICT_ERRORS,
                    auth,
                ),
            }
        },
    }
    if _classifier(manifest):
        proba_body = {
            "oneOf": [
                {
                    "type": "object",
                    "required": [key],
                    "properties": {key: rows, "parameters": {"type": "object"}},
                    "additionalProperties": False,
                }
                for key in ("instances", "inputs")
            ]
        }
        paths[f"/v1/models/{name}:predict_proba"] = {
            "post": {
                "tags": ["kserve-v1"],
                "operationId": _op_id("v1_predict_proba", name),
                "summary": f"{name}: class probabilities per row",
                "requestBody": {"required": True, "content": _json(proba_body)},
                "responses": _responses(
                    _ok(
                        "One probability row per input row.",
                        _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {
                                    "predictions": {"type": "array", "items": _proba_row(manifest)}
                                },
                            }
                        ),
                        model_version=True,
                    ),
                    _PREDICT_ERRORS,
                    auth,
                ),
            }
        }
    return paths


# --- Open Inference Protocol V2 ------------------------------------------------------------

_V2_BINARY_NOTE = (
    " Triton's binary tensor extension is accepted too (tritonclient's default): the JSON "
    "header, then raw tensor bytes, with `Inference-Header-Content-Length` giving the JSON "
    "length; inputs carry `parameters.binary_data_size` instead of `data`. Bodies may be "
    "sent with `Content-Encoding: gzip` or `deflate`, and with no Content-Type."
)


_FLOAT32_MAX = 3.4028234663852886e38


def _float32(schema: Any) -> Any:
    """schema with every number bounded to float32's range (FP32 tensors refuse the rest)."""
    if isinstance(schema, list):
        return [_float32(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: _float32(value) for key, value in schema.items()}
    kinds = schema.get("type")
    if kinds == "number" or (isinstance(kinds, list) and "number" in kinds):
        bounded["minimum"] = -_FLOAT32_MAX
        bounded["maximum"] = _FLOAT32_MAX
    return bounded


def _v2_tensor(name: Schema, datatypes: list[str], shape: list[int], data: Schema) -> Schema:
    wide = [d for d in datatypes if d != "FP32"]
    if "FP32" in datatypes and wide:
        return {
            "anyOf": [
                _v2_tensor(name, wide, shape, data),
                _v2_tensor(name, ["FP32"], shape, _float32(data)),
            ]
        }
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": name,
            "shape": {
                "type": "array",
                "prefixItems": [{"const": d} for d in shape],
                "items": False,
                "minItems": len(shape),
            },
            "datatype": {"enum": datatypes},
            "data": data,
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": False},
            },
        },
        "additionalProperties": False,
    }


def _v2_request(manifest: Manifest) -> Schema:
    features = manifest.features
    per_feature = [
        _v2_tensor(
            {"const": f.name},
            ["BYTES"] if f.kind == "category" else ["FP64", "FP32"],
            [1],
            {
                "type": "array",
                "prefixItems": [feature_schema(f)],
                "items": False,
                "minItems": 1,
            },
        )
        for f in features
    ]
    forms: list[Schema] = [
        {
            "type": "array",
            "prefixItems": per_feature,
            "items": False,
            "minItems": len(features),
            "description": "One tensor per feature, named after it (BYTES for categories).",
        }
    ]
    if manifest.all_numeric:
        single = _v2_tensor(
            {"const": "input"},
            ["FP64", "FP32"],
            [1, len(features)],
            {**_row_array(manifest), "description": "Row-major values, feature order."},
        )
        forms.insert(
            0,
            {
                "type": "array",
                "prefixItems": [single],
                "items": False,
                "minItems": 1,
                "description": "One tensor `input` of shape [N, n_features].",
            },
        )
    output_names = ["predict", "predict_proba"] if _classifier(manifest) else ["predict"]
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "Echoed in the response."},
            "parameters": {
                "type": "object",
                "properties": {
                    "binary_data_output": {
                        "const": False,
                        "description": "true asks for binary outputs (see the description).",
                    }
                },
            },
            "inputs": {"anyOf": forms} if len(forms) > 1 else forms[0],
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"enum": output_names},
                        "parameters": {
                            "type": "object",
                            "description": "Triton's binary_data flag (see the description).",
                        },
                    },
                    "additionalProperties": False,
                },
                "description": "Which outputs to answer (default: all).",
            },
        },
        "additionalProperties": False,
    }


def _v2_paths(manifest: Manifest, auth: bool) -> dict[str, Any]:
    name, version = manifest.name, str(manifest.version)
    classes = _classifier(manifest)
    outputs = "`predict`" + (" and `predict_proba` (FP64 [N, n_classes])" if classes else "")
    metadata = {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"const": name},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR_META},
            "outputs": {"type": "array", "items": _TENSOR_META},
        },
    }
    response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"const": name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "outputs": {"type": "array", "items": _TENSOR_OUT},
        },
    }
    infer_ok = _ok(
        f"Outputs {outputs}. With binary outputs the body is the JSON header plus raw bytes "
        "and `Inference-Header-Content-Length` gives the JSON length.",
        {**_json(response), "application/octet-stream": {"schema": {}}},
        model_version=True,
    )
    paths: dict[str, Any] = {}
    for prefix, suffix in (
        (f"/v2/models/{name}", ""),
        (f"/v2/models/{name}/versions/{version}", "_v"),
    ):
        paths[prefix] = {
            "get": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_metadata", name + suffix),
                "summary": f"{name}: metadata (inputs, outputs, versions)",
                "responses": _responses(
                    _ok("Model metadata.", _json(metadata)), _READ_ERRORS, auth
                ),
            }
        }
        paths[f"{prefix}/ready"] = {
            "get": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_ready", name + suffix),
                "summary": f"{name}: ready (200) or still loading (503)",
                "responses": _responses(_ok("Ready.", None), _READ_ERRORS, auth),
            }
        }
        paths[f"{prefix}/infer"] = {
            "post": {
                "tags": ["oip-v2"],
                "operationId": _op_id("v2_infer", name + suffix),
                "summary": f"{name}: infer",
                "description": "Any number of rows N is accepted; the schema shows one row so "
                "that every body it allows is consistent (shape and data agree)." + _V2_BINARY_NOTE,
                "requestBody": {"required": True, "content": _json(_v2_request(manifest))},
                "responses": _responses(infer_ok, _PREDICT_ERRORS, auth),
            }
        }
    return paths


# --- MLflow scoring ---------------------------------------------------------------------------


def _regex_escape(text: str) -> str:
    # re.escape also escapes spaces and dashes, which ECMA-262 regexes (JSON Schema) refuse.
    return re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", text)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_pattern(manifest: Manifest) -> str:
    number = r"-?(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?"
    cells = []
    for f in manifest.features:
        if f.kind == "category":
            cell = "(" + "|".join(_regex_escape(_csv_cell(c)) for c in f.categories or []) + ")"
        else:
            cell = number
        cells.append(f"({cell})?" if f.nullable else cell)
    header = ",".join(_regex_escape(_csv_cell(f.name)) for f in manifest.features)
    row = ",".join(cells)
    return f"^{header}(\\r?\\n{row}){{1,20}}\\r?\\n?$"


def _mlflow_body(manifest: Manifest, max_rows: int) -> Schema:
    rows = _rows(manifest, max_rows)
    names = [f.name for f in manifest.features]
    shapes: dict[str, Schema] = {
        "dataframe_split": {
            "type": "object",
            "required": ["data"],  # columns default to the feature order
            "properties": {
                "columns": {
                    "type": "array",
                    "prefixItems": [{"const": n} for n in names],
                    "items": False,
                    "minItems": len(names),
                },
                "data": _batch(_row_array(manifest), max_rows),
                "index": {"type": "array"},
            },
            "additionalProperties": False,
        },
        "dataframe_records": _batch(_row_object(manifest), max_rows),
        "instances": rows,
        "inputs": rows,
    }
    return {
        "oneOf": [
            {
                "type": "object",
                "required": [key],
                "properties": {key: schema, "params": {"type": "object"}},
                "additionalProperties": False,
            }
            for key, schema in shapes.items()
        ]
    }


def _mlflow_paths(manifest: Manifest, max_rows: int, auth: bool) -> dict[str, Any]:
    predictions: Schema = {"type": "array", "items": _label(manifest)}
    csv = {
        "type": "string",
        "pattern": _csv_pattern(manifest),
        "description": "A header row naming the features, then one row per line.",
    }
    return {
        "/invocations": {
            "post": {
                "tags": ["mlflow"],
                "operationId": "mlflow_invocations",
                "summary": f"MLflow scoring for {manifest.name} (the default model)",
                "requestBody": {
                    "required": True,
                    "content": {
                        **_json(_mlflow_body(manifest, max_rows)),
                        "text/csv": {"schema": csv},
                    },
                },
                "responses": _responses(
                    _ok(
                        "One prediction per row.",
                        _json(
                            {
                                "type": "object",
                                "required": ["predictions"],
                                "properties": {"predictions": predictions},
                            }
                        ),
                        model_version=True,
                    ),
                    _PREDICT_ERRORS,
                    auth,
                ),
            }
        }
    }


# --- server-wide endpoints -------------------------------------------------------------------


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


def docs_html() -> str:
    """The /docs page: Swagger UI loading its assets from /docs/assets/ and the spec from /openapi.json."""
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")

"""The lecture's GET contract: one row from query arguments, at `/` and `/models/NAME`."""

from __future__ import annotations

from typing import Any

from tabserve.serving.openapi.operations import (
    _LECTURE_ERRORS,
    _json,
    _ok,
    _op_id,
    _request_id_header,
    _responses,
)
from tabserve.serving.openapi.schemas import Schema, _classifier, feature_schema
from tabserve.types import Manifest


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

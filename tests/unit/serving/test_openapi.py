"""The OpenAPI document describes each model exactly, validates as 3.1, and /docs works offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from tabserve.serving.openapi import STATIC_DIR, docs_html, feature_schema, openapi_spec
from tabserve.types import Feature, Manifest, RuntimeInfo

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def manifest(name: str, features: list[Feature], **kw: Any) -> Manifest:
    fields: dict[str, Any] = {
        "name": name,
        "version": 3,
        "created_at": "2024-01-01T00:00:00Z",
        "task": "classification",
        "target": "y",
        "classes": [0, 1, 2],
        "data_fingerprint": "0" * 64,
        "source": "iris",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "runtime": RuntimeInfo(kind="onnx", file="model.onnx"),
    }
    fields.update(kw)
    return Manifest(features=features, **fields)


def number(name: str, nullable: bool = False) -> Feature:
    return Feature(
        name=name, column=name, kind="number", dtype="float64", nullable=nullable, min=0.1, max=7.9
    )


IRIS = manifest("iris", [number(n) for n in IRIS_FEATURES])
CARS = manifest(
    "cars",
    [
        number("mileage", nullable=True),
        Feature(
            name="colour",
            column="colour",
            kind="category",
            dtype="object",
            categories=["red", "blue", "a|b"],
        ),
        Feature(
            name="fuel",
            column="fuel",
            kind="category",
            dtype="object",
            nullable=True,
            categories=["diesel", "petrol"],
        ),
    ],
    classes=["cheap", "dear"],
    version=1,
)
HOUSES = manifest(
    "houses", [number("rooms"), number("age")], task="regression", classes=None, version=7
)
ALL = [IRIS, CARS, HOUSES]


def schema_of(spec: dict[str, Any], path: str, method: str = "post") -> Any:
    return spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def check(schema: Any, instance: Any) -> bool:
    """Whether instance matches a schema of the spec (JSON Schema 2020-12, as OpenAPI 3.1)."""
    try:
        jsonschema.Draft202012Validator(schema).validate(instance)
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("auth", [False, True])
@pytest.mark.parametrize(
    ("models", "default"), [([IRIS], None), (ALL, "cars"), (ALL, None), ([], None)]
)
def test_spec_validates_as_openapi_3_1(
    models: list[Manifest], default: str | None, auth: bool
) -> None:
    spec = openapi_spec(models, default, auth=auth)
    OpenAPIV31SpecValidator(spec).validate()
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert spec["openapi"].startswith("3.1")
    operation_ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_endpoint_of_the_server_is_described_per_model() -> None:
    paths = set(openapi_spec(ALL, "iris")["paths"])
    for name, version in (("iris", 3), ("cars", 1), ("houses", 7)):
        v2 = f"/v2/models/{name}"
        assert {
            f"/models/{name}",
            f"/v1/models/{name}",
            f"/v1/models/{name}:predict",
            v2,
            f"{v2}/ready",
            f"{v2}/infer",
            f"{v2}/versions/{version}",
            f"{v2}/versions/{version}/ready",
            f"{v2}/versions/{version}/infer",
        } <= paths
    assert "/v1/models/houses:predict_proba" not in paths  # a regressor has no probabilities
    assert {"/v1/models/iris:predict_proba", "/v1/models/cars:predict_proba"} <= paths
    assert {
        "/",
        "/invocations",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/ping",
        "/health",
        "/version",
        "/metrics",
        "/openapi.json",
        "/docs",
    } <= paths
    assert not any("{" in p for p in paths)  # no templated paths: each model has its own


def test_without_a_default_model_the_lecture_root_and_invocations_are_absent() -> None:
    paths = openapi_spec(ALL, None)["paths"]
    assert "/" not in paths and "/invocations" not in paths
    assert "/models/iris" in paths


def test_numbers_are_numbers_without_range_constraints() -> None:
    schema = feature_schema(number("petal_width"))
    assert schema["type"] == "number"
    assert "minimum" not in schema and "maximum" not in schema
    assert schema["x-training-range"] == [0.1, 7.9]
    assert check(schema, 1e300)  # outside the training range: served
    assert not check(schema, None) and not check(schema, "1.0")


def test_categories_are_enums_and_nullable_features_take_null() -> None:
    colour, fuel = CARS.features[1], CARS.features[2]
    assert feature_schema(colour)["enum"] == ["red", "blue", "a|b"]
    assert feature_schema(colour)["type"] == "string"
    assert feature_schema(fuel)["type"] == ["string", "null"]
    assert check(feature_schema(fuel), None) and not check(feature_schema(colour), None)
    assert not check(feature_schema(colour), "green")
    assert feature_schema(CARS.features[0])["type"] == ["number", "null"]


def test_lecture_has_one_required_query_parameter_per_feature() -> None:
    spec = openapi_spec([IRIS], None)
    for path in ("/", "/models/iris"):
        op = spec["paths"][path]["get"]
        assert [(p["name"], p["in"], p["required"]) for p in op["parameters"]] == [
            (n, "query", True) for n in IRIS_FEATURES
        ]
        assert all(p["schema"]["type"] == "number" for p in op["parameters"])
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert check(ok, {"prediction": "2"}) and not check(ok, {"prediction": "7"})
        missing = op["responses"]["422"]["content"]["application/json"]["schema"]
        assert check(missing, "argument(s) missing: ['sepal_width']")
    cars = openapi_spec(ALL, None)["paths"]["/models/cars"]["get"]["parameters"]
    assert cars[1]["schema"] == {"type": "string", "enum": ["red", "blue", "a|b"]}


def test_kserve_v1_bodies_follow_the_features_exactly() -> None:
    body = schema_of(openapi_spec(ALL, None), "/v1/models/cars:predict")
    assert check(body, {"instances": [[1.5, "red", None], [None, "a|b", "petrol"]]})
    assert check(body, {"instances": [{"mileage": 3, "colour": "blue", "fuel": "diesel"}]})
    assert check(body, {"inputs": [[1.5, "red", "diesel"]], "parameters": {"probabilities": True}})
    assert not check(body, {"instances": [[1.5, "green", None]]})  # unseen category
    assert not check(body, {"instances": [[1.5, None, None]]})  # colour is not nullable
    assert not check(body, {"instances": [[1.5, "red"]]})  # too short
    assert not check(body, {"instances": [{"mileage": 3, "colour": "red", "fuel": None, "x": 1}]})
    assert not check(body, {"instances": []})  # empty batch
    assert not check(body, {"instances": [[1, "red", None]], "inputs": [[1, "red", None]]})


def test_batches_are_bounded_by_max_batch_rows() -> None:
    body = schema_of(openapi_spec([IRIS], None, max_batch_rows=2), "/v1/models/iris:predict")
    assert check(body, {"instances": [[1, 2, 3, 4]] * 2})
    assert not check(body, {"instances": [[1, 2, 3, 4]] * 3})


def test_v2_infer_bodies_follow_the_features_exactly() -> None:
    spec = openapi_spec(ALL, None)
    iris = schema_of(spec, "/v2/models/iris/infer")
    assert iris == schema_of(spec, "/v2/models/iris/versions/3/infer")
    one = {"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [7.7, 3.0, 6.1, 2.3]}
    assert check(iris, {"id": "a", "inputs": [one], "outputs": [{"name": "predict_proba"}]})
    per_feature = [
        {"name": n, "shape": [1], "datatype": "FP32", "data": [1.0]} for n in IRIS_FEATURES
    ]
    assert check(iris, {"inputs": per_feature})
    assert not check(iris, {"inputs": [{**one, "data": [7.7, 3.0, 6.1]}]})
    assert not check(iris, {"inputs": [{**one, "data": [7.7, 3.0, 6.1, None]}]})
    cars = schema_of(spec, "/v2/models/cars/infer")
    tensors = [
        {"name": "mileage", "shape": [1], "datatype": "FP64", "data": [None]},
        {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
        {"name": "fuel", "shape": [1], "datatype": "BYTES", "data": [None]},
    ]
    assert check(cars, {"inputs": tensors})
    assert not check(cars, {"inputs": [{**one, "shape": [1, 3], "data": [1, 2, 3]}]})
    houses = schema_of(spec, "/v2/models/houses/infer")
    assert not check(
        houses,
        {
            "inputs": [{**one, "shape": [1, 2], "data": [1, 2]}],
            "outputs": [{"name": "predict_proba"}],
        },
    )


def test_mlflow_shapes_and_csv() -> None:
    spec = openapi_spec(ALL, "cars")
    content = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]
    body = content["application/json"]["schema"]
    row = [2.0, "red", None]
    assert check(
        body, {"dataframe_split": {"columns": ["mileage", "colour", "fuel"], "data": [row]}}
    )
    assert check(body, {"dataframe_records": [{"mileage": 1, "colour": "a|b", "fuel": "petrol"}]})
    assert check(body, {"instances": [row]}) and check(body, {"inputs": [row], "params": {}})
    assert not check(
        body, {"dataframe_split": {"columns": ["colour", "mileage", "fuel"], "data": [row]}}
    )
    assert not check(body, {"instances": [row], "inputs": [row]})  # exactly one
    pattern = re.compile(content["text/csv"]["schema"]["pattern"])
    assert pattern.search("mileage,colour,fuel\n12.5,a|b,\n,red,diesel\n")
    assert not pattern.search("mileage,colour,fuel\n12.5,green,\n")
    assert not pattern.search("colour,mileage,fuel\nred,12.5,\n")


def test_errors_share_one_body_schema_with_exact_statuses() -> None:
    spec = openapi_spec([IRIS], None, auth=True)
    predict = spec["paths"]["/v1/models/iris:predict"]["post"]["responses"]
    assert set(predict) == {"200", "400", "401", "404", "405", "413", "415", "422", "503", "504"}
    error = spec["components"]["schemas"]["Error"]
    assert check(error, {"error": "bad", "details": [{"loc": ["instances", 0, "x"], "msg": "m"}]})
    assert not check(error, {"details": []})
    for status in ("400", "404", "405", "413", "415", "422", "503", "504"):
        response = spec["components"]["responses"][f"Error{status}"]
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
    assert spec["security"] == [{"bearer": []}]
    assert "401" not in openapi_spec([IRIS], None)["paths"]["/v2"]["get"]["responses"]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_docs_page_loads_only_local_assets_that_exist() -> None:
    parser = _Refs()
    parser.feed(docs_html())
    assert parser.refs
    for ref in parser.refs:
        assert ref.startswith("/docs/assets/"), ref
        assert (STATIC_DIR / ref.removeprefix("/docs/assets/")).is_file()
    setup = (STATIC_DIR / "docs.js").read_text(encoding="utf-8")
    assert '"/openapi.json"' in setup
    assert "validatorUrl: null" in setup  # the stock page would call validator.swagger.io
    assert not re.search(r"https?://", docs_html() + setup)


def test_swagger_ui_licence_and_version_ship_with_it() -> None:
    assert "Apache License" in (STATIC_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "swagger-ui-dist` **5.35.0**" in (STATIC_DIR / "README.md").read_text(encoding="utf-8")
    assert (STATIC_DIR / "swagger-ui-bundle.js").stat().st_size > 1_000_000

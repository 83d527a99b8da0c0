"""The OpenAPI 3.1 document for `/openapi.json` and the offline Swagger UI page for `/docs`.

Built from the manifests being served, so each model's features appear exactly: numbers as
`type: number` (the training range is described, never enforced: out-of-range values are
served), categories as `enum`, nullable features with `null` allowed. Every model gets its
own paths (`/v1/models/iris:predict`, not `/v1/models/{name}:predict`) so a fuzzer such as
Schemathesis generates valid bodies for each one.

Batches whose JSON must agree across fields (a V2 tensor's `shape` and `data`) are described
for one row: every body the schema allows is then valid, and the descriptions say that any
number of rows is accepted.

Modules: `schemas` (feature, row, label, probability, tensor and CSV schemas), `operations`
(responses, error statuses, operation ids), one module of paths per protocol (`lecture`,
`kserve_v1`, `oip_v2`, `mlflow`) plus `server_paths`, `spec` (the assembled document) and
`docs` (the /docs page). Names with a leading underscore are private to this package.
"""

from __future__ import annotations

from tabserve.serving.openapi.docs import STATIC_DIR, docs_html
from tabserve.serving.openapi.operations import ERROR_STATUSES
from tabserve.serving.openapi.schemas import feature_schema
from tabserve.serving.openapi.spec import openapi_spec

__all__ = ["ERROR_STATUSES", "STATIC_DIR", "docs_html", "feature_schema", "openapi_spec"]

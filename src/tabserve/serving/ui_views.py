"""What the UI pages show, computed without HTTP: histogram SVGs, curl examples, live numbers.

Kept apart from `ui.py` (the routes) so each piece is tested on plain values: the live
numbers come from Prometheus text as `metrics.render()` returns it, aggregated over workers.
"""

from __future__ import annotations

import json
import math
import shlex
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup, escape
from prometheus_client.parser import text_string_to_metric_families

from tabserve.monitoring.drift import PSI_THRESHOLD
from tabserve.types import Feature, Histogram, Manifest

__all__ = [
    "PREDICT_ROUTES",
    "REPORT_IMAGES",
    "curl_examples",
    "example_value",
    "histogram_svg",
    "live_snapshot",
    "quantile",
    "runtime_text",
    "training_classes",
]


# Only these report files are ever served: a fixed list, never a path from the URL.
REPORT_IMAGES = {
    "confusion_matrix.png": "Confusion matrix on the test split",
    "feature_importance.png": "Feature importance",
    "predicted_vs_actual.png": "Predicted against actual values on the test split",
}

# Route templates of the prediction endpoints: the live page's request rate counts these only
# (not its own polling, the docs or /metrics).
PREDICT_ROUTES = frozenset(
    {
        "/",
        "/models/{name}",
        "/invocations",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}:predict",
        "/v1/models/{name}:predict_proba",
        "/v1/models/{name}/versions/{version}:predict",
        "/v1/models/{name}/versions/{version}:predict_proba",
    }
)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def histogram_svg(hist: Histogram | None, label: str, width: int = 160, height: int = 36) -> Markup:
    """A small inline SVG of a training histogram: bar area proportional to the rows in each bin.

    Quantile bins have unequal widths, so each bar's height is its density (count / width).
    """
    if hist is None or len(hist.edges) < 2 or not any(hist.counts):
        return Markup("")
    lo, hi = hist.edges[0], hist.edges[-1]
    span = (hi - lo) or 1.0
    bars = []
    for left, right, count in zip(hist.edges, hist.edges[1:], hist.counts, strict=False):
        bars.append((left, right, count, count / ((right - left) or span / 1000)))
    top = max(d for *_, d in bars) or 1.0
    rects = []
    for left, right, count, density in bars:
        x = (left - lo) / span * width
        w = max((right - left) / span * width, 0.5)
        h = density / top * (height - 2)
        rects.append(
            f'<rect x="{x:.2f}" y="{height - h:.2f}" width="{w:.2f}" height="{h:.2f}">'
            f"<title>{_fmt(left)} to {_fmt(right)}: {count} rows</title></rect>"
        )
    name = escape(label)
    # Safe markup: only formatted numbers and the escaped feature name are interpolated.
    return Markup(  # noqa: S704
        f'<svg class="hist" role="img" aria-label="Training histogram of {name}, '
        f'{_fmt(lo)} to {_fmt(hi)}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">{"".join(rects)}</svg>'
    )


def example_value(feature: Feature) -> Any:
    """A plausible value for examples: the training mean (rounded), or the first category."""
    if feature.kind == "category":
        return feature.categories[0] if feature.categories else ""
    if feature.mean is not None:
        return round(feature.mean, 2)
    if feature.min is not None and feature.max is not None:
        return round((feature.min + feature.max) / 2, 2)
    return 0.0


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def curl_examples(manifest: Manifest, base_url: str) -> list[tuple[str, str]]:
    """(protocol, copy-paste curl command) for the lecture GET, KServe V1, OIP V2 and MLflow."""
    base = base_url.rstrip("/")
    name = manifest.name
    row = {f.name: example_value(f) for f in manifest.features}
    query = urlencode(row)
    json_type = "-H 'Content-Type: application/json'"
    v1 = {"instances": [row]}
    if manifest.all_numeric:
        v2: dict[str, Any] = {
            "inputs": [
                {
                    "name": "input",
                    "shape": [1, len(row)],
                    "datatype": "FP64",
                    "data": list(row.values()),
                }
            ]
        }
    else:
        v2 = {
            "inputs": [
                {
                    "name": f.name,
                    "shape": [1],
                    "datatype": "BYTES" if f.kind == "category" else "FP64",
                    "data": [row[f.name]],
                }
                for f in manifest.features
            ]
        }
    mlflow = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
    return [
        ("Lecture GET", f"curl {shlex.quote(f'{base}/models/{name}?{query}')}"),
        (
            "KServe V1",
            f"curl -X POST {shlex.quote(f'{base}/v1/models/{name}:predict')} {json_type} "
            f"-d {shlex.quote(_compact(v1))}",
        ),
        (
            "Open Inference Protocol V2",
            f"curl -X POST {shlex.quote(f'{base}/v2/models/{name}/infer')} {json_type} "
            f"-d {shlex.quote(_compact(v2))}",
        ),
        (
            "MLflow (the default model)",
            f"curl -X POST {shlex.quote(f'{base}/invocations')} {json_type} "
            f"-d {shlex.quote(_compact(mlflow))}",
        ),
    ]


def runtime_text(manifest: Manifest) -> str:
    """The runtime and why: ONNX with its parity check, or scikit-learn with the reason."""
    info = manifest.runtime
    if info.kind == "onnx":
        parity = info.parity or {}
        rows = parity.get("rows")
        if rows is not None:
            return (
                f"onnx (ONNX Runtime; parity checked on {rows} rows, "
                f"{parity.get('label_mismatches', 0)} label mismatches)"
            )
        return "onnx (ONNX Runtime)"
    return f"sklearn ({info.reason or 'scikit-learn serves this model'})"


def training_classes(manifest: Manifest) -> dict[str, float]:
    """Class -> share in the test split (per-class support from training; stratified)."""
    per_class = manifest.metrics.get("per_class")
    if not isinstance(per_class, dict):
        return {}
    support = {str(k): float(v.get("support", 0)) for k, v in per_class.items()}
    total = sum(support.values())
    return {k: v / total for k, v in support.items()} if total else {}


def quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket that holds the q-th observation."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    rank = q * cumulative[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            inside = count - previous_count
            share = (rank - previous_count) / inside if inside else 1.0
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def live_snapshot(text: str, manifest: Manifest) -> dict[str, Any]:
    """What the live page shows, from Prometheus text: cumulative counts the page diffs."""
    requests = errors = rejected = 0.0
    buckets: dict[float, float] = {}
    classes: dict[str, float] = {}
    drift: dict[str, float] = {}
    out_of_range: dict[str, float] = {}
    missing: dict[str, float] = {}
    refused = 0.0
    name, version = manifest.name, str(manifest.version)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "tabserve_http_requests_total":
                if labels.get("route") in PREDICT_ROUTES:
                    status = int(labels.get("status", "0"))
                    requests += sample.value
                    errors += sample.value if status >= 500 else 0
                    rejected += sample.value if 400 <= status < 500 else 0
            elif sample.name == "tabserve_http_request_duration_seconds_bucket":
                if labels.get("route") in PREDICT_ROUTES:
                    le = float(labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
            elif labels.get("model") != name:
                continue
            elif sample.name == "tabserve_predictions_total" and labels.get("version") == version:
                cls = labels.get("class", "")
                classes[cls] = classes.get(cls, 0.0) + sample.value
            elif sample.name == "tabserve_feature_drift_psi":
                drift[labels["feature"]] = sample.value
            elif sample.name == "tabserve_feature_out_of_range_total":
                out_of_range[labels["feature"]] = sample.value
            elif sample.name == "tabserve_feature_missing_total":
                missing[labels["feature"]] = sample.value
            elif sample.name == "tabserve_validation_failures_total":
                refused += sample.value
    bounds = sorted(buckets)
    cumulative = [buckets[b] for b in bounds]
    training = training_classes(manifest)
    labels_seen = [str(c) for c in manifest.classes or []] or sorted(classes)
    predicted = sum(classes.values())
    return {
        "time": time.time(),
        "model": name,
        "version": version,
        "requests": {"total": requests, "errors": errors, "rejected": rejected},
        "latency": {
            "le": [b if math.isfinite(b) else "+Inf" for b in bounds],
            "counts": cumulative,
            "p50": quantile(0.5, bounds, cumulative),
            "p99": quantile(0.99, bounds, cumulative),
        },
        "predictions": predicted,
        "classes": [
            {
                "label": label,
                "live": classes.get(label, 0.0),
                "live_share": classes.get(label, 0.0) / predicted if predicted else 0.0,
                "training_share": training.get(label),
            }
            for label in labels_seen
        ],
        "drift": [
            {
                "feature": f.name,
                "psi": drift.get(f.name),
                "drifting": drift.get(f.name, 0.0) > PSI_THRESHOLD,
                "out_of_range": out_of_range.get(f.name, 0.0),
                "missing": missing.get(f.name, 0.0),
            }
            for f in manifest.features
        ],
        "validation_failures": refused,
        "psi_threshold": PSI_THRESHOLD,
    }

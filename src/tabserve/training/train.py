"""`tabserve train`: read, split, fit, measure, report, convert, stage and publish one version."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tabserve.artifacts import store
from tabserve.artifacts.convert import to_onnx
from tabserve.artifacts.refs import check_name
from tabserve.artifacts.registry import Registry, open_registry
from tabserve.errors import DataSourceError, UsageError
from tabserve.settings import Settings
from tabserve.training import pipeline as pipelines
from tabserve.training import report, schema
from tabserve.training.sources import Dataset, load_source
from tabserve.types import Manifest, RuntimeInfo, Task

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainSpec:
    """What `tabserve train` was asked to do; the defaults are the lecture's."""

    source: str = "iris"
    table: str | None = None
    target: str | None = None
    name: str | None = None
    estimator: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    test_size: float = 0.3
    random_state: int = 47


@dataclass(frozen=True)
class TrainResult:
    """The published manifest, the test metrics and where the artifact lives."""

    manifest: Manifest
    metrics: dict[str, Any]
    location: str


def _check_spec(spec: TrainSpec) -> None:
    if not 0.0 < spec.test_size < 1.0:
        raise UsageError(f"--test-size {spec.test_size} is out of range: give a fraction in (0, 1)")
    if spec.name is not None:
        check_name(spec.name)


def _check_classes(y: pd.Series, task: Task, test_size: float, where: str) -> None:
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataSourceError(
            f"{where}: the target holds one value only ({counts.index[0]!r}): "
            "training needs at least two classes or values"
        )
    if task != "classification":
        return
    test_rows = int(np.ceil(test_size * len(y)))
    if counts.min() < 2 or test_rows < len(counts) or len(y) - test_rows < len(counts):
        raise DataSourceError(
            f"{where}: too few rows per class for a stratified split ({counts.min()} in the "
            f"rarest class, {len(counts)} classes, {len(y)} rows): add data, change "
            "--test-size, or use --task regression for a numeric target"
        )


def _task(spec: TrainSpec, y: pd.Series) -> Task:
    if spec.task is None and spec.estimator is not None:
        # An explicit estimator says what it predicts.
        return pipelines.estimator_task(pipelines.resolve_estimator(spec.estimator))
    return pipelines.infer_task(y, spec.task)


def _default_random_state(model: Any, params: dict[str, Any], random_state: int) -> None:
    final = model.steps[-1][1]
    # Same data, same command, same model: seed the estimator unless the user chose a seed.
    if "random_state" in final.get_params(deep=False) and "random_state" not in params:
        final.set_params(random_state=random_state)


def _fit(model: Any, X: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        with warnings.catch_warnings():
            # A model that stopped early still trains; the metrics say how good it is.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X, y)
    except InvalidParameterError as error:
        raise UsageError(f"--params: {error}") from error
    except ValueError as error:
        raise DataSourceError(f"the estimator can't fit this data: {error}") from error


def _json_params(model: Any) -> dict[str, Any]:
    final = model.steps[-1][1]
    params = final.get_params(deep=False)
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool | None)}


def _location(registry: Registry, manifest: Manifest) -> str:
    from tabserve.artifacts.local import LocalRegistry

    if isinstance(registry, LocalRegistry):
        return str(registry.version_dir(manifest.name, manifest.version))
    return f"{registry.where} ({manifest.ref})"


def train(spec: TrainSpec, settings: Settings, progress: Progress | None = None) -> TrainResult:
    """Train one model version from spec and publish it to the registry."""
    say = progress or (lambda _message: None)
    _check_spec(spec)
    say(f"reading {spec.source}")
    data: Dataset = load_source(
        spec.source, table=spec.table, target=spec.target, settings=settings
    )
    name = spec.name or data.name
    if spec.name is None:
        try:
            check_name(name)
        except UsageError as error:
            raise UsageError(f"{error.message}; name the model with --name") from error
    X = pipelines.prepare_features(data.X)
    y = data.y
    task = _task(spec, y)
    _check_classes(y, task, spec.test_size, data.description)

    from sklearn.model_selection import train_test_split

    say(f"splitting {len(X)} rows (test size {spec.test_size})")
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=spec.test_size,
        random_state=spec.random_state,
        stratify=y if task == "classification" else None,
    )
    model = pipelines.build_pipeline(X, task, spec.estimator, spec.params)
    _default_random_state(model, spec.params, spec.random_state)
    say(f"fitting {type(model.steps[-1][1]).__name__} on {len(X_train)} rows")
    _fit(model, X_train, y_train)

    say(f"measuring on {len(X_test)} test rows")
    y_pred = model.predict(X_test)
    classes = np.asarray(model.classes_).tolist() if task == "classification" else None
    if classes is not None:
        metrics = report.classification_metrics(y_test, y_pred, classes)
    else:
        metrics = report.regression_metrics(y_test, y_pred)
    metrics = {**metrics, "train_rows": len(X_train), "test_rows": len(X_test)}
    importances, method = report.feature_importances(model, X_test, y_test, spec.random_state)
    files = report.report_files(
        task=task,
        metrics=metrics,
        y_test=y_test,
        y_pred=y_pred,
        classes=classes,
        importances=importances,
        method=method,
    )

    manifest = Manifest(
        name=name,
        version=0,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        task=task,
        target=str(y.name),
        features=schema.infer_features(X, nullable=pipelines.imputed_columns(X)),
        classes=classes,
        metrics=metrics,
        data_fingerprint=schema.fingerprint(data.X, y),
        source=data.description,
        estimator=spec.estimator or pipelines.DEFAULT_ESTIMATORS[task],
        params=_json_params(model),
        environment=schema.environment(),
        runtime=RuntimeInfo(kind="sklearn", file=store.MODEL),
    )
    say("converting to ONNX and checking parity")
    onnx_bytes, runtime = to_onnx(model, manifest, pd.concat([X_train, X_test]))
    manifest = msgspec.structs.replace(manifest, runtime=runtime)
    if onnx_bytes is not None:
        files[runtime.file] = onnx_bytes

    say("saving the artifact")
    staged = store.stage(manifest=manifest, pipeline=model, files=files, home=settings.home)
    with open_registry(settings) as registry:
        published = registry.publish(staged)
        location = _location(registry, published)
    return TrainResult(manifest=published, metrics=metrics, location=location)

"""`tabserve import`: turn a model the user already has into a registered tabserve artifact.

A `.skops` file is read with tabserve's trusted types. A pickle or joblib file can run any
code while it loads, so it is opened only when the user says `--trust-pickle`; without it the
file is refused before a single byte is unpickled.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from tabserve.artifacts import store
from tabserve.artifacts.describe import bare_features, check_rows, imputed_columns
from tabserve.artifacts.refs import check_name
from tabserve.artifacts.registry import open_registry
from tabserve.errors import (
    ArtifactError,
    DataSourceError,
    UntrustedArtifactError,
    UsageError,
    VersionMismatchError,
)
from tabserve.settings import Settings
from tabserve.types import Feature, Manifest, RuntimeInfo

_ZIP_MAGIC = b"PK\x03\x04"


def read_model(path: Path, *, trust_pickle: bool, allow_version_mismatch: bool = False) -> Any:
    """The estimator in a skops file, or (only when trusted) in a pickle or joblib file."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist or is not a file: give the path of a saved model")
    with path.open("rb") as f:
        is_zip = f.read(4) == _ZIP_MAGIC
    if path.suffix == ".skops" or is_zip:
        return store.loads_trusted(path.read_bytes(), str(path))
    if not trust_pickle:
        raise UntrustedArtifactError(
            f"{path} is a pickle/joblib file, and loading one runs any code it holds: "
            "import it only if you trust where it came from, with --trust-pickle, "
            "or save the model with skops (skops.io.dump) and import the .skops file"
        )
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            # joblib reads plain pickles too; the user vouched for this file with --trust-pickle.
            model = joblib.load(path)
        except Exception as error:
            raise ArtifactError(
                f"{path} could not be unpickled ({type(error).__name__}: {error}): "
                "it needs the same libraries that saved it"
            ) from error
    mismatched = [w for w in caught if issubclass(w.category, InconsistentVersionWarning)]
    if mismatched and not allow_version_mismatch:
        raise VersionMismatchError(
            f"{path} was saved with another scikit-learn: {mismatched[0].message}; install that "
            "version to import it, or import anyway with --allow-version-mismatch "
            "(TABSERVE_ALLOW_VERSION_MISMATCH=1)"
        )
    return model


def task_of(model: Any) -> tuple[str, list[Any] | None]:
    """'classification' with the class labels, or 'regression'; anything else is refused."""
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if isinstance(model, BaseEstimator) and hasattr(model, "predict"):
        if is_classifier(model) and hasattr(model, "classes_"):
            return "classification", np.asarray(model.classes_).tolist()
        if is_regressor(model):
            return "regression", None
    raise UsageError(
        f"the file holds a {type(model).__module__}.{type(model).__name__}, not a fitted "
        "scikit-learn classifier or regressor"
    )


def model_columns(model: Any, features: list[str] | None, sample: pd.DataFrame | None) -> list[str]:
    """The column names the model itself receives."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    if features:
        return list(features)
    if sample is not None:
        n = getattr(model, "n_features_in_", sample.shape[1])
        return [str(c) for c in sample.columns[:n]]
    raise UsageError(
        "the model was fitted without column names (no feature_names_in_): "
        "give them with --features a,b,c or a sample CSV with --sample"
    )


def client_names(columns: list[str], features: list[str] | None) -> list[str]:
    """The names clients use: --features mapped by position onto the model's columns."""
    if not features:
        return columns
    if len(features) != len(columns):
        raise UsageError(
            f"--features gives {len(features)} names but the model takes {len(columns)} "
            f"columns ({', '.join(columns)}): give one name per column, in that order"
        )
    bad = [f for f in features if not f or any(c.isspace() or c in ",&=?#/" for c in f)]
    if bad or len(set(features)) != len(features):
        raise UsageError(
            f"--features names must be unique and hold no spaces or , & = ? # /: got {features}"
        )
    return list(features)


def read_csv(sample: Path) -> pd.DataFrame:
    """A sample CSV, or one DataSourceError that says what is wrong with it."""
    try:
        frame = pd.read_csv(sample)
    except FileNotFoundError as error:
        raise DataSourceError(f"sample file {sample} does not exist: check the path") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataSourceError(f"sample file {sample} is not a readable CSV ({error})") from error
    if frame.empty:
        raise DataSourceError(f"sample file {sample} has no rows")
    return frame


def sample_rows(
    frame: pd.DataFrame, columns: list[str], names: list[str], target: str | None, where: Path
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The sample's rows under the model's column names (the CSV may use either naming)."""
    y = None
    if target is not None:
        if target not in frame.columns:
            raise DataSourceError(
                f"target column {target!r} is not in {where}: its columns are {list(frame.columns)}"
            )
        y = frame[target]
        frame = frame.drop(columns=[target])
    frame = frame.rename(columns=dict(zip(names, columns, strict=True)))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataSourceError(
            f"sample file {where} lacks the model's columns {missing}: "
            f"its columns are {list(frame.columns)}"
        )
    return frame[columns], y


def _estimator_path(model: Any) -> str:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return f"{type(final).__module__}.{type(final).__name__}"


def _json_params(model: Any) -> dict[str, Any]:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    params = final.get_params(deep=False)
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool | None)}


def import_model(
    path: Path,
    *,
    name: str,
    features: list[str] | None,
    sample: Path | None,
    trust_pickle: bool,
    target: str | None,
    settings: Settings,
) -> Manifest:
    """Read, describe, convert, stage and publish an existing model; return its manifest."""
    check_name(name)
    model = read_model(
        path, trust_pickle=trust_pickle, allow_version_mismatch=settings.allow_version_mismatch
    )
    task, classes = task_of(model)
    raw = None if sample is None else read_csv(sample)
    columns = model_columns(model, features, raw)
    names = client_names(columns, features)
    from tabserve.artifacts import convert
    from tabserve.training import schema

    if sample is not None and raw is not None:
        frame, y = sample_rows(raw, columns, names, target, sample)
        described: list[Feature] = schema.infer_features(
            frame, names, nullable=imputed_columns(model, columns)
        )
        fingerprint = schema.fingerprint(frame, y)
        X_check = frame
    else:
        described = bare_features(model, columns, names)
        fingerprint = ""
        X_check = check_rows(model, described)
    manifest = Manifest(
        name=name,
        version=0,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        task=task,  # type: ignore[arg-type]
        target=target or "target",
        features=described,
        classes=classes,
        metrics={},
        data_fingerprint=fingerprint,
        source=f"import:{path.name}",
        estimator=_estimator_path(model),
        params=_json_params(model),
        environment=schema.environment(),
        runtime=RuntimeInfo(kind="sklearn", file=store.MODEL),
    )
    # The re-saved file must load later with the same trusted list, so check it now.
    store.loads_trusted(_skops_bytes(model), f"{path} re-saved with skops")
    onnx_bytes, runtime = convert.to_onnx(model, manifest, X_check)
    manifest = msgspec.structs.replace(manifest, runtime=runtime)
    files = {} if onnx_bytes is None else {runtime.file: onnx_bytes}
    staged = store.stage(manifest=manifest, pipeline=model, files=files, home=settings.home)
    with open_registry(settings) as registry:
        return registry.publish(staged)


def _skops_bytes(model: Any) -> bytes:
    import skops.io

    data: bytes = skops.io.dumps(model)
    return data

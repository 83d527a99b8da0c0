"""The `tabserve` command: parse options, call the package, print with rich. No logic here.

Heavy modules (scikit-learn, pandas, the server) are imported inside each command so that
`tabserve --help` and `tabserve serve` start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from tabserve.errors import TabserveError
from tabserve.settings import Settings

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Train, register, serve, monitor and deploy tabular scikit-learn models.",
)
models_app = typer.Typer(
    no_args_is_help=True, help="List, show, promote and delete registered models."
)
data_app = typer.Typer(no_args_is_help=True, help="Put example data where training can read it.")
monitor_app = typer.Typer(help="Drift, live accuracy and feedback from the prediction log.")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(monitor_app, name="monitor")

console = Console()
err_console = Console(stderr=True)


def fail(error: TabserveError) -> NoReturn:
    """Print one line that says what is wrong and what to do, and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def settings() -> Settings:
    """The settings from the environment (TABSERVE_*)."""
    return Settings()


# --- train --------------------------------------------------------------------------------


def _print_metrics(metrics: dict[str, Any]) -> None:
    """Print the test metrics: the headline numbers, then one row per class."""
    from rich.table import Table

    table = Table(title="test metrics", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.3f}")
    per_class = metrics.get("per_class") or {}
    if per_class:
        classes = Table(title="per class", title_justify="left")
        for column in ("class", "precision", "recall", "f1", "support"):
            classes.add_column(column, justify="left" if column == "class" else "right")
        for label, row in per_class.items():
            classes.add_row(
                label,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        console.print(table, classes)
        return
    console.print(table)


@app.command("train")
def train(
    source: Annotated[
        str,
        typer.Option(help="iris, csv:PATH or postgresql://USER@HOST:PORT/DB (no password)."),
    ] = "iris",
    table: Annotated[
        str | None, typer.Option(help="The table to read from a postgresql source.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The column to predict.")] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name (default: iris, the CSV's stem or the table).")
    ] = None,
    estimator: Annotated[
        str | None,
        typer.Option(
            help="A scikit-learn estimator, e.g. sklearn.ensemble.RandomForestClassifier."
        ),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option(help="""Estimator parameters as JSON, e.g. '{"n_estimators": 200}'."""),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(help="classification or regression (default: guessed from the target)."),
    ] = None,
    test_size: Annotated[float, typer.Option(help="Fraction of rows held out for testing.")] = 0.3,
    random_state: Annotated[int, typer.Option(help="Seed of the split and the estimator.")] = 47,
) -> None:
    """Train a model, report its test metrics and register it as the next version.

    The database password comes from TABSERVE_DB_PASSWORD or TABSERVE_DB_PASSWORD_FILE.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tabserve.training.pipeline import parse_params
    from tabserve.training.train import TrainSpec
    from tabserve.training.train import train as run_training

    try:
        spec = TrainSpec(
            source=source,
            table=table,
            target=target,
            name=name,
            estimator=estimator,
            params=parse_params(params),
            task=task,
            test_size=test_size,
            random_state=random_state,
        )
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            step = progress.add_task("starting", total=None)

            def report(message: str) -> None:
                progress.update(step, description=message)
                progress.console.print(f"[dim]·[/] {message}", highlight=False)

            result = run_training(spec, settings(), report)
    except TabserveError as error:
        fail(error)
    manifest = result.manifest
    _print_metrics(result.metrics)
    runtime = manifest.runtime
    why = f" ({runtime.reason})" if runtime.reason else ""
    console.print(
        f"trained [bold]{manifest.ref}[/]: {manifest.task}, {len(manifest.features)} features, "
        f"runtime {runtime.kind}{why}",
        highlight=False,
    )
    console.print(f"artifact: {result.location}", highlight=False, soft_wrap=True)
    console.print(f"serve it with: tabserve serve {manifest.name}", highlight=False)


# --- import -------------------------------------------------------------------------------


@app.command("import")
def import_(
    path: Annotated[
        Path, typer.Argument(help="A .skops file, or a pickle/joblib file (with --trust-pickle).")
    ],
    name: Annotated[
        str | None, typer.Option(help="Model name in the registry (default: the file's stem).")
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help="Names clients use, comma-separated, one per model column in order."),
    ] = None,
    sample: Annotated[
        Path | None, typer.Option(help="A CSV of training-like rows for the feature statistics.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The target column in --sample (not a feature).")
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle",
            help="Load a pickle/joblib file: it runs any code it holds, so only for files you trust.",
        ),
    ] = False,
    allow_version_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-version-mismatch", help="Import a pickle saved by another scikit-learn."
        ),
    ] = False,
) -> None:
    """Turn a model you already have into a versioned, verified tabserve artifact."""
    from tabserve.artifacts.importer import import_model

    try:
        conf = settings()
        if allow_version_mismatch:
            conf = conf.model_copy(update={"allow_version_mismatch": True})
        names = [f.strip() for f in features.split(",")] if features else None
        manifest = import_model(
            path,
            name=name or path.stem,
            features=names,
            sample=sample,
            trust_pickle=trust_pickle,
            target=target,
            settings=conf,
        )
    except TabserveError as error:
        fail(error)
    runtime = manifest.runtime
    why = f" ({runtime.reason})" if runtime.reason else ""
    console.print(
        f"imported [bold]{manifest.ref}[/]: {manifest.task}, {len(manifest.features)} features, runtime {runtime.kind}{why}"
    )
    console.print(f"serve it with: tabserve serve {manifest.name}")


# --- predict ------------------------------------------------------------------------------


@app.command("predict")
def predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    input: Annotated[
        Path, typer.Option("--input", help="A CSV with a header row naming the features.")
    ],
    output: Annotated[
        Path, typer.Option("--output", help="Where to write the CSV with predictions.")
    ],
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one proba_CLASS column per class (classifiers).")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on the first bad row instead of skipping it.")
    ] = False,
) -> None:
    """Score a CSV offline through the same validation as the server; bad rows are reported by line."""
    from tabserve.artifacts.registry import open_registry
    from tabserve.serving.inference import load_runtime
    from tabserve.serving.offline import predict_csv

    try:
        conf = settings()
        with open_registry(conf) as registry:
            record = registry.resolve(ref)
            manifest, folder = registry.fetch(record.ref)
        runtime = load_runtime(folder, manifest, threads=conf.intra_op_threads(), settings=conf)
        try:
            scored = predict_csv(manifest, runtime, input, output, proba=proba, strict=strict)
        finally:
            runtime.close()
    except TabserveError as error:
        fail(error)
    for line, message in scored.bad[:50]:
        err_console.print(f"line {line}: {message}", highlight=False, soft_wrap=True)
    if len(scored.bad) > 50:
        err_console.print(f"... and {len(scored.bad) - 50} more bad rows", highlight=False)
    console.print(
        f"{scored.rows} rows scored by {manifest.ref} -> {output}"
        + (f"; {len(scored.bad)} bad rows skipped" if scored.bad else ""),
        highlight=False,
    )


# --- models -------------------------------------------------------------------------------


def _metric_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in list(metrics.items())[:3])


@models_app.command("list")
def models_list() -> None:
    """List every registered version with its aliases, task, runtime and metrics."""
    from rich.table import Table

    from tabserve.artifacts.registry import open_registry

    try:
        with open_registry(settings()) as registry:
            records = registry.list()
            where = registry.where
    except TabserveError as error:
        fail(error)
    if not records:
        console.print(
            f"no models in {where}: train one with `tabserve train` or import one with `tabserve import`"
        )
        return
    table = Table(
        "name",
        "version",
        "aliases",
        "task",
        "runtime",
        "created",
        "metrics",
        title=f"models in {where}",
    )
    for r in records:
        table.add_row(
            r.name,
            str(r.version),
            ", ".join(r.aliases),
            r.task,
            r.runtime,
            r.created_at,
            _metric_text(r.metrics),
        )
    console.print(table)


@models_app.command("show")
def models_show(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS")) -> None:
    """Show one version's manifest: features, classes, metrics, and which runtime serves it and why."""
    from rich.table import Table

    from tabserve.artifacts.registry import open_registry

    try:
        with open_registry(settings()) as registry:
            record = registry.resolve(ref)
            manifest = registry.manifest(record.name, record.version)
    except TabserveError as error:
        fail(error)
    runtime = manifest.runtime
    lines = [
        f"[bold]{manifest.ref}[/]" + "".join(f" @{a}" for a in record.aliases),
        f"created   {manifest.created_at}",
        f"task      {manifest.task} (target {manifest.target})",
        f"estimator {manifest.estimator}",
        f"source    {manifest.source}",
        f"runtime   {runtime.kind} ({runtime.file})"
        + (f": {runtime.reason}" if runtime.reason else ""),
    ]
    if runtime.parity:
        lines.append("parity    " + ", ".join(f"{k} {v}" for k, v in runtime.parity.items()))
    if manifest.classes is not None:
        lines.append(f"classes   {', '.join(map(str, manifest.classes))}")
    if record.metrics:
        lines.append(f"metrics   {_metric_text(record.metrics)}")
    versions = ", ".join(f"{k} {v}" for k, v in manifest.environment.items())
    lines.append(f"trained with {versions}")
    lines.append(f"files     {', '.join(sorted(manifest.files))}")
    for line in lines:
        console.print(line, highlight=False)
    table = Table("feature", "model column", "kind", "nullable", "range / categories")
    for f in manifest.features:
        if f.kind == "category":
            span = ", ".join((f.categories or [])[:8]) + (
                " ..." if len(f.categories or []) > 8 else ""
            )
        elif f.min is not None and f.max is not None:
            span = f"{f.min:g} .. {f.max:g}"
        elif f.mean is not None:
            span = f"mean {f.mean:g}, std {f.std or 0:g}"
        else:
            span = ""
        table.add_row(f.name, f.column, f.kind, "yes" if f.nullable else "no", span)
    console.print(table)


@models_app.command("promote")
def models_promote(
    ref: str = typer.Argument(..., help="NAME:VERSION"),
    alias: str = typer.Argument(..., help="e.g. production"),
) -> None:
    """Point NAME@ALIAS at a version (servers polling the registry pick it up)."""
    from tabserve.artifacts.refs import parse_version_ref
    from tabserve.artifacts.registry import open_registry

    try:
        name, version = parse_version_ref(ref)
        with open_registry(settings()) as registry:
            registry.promote(name, version, alias)
    except TabserveError as error:
        fail(error)
    console.print(f"{name}@{alias} -> {name}:{version}", highlight=False)


@models_app.command("delete")
def models_delete(ref: str = typer.Argument(..., help="NAME:VERSION")) -> None:
    """Delete one version, its aliases and its files."""
    from tabserve.artifacts.refs import parse_version_ref
    from tabserve.artifacts.registry import open_registry

    try:
        name, version = parse_version_ref(ref)
        with open_registry(settings()) as registry:
            registry.delete(name, version)
    except TabserveError as error:
        fail(error)
    console.print(f"deleted {name}:{version}", highlight=False)


# --- data ---------------------------------------------------------------------------------


@data_app.command("load-iris")
def data_load_iris(
    db: Annotated[
        str,
        typer.Option(
            help="postgresql://USER@HOST:PORT/DB; the password from TABSERVE_DB_PASSWORD."
        ),
    ],
    table: Annotated[str, typer.Option(help="Table to (re)create with the Iris data.")] = "iris",
) -> None:
    """Write the Iris data (sepal_length ... petal_width, target) into a Postgres table."""
    from tabserve.training.sources import load_iris_table

    try:
        rows = load_iris_table(db, table, settings())
    except TabserveError as error:
        fail(error)
    console.print(f"wrote {rows} rows into table {table}", highlight=False)
    console.print(
        f"train on it with: tabserve train --source {db} --table {table} --target target",
        highlight=False,
        soft_wrap=True,
    )


# --- serve --------------------------------------------------------------------------------


@app.command("serve")
def serve(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS (default: every model)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default: the usable cores; a container's CPU limit counts)."
        ),
    ] = None,
    request_timeout: Annotated[
        float | None, typer.Option(help="Seconds before a request answers 504.")
    ] = None,
    graceful_timeout: Annotated[
        float | None, typer.Option(help="Seconds to drain in-flight requests on SIGTERM.")
    ] = None,
    default_model: Annotated[
        str | None, typer.Option(help="The model behind GET / and /invocations.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="One log line per request.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="json (default) or console (human-readable).")
    ] = None,
    prediction_log_retention_days: Annotated[
        int | None, typer.Option(help="Prune prediction-log rows older than this.")
    ] = None,
    prediction_log_sync: Annotated[
        bool | None,
        typer.Option(
            "--prediction-log-sync/--no-prediction-log-sync",
            help="Answer only once the request's rows are fsync'd in the spool.",
        ),
    ] = None,
    on_log_full: Annotated[
        str | None, typer.Option(help="When the spool is full: refuse (503, default) or drop.")
    ] = None,
    batch_max_rows: Annotated[
        int | None, typer.Option(help="Adaptive batching: most rows in one predict call.")
    ] = None,
    batch_max_wait_ms: Annotated[
        float | None, typer.Option(help="Adaptive batching: longest wait for more requests.")
    ] = None,
    max_batch_rows: Annotated[
        int | None, typer.Option(help="Most rows accepted in one request (else 422).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body (else 413).")
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(help="Requests in flight per worker; past it 503 + Retry-After (1024)."),
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option(help="Also serve the Open Inference Protocol over gRPC here.")
    ] = None,
    registry_poll: Annotated[
        float | None,
        typer.Option(help="Seconds between registry polls; a moved alias is hot-swapped (2)."),
    ] = None,
    shadow: Annotated[
        list[str] | None,
        typer.Option(
            metavar="REF", help="NAME:VERSION sent a copy of each live request (repeatable)."
        ),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="One in-process server, no worker supervision.")
    ] = False,
) -> None:
    """Serve models over HTTP: the lecture's GET, KServe V1, Open Inference Protocol V2, MLflow."""
    from pydantic import ValidationError as SettingsError

    from tabserve.errors import UsageError
    from tabserve.serving import server

    given: dict[str, Any] = {
        "models": models or None,
        "host": host,
        "port": port,
        "workers": workers,
        "request_timeout": request_timeout,
        "graceful_timeout": graceful_timeout,
        "default_model": default_model,
        "log_level": log_level,
        "access_log": access_log,
        "log_format": log_format,
        "prediction_log_retention_days": prediction_log_retention_days,
        "prediction_log_sync": prediction_log_sync,
        "on_log_full": on_log_full,
        "batch_max_rows": batch_max_rows,
        "batch_max_wait_ms": batch_max_wait_ms,
        "max_batch_rows": max_batch_rows,
        "max_body_bytes": max_body_bytes,
        "max_in_flight": max_in_flight,
        "grpc_port": grpc_port,
        "registry_poll": registry_poll,
        "shadow": shadow or None,
    }
    try:
        try:
            conf = Settings(**{k: v for k, v in given.items() if v is not None})
        except SettingsError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise UsageError(f"invalid option: {problems}") from error
        if dev:
            server.run_dev(conf)
        else:
            server.serve(conf)
    except TabserveError as error:
        fail(error)


# --- monitor ------------------------------------------------------------------------------


class _MonitorGroup(typer.core.TyperGroup):
    """`tabserve monitor NAME` means `tabserve monitor report NAME`; subcommands stay reachable."""

    def resolve_command(self, ctx: typer.Context, args: list[str]):  # type: ignore[no-untyped-def,override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["report", *args]
        return super().resolve_command(ctx, args)


monitor_app.info.cls = _MonitorGroup
monitor_app.info.no_args_is_help = True


@monitor_app.command("report")
def monitor_report(
    name: Annotated[str, typer.Argument(help="model name")],
    since: Annotated[str, typer.Option(help="window: 30m, 24h, 7d")] = "24h",
    out: Annotated[
        Path | None, typer.Option(help="HTML report path (default TABSERVE_HOME/reports/)")
    ] = None,
    psi_threshold: Annotated[
        float, typer.Option(help="PSI above which a feature is flagged")
    ] = 0.2,
    ks_alpha: Annotated[
        float, typer.Option(help="KS p-value below which a feature is flagged")
    ] = 0.001,
) -> None:
    """Drift (PSI, KS), class distribution, out-of-range rates and live accuracy; writes HTML."""
    from rich.table import Table

    from tabserve.monitoring import report as rep
    from tabserve.monitoring.sinks import sink_from_settings

    try:
        s = settings()
        sink = sink_from_settings(s)
        try:
            r = rep.build_report(
                sink, s.home, name, rep.parse_since(since), psi_threshold, ks_alpha
            )
        finally:
            sink.close()
        path = out or rep.default_path(s.home, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rep.render_html(r), encoding="utf-8")
    except TabserveError as error:
        fail(error)
    console.print(f"{name}: {r.rows} live rows since {r.since_text}, versions {r.versions or '-'}")
    table = Table("feature", "PSI", "KS", "KS p", "out of range", "missing", "drift")
    for f in r.features:
        table.add_row(
            f.name,
            rep._fmt(f.psi),
            rep._fmt(f.ks),
            rep._fmt(f.ks_p),
            rep._pct(f.out_of_range),
            rep._pct(f.missing),
            "[bold red]FLAGGED[/]" if f.flagged else "ok",
        )
    console.print(table)
    classes = Table("class", "live", "training")
    for c in r.classes:
        classes.add_row(c["label"], rep._pct(c["live"]), rep._pct(c["train"]))
    console.print(classes)
    perf = r.performance
    if perf.get("labelled"):
        what = (
            f"accuracy {rep._pct(perf['accuracy'])}"
            if perf["accuracy"] is not None
            else f"RMSE {rep._fmt(perf['rmse'])}"
        )
        console.print(f"live performance on {perf['labelled']} labelled rows: {what}")
    else:
        console.print("live performance: no feedback yet")
    console.print(f"report: {path}")


@monitor_app.command("feedback")
def monitor_feedback(
    name: Annotated[str, typer.Argument(help="model name")],
    labels: Annotated[Path, typer.Argument(help="CSV with request_id, row, label")],
) -> None:
    """Attach true labels to logged predictions (by request id and row)."""
    from tabserve.monitoring.feedback import read_csv, record_feedback
    from tabserve.monitoring.sinks import sink_from_settings

    try:
        items = read_csv(labels)
        sink = sink_from_settings(settings())
        try:
            n = record_feedback(sink, name, items)
        finally:
            sink.close()
    except TabserveError as error:
        fail(error)
    console.print(f"{n} labels attached to {name}")


# --- deploy / build -----------------------------------------------------------------------


@app.command("deploy")
def deploy(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
    target: Annotated[
        str, typer.Option(help="docker, compose, k8s or all (compose and k8s include docker).")
    ] = "all",
    image: Annotated[
        str | None, typer.Option(help="Image tag the files name (default tabserve-NAME:VERSION).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Server worker processes per container.")] = 2,
    public_port: Annotated[int, typer.Option(help="The port nginx publishes (compose).")] = 8080,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: adds nginx's TLS server (compose).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
) -> None:
    """Write a Dockerfile, compose stack (nginx, Postgres, Prometheus, Grafana) and Kubernetes files."""
    from tabserve.deploy.render import TARGETS, DeployOptions, render_ref
    from tabserve.errors import UsageError

    try:
        if target not in TARGETS:
            raise UsageError(f"unknown --target {target!r}: use one of {', '.join(TARGETS)}")
        config = settings()
        options = DeployOptions.from_settings(
            config,
            image=image,
            workers=workers,
            public_port=public_port,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        written = render_ref(model, out, target, options, config)
    except TabserveError as error:
        fail(error)
    console.print(f"wrote {len(written)} files into {out}", highlight=False, soft_wrap=True)
    console.print(
        f"next: `tabserve build {model} -t IMAGE`, or `docker compose up --build` in {out}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("build")
def build(
    model: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    tag: Annotated[str, typer.Option("-t", "--tag", help="Image tag, e.g. REGISTRY/iris:1.")],
    push: Annotated[bool, typer.Option(help="Push the image to the registry in its tag.")] = False,
    secret: Annotated[
        list[str] | None,
        typer.Option(help="BuildKit secret id=NAME,src=FILE (e.g. id=pip_conf for an index)."),
    ] = None,
    base_image: Annotated[
        str | None, typer.Option(help="Base image (default python:3.11-slim).")
    ] = None,
    network: Annotated[
        str | None, typer.Option(help="Network for the build's RUN steps, e.g. host.")
    ] = None,
) -> None:
    """Build the model's image with Docker BuildKit (client: TABSERVE_DOCKER, default docker)."""
    from tabserve.deploy.build import build_image

    try:
        result = build_image(
            model,
            tag,
            push=push,
            secrets=secret or [],
            base_image=base_image,
            network=network,
            settings=settings(),
        )
    except TabserveError as error:
        fail(error)
    console.print(f"built {result.tag}{' and pushed it' if result.pushed else ''}")


def main() -> None:
    """Console-script entry point: TabserveError becomes one line on stderr and exit code 2."""
    try:
        app()
    except TabserveError as error:  # raised outside a command's own handler
        err_console.print(f"[bold red]error:[/] {error.message}", highlight=False, soft_wrap=True)
        sys.exit(2)

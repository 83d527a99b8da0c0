"""The production server: granian (a Rust HTTP server) running the ASGI app in N worker processes.

The master resolves and verifies every artifact before it forks (a bad artifact fails
`serve` at once, with nothing served); each worker builds the app after the fork and loads
its runtime in the lifespan (ONNX Runtime sessions are not fork-safe), and granian starts
accepting on that worker only once the lifespan startup is done. Each worker listens on its
own SO_REUSEPORT socket, so the kernel spreads connections evenly. A worker that dies is
replaced by the master; SIGTERM stops accepting, lets in-flight requests finish within
--graceful-timeout, and exits 0.

Why granian rather than gunicorn + uvicorn: HTTP parsing and writing happen in Rust, so a
request costs the worker's Python only the app itself. On the lecture's GET at c=64 (log off,
2 workers, back to back on one machine) the same app answered ~22k req/s with p99 ~6 ms on
granian against 12-17k req/s and p99 7-9 ms under gunicorn + uvicorn, whose two socket writes
per response were a third of a worker's samples.
"""

from __future__ import annotations

import math
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

from tabserve import logging as tlog
from tabserve.errors import UsageError
from tabserve.runtime import threads
from tabserve.serving import metrics, reload
from tabserve.settings import Settings
from tabserve.types import Manifest

__all__ = ["prepare", "run_dev", "serve"]

log = tlog.get_logger("tabserve.server")


def _worker_app(settings: Settings, artifacts: list[tuple[Manifest, Path]]) -> Any:
    """In each worker, after the fork: the ASGI app (granian runs its lifespan before serving)."""
    from tabserve.serving.app import create_app

    tlog.configure(settings.log_level, settings.log_format)
    # numpy's BLAS pool was sized before the fork: cap it as ONNX Runtime's, workers x threads
    # <= cores (ONNX Runtime gets the same number when the lifespan loads the model).
    threads.limit_pools(settings.intra_op_threads())
    metrics.forget_dead_workers()  # a worker killed with SIGKILL left live gauges behind
    return create_app(settings, artifacts=artifacts)


def _server(settings: Settings) -> Any:
    """granian configured from tabserve's settings."""
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    return Server(
        "tabserve",  # a label only: the app comes from `_worker_app` (see serve)
        address=settings.host.strip("[]"),
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True),
        websockets=False,
        log_level=settings.log_level,  # type: ignore[arg-type]  # the same names
        respawn_failed_workers=True,
        respawn_interval=0.1,
        workers_kill_timeout=math.ceil(settings.graceful_timeout),
    )


def prepare(settings: Settings) -> list[tuple[Manifest, Path]]:
    """In the master: resolve every model to a verified folder, or raise a clear TabserveError."""
    from tabserve.artifacts import store
    from tabserve.artifacts.registry import open_registry
    from tabserve.serving.app import resolve_artifacts

    with open_registry(settings) as registry:
        artifacts = resolve_artifacts(settings, registry)
    for manifest, _ in artifacts:
        if manifest.runtime.kind == "sklearn":
            store.check_sklearn_version(
                manifest, allow_version_mismatch=settings.allow_version_mismatch
            )
    return artifacts


def _check_port(host: str, port: int) -> None:
    """Fail fast, before forking, when the address is taken."""
    # With reuse_port only the workers bind: a taken port would fail each worker's boot, and
    # a second server of the same user could share the port without a word.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            raise UsageError(
                f"cannot listen on {host}:{port} ({error.strerror}): stop what holds the port "
                "or choose another with --port"
            ) from error


def serve(settings: Settings) -> None:
    """Run the production server until SIGTERM/SIGINT (blocks)."""
    tlog.configure(settings.log_level, settings.log_format)
    artifacts = prepare(settings)
    for manifest, path in artifacts:
        log.info("serving", model=manifest.name, version=manifest.version, folder=str(path))
    _check_port(settings.host, settings.port)
    threads.limit_env(settings.intra_op_threads())  # for OpenMP/BLAS a worker loads later
    folder = tempfile.mkdtemp(prefix="tabserve-metrics-")
    metrics.prepare_multiprocess_dir(folder)
    # Shared by the workers: an admin reload asked of one is carried out by all (reload.py).
    reload_folder = reload.prepare_dir(tempfile.mkdtemp(prefix="tabserve-reload-"))
    server = _server(settings)
    tlog.configure(settings.log_level, settings.log_format)  # granian set up logging its way
    shipper: Any = None
    if settings.prediction_log:
        from tabserve.monitoring.shipper import start_shipper, stop_shipper

        # The shipper runs beside the workers and outlives them: at exit every worker has
        # flushed its buffer to the spool, and the shipper drains it before the master exits.
        shipper = start_shipper(settings)
        server.on_shutdown(lambda: stop_shipper(shipper))
    try:
        # Workers are forked: the loader (settings and verified artifacts) needs no pickling.
        server.serve(target_loader=lambda: _worker_app(settings, artifacts), wrap_loader=False)
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise UsageError(
                "the server stopped because its workers kept failing: see the log above"
            ) from None
    finally:
        if shipper is not None:
            stop_shipper(shipper)  # no-op when the shutdown hook already stopped it
        metrics.remove_multiprocess_dir(folder)
        reload.remove_dir(reload_folder)


def run_dev(settings: Settings) -> None:
    """One in-process uvicorn server (no supervision): `tabserve serve --dev`."""
    import uvicorn

    from tabserve.serving.app import create_app

    tlog.configure(settings.log_level, settings.log_format)
    app = create_app(settings, artifacts=prepare(settings))
    shipper = None
    if settings.prediction_log:
        from tabserve.monitoring.shipper import ShipperThread

        shipper = ShipperThread(settings).start()
    # uvicorn re-raises the SIGTERM it handled once it has shut down; with the default handler
    # that would kill the process before the shipper drains. This one lets run() return.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            server_header=False,
            access_log=False,
            log_level=settings.log_level,
            log_config=None,  # keep tabserve's structured logging for uvicorn's own lines
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        # uvicorn returns after the lifespan flushed the buffer: the spool is complete.
        if shipper is not None:
            shipper.stop()

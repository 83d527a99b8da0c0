"""The production server: gunicorn supervising uvicorn workers (uvloop + httptools).

The master resolves and verifies every artifact before it forks (a bad artifact fails
`serve` at once, with nothing served); each worker builds the app after the fork and loads
its runtime in the lifespan (ONNX Runtime sessions are not fork-safe). A worker that dies is
replaced by the master; SIGTERM stops accepting, lets in-flight requests finish within
--graceful-timeout, and exits 0.
"""

from __future__ import annotations

import math
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from uvicorn_worker import UvicornWorker

from tabserve import logging as tlog
from tabserve.errors import UsageError
from tabserve.serving import metrics
from tabserve.settings import Settings
from tabserve.types import Manifest

__all__ = ["TabserveWorker", "prepare", "run_dev", "serve"]

log = tlog.get_logger("tabserve.server")


class TabserveWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn under gunicorn: uvloop, httptools, no Server header, no uvicorn access log."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012  # the parent's class attribute
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "server_header": False,
        "access_log": False,
        "proxy_headers": False,
    }


def _child_exit(server: Any, worker: Any) -> None:
    metrics.mark_worker_dead(worker.pid)


def _when_ready(server: Any) -> None:
    # Listening, not yet forked: the shipper runs beside the workers, supervised by the master.
    server.app.start_shipper()


def _on_exit(server: Any) -> None:
    # Every worker has exited and flushed its buffer to the spool: the shipper drains it.
    server.app.stop_shipper()


class StructuredGunicornLogger(GunicornLogger):  # type: ignore[misc]
    """gunicorn's own lines (worker boots, signals) through tabserve's structured logs."""

    def setup(self, cfg: Any) -> None:
        """Keep gunicorn's levels, drop its handlers: records go to the root's JSON handler."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers[:] = []
        self.error_log.propagate = True


class TabserveApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn configured in code: no config file and no command line of its own."""

    def __init__(self, settings: Settings, artifacts: list[tuple[Manifest, Path]]) -> None:
        self.settings = settings
        self.artifacts = artifacts
        self.shipper: Any = None
        super().__init__()

    def start_shipper(self) -> None:
        """In the master: start the prediction-log shipper process (when the log is on)."""
        if self.settings.prediction_log and self.shipper is None:
            from tabserve.monitoring.shipper import start_shipper

            self.shipper = start_shipper(self.settings)

    def stop_shipper(self) -> None:
        """In the master at exit: let the shipper drain the spool, then stop it."""
        if self.shipper is not None:
            from tabserve.monitoring.shipper import stop_shipper

            stop_shipper(self.shipper)
            self.shipper = None

    def load_config(self) -> None:
        """gunicorn settings from tabserve's."""
        s = self.settings
        options = {
            "bind": [f"{_host(s.host)}:{s.port}"],
            "workers": s.workers,
            "worker_class": f"{__name__}.TabserveWorker",
            "graceful_timeout": math.ceil(s.graceful_timeout),
            # The heartbeat: a worker silent this long is killed and replaced.
            "timeout": max(30, math.ceil(2 * s.request_timeout)),
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "logger_class": f"{__name__}.StructuredGunicornLogger",
            "loglevel": s.log_level,
            "child_exit": _child_exit,
            "when_ready": _when_ready,
            "on_exit": _on_exit,
            "proc_name": "tabserve",
            # A listening socket per worker (SO_REUSEPORT): the kernel spreads connections
            # over the workers. With one shared socket it handed 58 of wrk's 64 keep-alive
            # connections to one worker of two, which then bounded the whole server.
            "reuse_port": True,
            # gunicorn's control socket sits at one fixed path per user: servers would collide.
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the app in the worker, after the fork."""
        from tabserve.serving.app import create_app

        tlog.configure(self.settings.log_level, self.settings.log_format)
        return create_app(self.settings, artifacts=self.artifacts)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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
    folder = tempfile.mkdtemp(prefix="tabserve-metrics-")
    metrics.prepare_multiprocess_dir(folder)
    application = TabserveApplication(settings, artifacts)
    try:
        application.run()
    finally:
        application.stop_shipper()  # no-op when on_exit already stopped it
        metrics.remove_multiprocess_dir(folder)


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

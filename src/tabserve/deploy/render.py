"""`tabserve deploy`: render the deployment files of one registered model into a folder.

Templates are real files in package data (`templates/`), rendered with Jinja2; this module
only computes their values. Targets:
    docker   Dockerfile, .dockerignore and the build context (wheel, lock, seeded registry)
    compose  docker + compose.yaml, nginx.conf, init.sql, prometheus.yml, grafana/, secrets/
    k8s      docker + k8s/ (Deployment, Service, HPA, PDB, ConfigMap, KServe)
    all      everything
"""

from __future__ import annotations

import math
import re
import secrets
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml

from tabserve.deploy.context import write_context
from tabserve.errors import UsageError
from tabserve.settings import Settings
from tabserve.types import Manifest

Target = Literal["docker", "compose", "k8s", "all"]
TARGETS: tuple[Target, ...] = ("docker", "compose", "k8s", "all")

# The server's routes the deployment files point at (checked against the app in tests).
LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"

HOME_IN_IMAGE = "/var/lib/tabserve"
SECRETS_DIR = "/run/secrets"
COMPOSE_SECRETS = (
    "postgres_password",
    "app_db_password",
    "trainer_db_password",
    "grafana_admin_password",
)
K8S_FILES = (
    "configmap.yaml",
    "deployment.yaml",
    "service.yaml",
    "hpa.yaml",
    "pdb.yaml",
    "kserve.yaml",
)
ERROR_PAGES = (
    (400, "bad request"),
    (413, "request body too large"),
    (414, "request URI too long"),
    (429, "too many requests: slow down and retry"),
    (431, "request headers too large"),
    (502, "the model server is unavailable: retry later"),
    (503, "service unavailable: retry later"),
    (504, "the model server did not answer in time"),
)


@dataclass
class DeployOptions:
    """What a deployment may change; the defaults are a small production setup."""

    image: str | None = None  # default tabserve-NAME:VERSION
    base_image: str = "python:3.11-slim"
    uid: int = 10001
    port: int = 8000
    workers: int = 2
    graceful_timeout: float = 30.0
    request_timeout: float = 30.0
    max_body_bytes: int = 10 * 1024 * 1024
    public_port: int = 8080
    listen_port: int = 8080  # nginx inside its container (unprivileged: above 1024)
    public_tls_port: int = 8443
    tls_port: int = 8443
    tls_cert: Path | None = None
    tls_key: Path | None = None
    rate_per_second: int = 50
    burst: int = 100
    conn_limit: int = 64
    client_timeout: int = 10
    replicas: int = 2
    max_replicas: int = 10
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    prestop_seconds: int = 5
    kserve_port: int = 8080
    database: str = "tabserve"
    nginx_image: str = "nginxinc/nginx-unprivileged:1.27-alpine"
    postgres_image: str = "postgres:16-bookworm"
    prometheus_image: str = "prom/prometheus:v2.54.1"
    grafana_image: str = "grafana/grafana:11.2.0"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DeployOptions:
        """Options whose timeouts and limits match the server's settings."""
        values: dict[str, Any] = {
            "graceful_timeout": settings.graceful_timeout,
            "request_timeout": settings.request_timeout,
            "max_body_bytes": settings.max_body_bytes,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def app_name(manifest: Manifest) -> str:
    """A DNS-1123 name for Kubernetes objects: tabserve-NAME."""
    slug = re.sub(r"[^a-z0-9-]+", "-", manifest.name.lower()).strip("-") or "model"
    return f"tabserve-{slug}"[:53]


def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("tabserve.deploy") / "templates"))
    # These are config files, not HTML: escaping would corrupt them.
    return jinja2.Environment(
        loader=loader,
        autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def values(manifest: Manifest, options: DeployOptions, wheel: str) -> dict[str, Any]:
    """Every value the templates use."""
    graceful = _seconds(options.graceful_timeout)
    tls = options.tls_cert is not None
    return {
        "ref": manifest.ref,
        "name": manifest.name,
        "version": manifest.version,
        "app": app_name(manifest),
        "project": app_name(manifest),
        "image": options.image or f"tabserve-{manifest.name.lower()}:{manifest.version}",
        "base_image": options.base_image,
        "wheel": wheel,
        "uid": options.uid,
        "home": HOME_IN_IMAGE,
        "port": options.port,
        "workers": options.workers,
        "graceful_timeout": graceful,
        "request_timeout": _seconds(options.request_timeout),
        "stop_timeout": math.ceil(options.graceful_timeout) + 5,
        "termination_grace": options.prestop_seconds + math.ceil(options.graceful_timeout) + 5,
        "prestop_seconds": options.prestop_seconds,
        "proxy_timeout": math.ceil(options.request_timeout) + 5,
        "client_timeout": options.client_timeout,
        "max_body_bytes": options.max_body_bytes,
        "rate_per_second": options.rate_per_second,
        "burst": options.burst,
        "conn_limit": options.conn_limit,
        "upstream": f"api:{options.port}",
        "listen_port": options.listen_port,
        "public_port": options.public_port,
        "tls": tls,
        "tls_port": options.tls_port,
        "public_tls_port": options.public_tls_port,
        "tls_cert": "/etc/nginx/tls/cert.pem",
        "tls_key": "/etc/nginx/tls/key.pem",
        "error_pages": ERROR_PAGES,
        "live_path": LIVE_PATH,
        "ready_path": READY_PATH,
        "metrics_path": METRICS_PATH,
        "database": options.database,
        "secrets": COMPOSE_SECRETS,
        "secrets_dir": SECRETS_DIR,
        "secret_name": f"{app_name(manifest)}-db",
        "prediction_log_url": "",
        "replicas": options.replicas,
        "max_replicas": options.max_replicas,
        "cpu_request": options.cpu_request,
        "cpu_limit": options.cpu_limit,
        "memory_request": options.memory_request,
        "memory_limit": options.memory_limit,
        "kserve_port": options.kserve_port,
        "nginx_image": options.nginx_image,
        "postgres_image": options.postgres_image,
        "prometheus_image": options.prometheus_image,
        "grafana_image": options.grafana_image,
        **options.extra,
    }


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def write_secrets(out: Path) -> list[Path]:
    """Random compose secrets under out/secrets (kept when present) and a .gitignore for them."""
    folder = out / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    # Only the owner may enter the folder; the files are readable inside the containers,
    # whose users are not the host's (compose bind-mounts file secrets as they are).
    folder.chmod(0o700)
    written = []
    for name in COMPOSE_SECRETS:
        path = folder / name
        if not path.exists():  # a re-render must not change passwords a data volume holds
            _write(path, secrets.token_urlsafe(32), 0o644)
        written.append(path)
    written.append(
        _write(
            out / ".gitignore",
            "# Generated secrets and keys: never commit.\nsecrets/\ntls/\n.env\n",
        )
    )
    return written


def _iris_values() -> dict[str, Any]:
    from tabserve.training.sources import IRIS_FEATURES, IRIS_TARGET, iris_frame

    frame = iris_frame()
    rows = [
        [repr(float(v)) for v in row[:-1]] + [str(int(row[-1]))]
        for row in frame[[*IRIS_FEATURES, IRIS_TARGET]].itertuples(index=False)
    ]
    return {"feature_columns": IRIS_FEATURES, "target_column": IRIS_TARGET, "iris_rows": rows}


def _dashboards_dir() -> Path:
    # The monitoring part ships a Grafana dashboard and a scrape config here.
    return Path(str(resources.files("tabserve.deploy"))) / "dashboards"


def _copy_dashboards(out: Path) -> None:
    dashboards = out / "grafana" / "dashboards"
    dashboards.mkdir(parents=True, exist_ok=True)
    source = _dashboards_dir()
    if source.is_dir():
        for path in sorted(source.glob("*.json")):
            shutil.copy(path, dashboards / path.name)


def prometheus_config(rendered: str, port: int) -> str:
    """The monitoring part's scrape config when it ships one, pointed at the compose API."""
    shipped = _dashboards_dir() / "prometheus.yml"
    if not shipped.is_file():
        return rendered
    config = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            static["targets"] = [f"api:{port}"]
    header = "# Prometheus for the tabserve compose stack, from tabserve's scrape config:\n"
    header += "# it scrapes the API inside the network (nginx does not expose /metrics).\n"
    return header + str(yaml.safe_dump(config, sort_keys=False))


def _copy_tls(out: Path, options: DeployOptions) -> None:
    if options.tls_cert is None:
        return
    if options.tls_key is None:
        raise UsageError("--tls-cert needs --tls-key: give the private key's path too")
    for src in (options.tls_cert, options.tls_key):
        if not src.is_file():
            raise UsageError(f"{src} does not exist: give the path of a PEM file")
    folder = out / "tls"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o700)
    for src, name in ((options.tls_cert, "cert.pem"), (options.tls_key, "key.pem")):
        shutil.copy(src, folder / name)
        (folder / name).chmod(0o644)


def render(
    manifest: Manifest,
    artifact: Path,
    out: Path,
    target: Target = "all",
    options: DeployOptions | None = None,
) -> list[Path]:
    """Render the deployment files of one model version into out; return the files written."""
    if target not in TARGETS:
        raise UsageError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    if options is None:
        options = DeployOptions()
    if options.tls_key is not None and options.tls_cert is None:
        raise UsageError("--tls-key needs --tls-cert: give the certificate's path too")
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    wheel = write_context(out, manifest, artifact)
    context = values(manifest, options, wheel)
    written = [out / "requirements.lock", out / "environment.yml", out / "wheels" / wheel]

    written.append(_write(out / "Dockerfile", env.get_template("Dockerfile.j2").render(context)))
    written.append(_write(out / ".dockerignore", env.get_template("dockerignore").render(context)))

    if target in {"compose", "all"}:
        _copy_tls(out, options)
        compose_values = {**context, **_iris_values()}
        for name in ("compose.yaml", "nginx.conf", "init.sql", "prometheus.yml"):
            text = env.get_template(f"{name}.j2").render(compose_values)
            if name == "prometheus.yml":
                text = prometheus_config(text, options.port)
            written.append(_write(out / name, text))
        provisioning = out / "grafana" / "provisioning"
        written.append(
            _write(
                provisioning / "datasources" / "tabserve.yaml",
                env.get_template("grafana/datasource.yaml").render(context),
            )
        )
        written.append(
            _write(
                provisioning / "dashboards" / "tabserve.yaml",
                env.get_template("grafana/dashboards.yaml").render(context),
            )
        )
        _copy_dashboards(out)
        written += write_secrets(out)

    if target in {"k8s", "all"}:
        for name in K8S_FILES:
            template = env.get_template(f"k8s/{name}.j2")
            written.append(_write(out / "k8s" / name, template.render(context)))
    return written


def render_ref(
    ref: str,
    out: Path,
    target: Target = "all",
    options: DeployOptions | None = None,
    settings: Settings | None = None,
) -> list[Path]:
    """Fetch ref from the registry the settings name and render its deployment files."""
    from tabserve.artifacts.registry import open_registry

    settings = settings or Settings()
    with open_registry(settings) as registry:
        manifest, artifact = registry.fetch(ref)
        return render(manifest, artifact, out, target, options)

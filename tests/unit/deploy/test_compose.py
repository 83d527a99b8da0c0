"""The rendered compose stack: `docker-compose config` accepts it, and it is wired safely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tabserve.deploy.render import READY_PATH, DeployOptions, render
from tabserve.types import Manifest


def _compose(folder: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((folder / "compose.yaml").read_text()))


def test_docker_compose_config_accepts_it_as_generated(rendered: Path, rendered_tls: Path) -> None:
    compose = Path(sys.executable).with_name("docker-compose")
    for folder in (rendered, rendered_tls):
        done = subprocess.run(
            [str(compose), "-f", "compose.yaml", "config", "-q"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def test_only_nginx_publishes_a_port(rendered: Path) -> None:
    services = _compose(rendered)["services"]
    assert {name for name, svc in services.items() if svc.get("ports")} == {"nginx"}
    assert set(services) == {"nginx", "api", "postgres", "prometheus", "grafana"}


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(rendered: Path) -> None:
    services = _compose(rendered)["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    assert "api" in services["nginx"]["depends_on"]
    assert "postgres" in services["api"]["depends_on"]


def test_api_runs_read_only_without_capabilities_and_probes_ready(rendered: Path) -> None:
    api = _compose(rendered)["services"]["api"]
    assert api["read_only"] is True
    assert api["cap_drop"] == ["ALL"]
    assert api["tmpfs"] == ["/tmp"]
    assert api["user"].split(":")[0] != "0"
    assert api["healthcheck"]["test"][-1] == READY_PATH
    assert api["command"] == ["tabserve", "serve", "iris:1"]
    assert api["environment"]["TABSERVE_DB_PASSWORD_FILE"].startswith("/run/secrets/")


def test_secrets_are_random_files_kept_across_renders_and_ignored_by_git(
    iris_artifact: tuple[Manifest, Path], tmp_path: Path
) -> None:
    manifest, artifact = iris_artifact
    out = tmp_path / "out"
    render(manifest, artifact, out, "compose", DeployOptions())
    compose = _compose(out)
    files = {name: out / spec["file"] for name, spec in compose["secrets"].items()}
    values = {name: path.read_text() for name, path in files.items()}
    assert len(set(values.values())) == len(values) >= 4
    assert all(len(v) >= 32 for v in values.values())
    assert "secrets/" in (out / ".gitignore").read_text().splitlines()
    assert oct((out / "secrets").stat().st_mode & 0o777) == "0o700"
    # A second render must not change passwords an existing data volume already holds.
    render(manifest, artifact, out, "compose", DeployOptions())
    assert {name: path.read_text() for name, path in files.items()} == values
    # No secret value is written into any other generated file.
    texts = [
        p.read_text()
        for p in out.rglob("*")
        if p.is_file()
        and p.suffix in {"", ".yaml", ".conf", ".sql", ".yml"}
        and "secrets" not in p.parts
    ]
    assert not [v for v in values.values() for t in texts if v in t]


def test_volumes_for_the_registry_and_postgres_data(rendered: Path) -> None:
    compose = _compose(rendered)
    assert {"registry", "pgdata"} <= set(compose["volumes"])
    assert "registry:/var/lib/tabserve" in compose["services"]["api"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_grafana_gets_the_dashboard_and_prometheus_scrapes_the_api(rendered: Path) -> None:
    dashboards = list((rendered / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "the monitoring dashboard was not copied"
    prometheus = yaml.safe_load((rendered / "prometheus.yml").read_text())
    targets = [
        t
        for job in prometheus["scrape_configs"]
        for s in job["static_configs"]
        for t in s["targets"]
    ]
    assert targets == ["api:8000"]
    assert {job["metrics_path"] for job in prometheus["scrape_configs"]} == {"/metrics"}


def test_environment_yml_pins_what_the_lock_pins(rendered: Path) -> None:
    env = yaml.safe_load((rendered / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    lock = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (rendered / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    pinned = [p for p in pip if "==" in p]
    assert len(pinned) >= 10
    for requirement in pinned:
        name, version = requirement.split("==")
        assert lock[name.split("[")[0].lower().replace("_", "-")] == version
    assert pip[-1].startswith("./wheels/tabserve-")

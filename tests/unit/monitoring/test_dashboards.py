"""The shipped Grafana dashboard queries only metrics tabserve exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

import tabserve
from tabserve.serving import metrics

DASHBOARDS = Path(tabserve.__file__).parent / "deploy" / "dashboards"


def exported_names() -> set[str]:
    names = set()
    for metric in metrics._registry.collect():
        names.add(metric.name)
        names.update({f"{metric.name}_total", f"{metric.name}_bucket", f"{metric.name}_count"})
    return names


def test_every_dashboard_metric_is_exported() -> None:
    dash = json.loads((DASHBOARDS / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dash["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\btabserve_[a-z_]+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    assert used <= exported_names(), used - exported_names()


def test_scrape_config_targets_metrics() -> None:
    config = yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"

"""The Kubernetes manifests: valid for Kubernetes 1.30 (strict), and safe to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError
from tests.unit.deploy.helpers import load_yaml_docs
from tests.unit.deploy.kserve_schema import SCHEMAS

from tabserve.deploy.render import K8S_FILES, LIVE_PATH, READY_PATH
from tabserve.settings import Settings

K8S_VERSION = "1.30.0"


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [doc for name in K8S_FILES for doc in load_yaml_docs(folder / "k8s" / name)]


def _kind(folder: Path, kind: str) -> dict[str, Any]:
    return next(doc for doc in _docs(folder) if doc["kind"] == kind)


def test_every_core_manifest_is_valid_for_kubernetes_1_30_strict(rendered: Path) -> None:
    core = [d for d in _docs(rendered) if not str(d["apiVersion"]).startswith("serving.kserve.io")]
    assert {d["kind"] for d in core} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in core:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_removed_api_version_is_refused() -> None:
    # The check above must be able to fail: autoscaling/v2beta2 was removed in 1.26.
    hpa = {
        "apiVersion": "autoscaling/v2beta2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": 2},
    }
    with pytest.raises(SchemaNotFoundError):
        kubernetes_validate.validate(hpa, K8S_VERSION, strict=True)


def test_kserve_resources_match_the_crd_schema_and_their_containers_are_valid(
    rendered: Path,
) -> None:
    docs = load_yaml_docs(rendered / "k8s" / "kserve.yaml")
    assert [d["kind"] for d in docs] == ["ServingRuntime", "InferenceService"]
    for doc in docs:
        jsonschema.validate(doc, SCHEMAS[str(doc["kind"])])
    runtime, service = docs
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert service["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"]
    assert service["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kserve-container-check"},
        "spec": {"containers": runtime["spec"]["containers"]},
    }
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    container = runtime["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["ports"][0]["containerPort"] == int(env["TABSERVE_PORT"])
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH


def test_the_derived_kserve_schema_refuses_an_unknown_field(rendered: Path) -> None:
    service = load_yaml_docs(rendered / "k8s" / "kserve.yaml")[1]
    service["spec"]["predictor"]["model"]["protocol"] = "v2"  # a typo KServe would prune
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(service, SCHEMAS["InferenceService"])


def test_deployment_probes_the_health_routes_on_the_server_port(rendered: Path) -> None:
    deployment = _kind(rendered, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH
    assert container["startupProbe"]["httpGet"]["path"] == READY_PATH
    assert container["livenessProbe"]["httpGet"]["path"] == LIVE_PATH
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    config = _kind(rendered, "ConfigMap")["data"]
    assert int(config["TABSERVE_PORT"]) == port
    assert _kind(rendered, "Service")["spec"]["ports"][0]["targetPort"] == "http"


def test_deployment_runs_non_root_read_only_without_privilege_escalation(rendered: Path) -> None:
    pod = _kind(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"] + pod["initContainers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_termination_grace_covers_prestop_and_the_server_drain(rendered: Path) -> None:
    pod = _kind(rendered, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    prestop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    graceful = Settings().graceful_timeout
    assert float(_kind(rendered, "ConfigMap")["data"]["TABSERVE_GRACEFUL_TIMEOUT"]) == graceful
    assert pod["terminationGracePeriodSeconds"] > prestop + graceful


def test_secret_is_referenced_never_embedded(rendered: Path) -> None:
    kinds = [d["kind"] for d in _docs(rendered)]
    assert "Secret" not in kinds
    volumes = _kind(rendered, "Deployment")["spec"]["template"]["spec"]["volumes"]
    secret = next(v["secret"] for v in volumes if "secret" in v)
    assert secret["secretName"] == "tabserve-iris-db"


def test_hpa_and_pdb_select_the_deployment(rendered: Path) -> None:
    hpa = _kind(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == _kind(rendered, "Deployment")["metadata"]["name"]
    )
    labels = _kind(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for key, value in _kind(rendered, "PodDisruptionBudget")["spec"]["selector"][
        "matchLabels"
    ].items():
        assert labels[key] == value

"""The rendered Dockerfile: hadolint, and the facts a parse of it shows."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

from tabserve.deploy.render import READY_PATH
from tabserve.settings import Settings

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def _parse(path: Path) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))


def _instructions(path: Path) -> list[dict[str, str]]:
    return [i for i in _parse(path).structure if i["instruction"] != "COMMENT"]


def test_hadolint_passes_without_ignore_comments(rendered: Path) -> None:
    text = (rendered / "Dockerfile").read_text()
    assert "hadolint" not in text.lower()
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run(
        [str(hadolint), "--no-color", str(rendered / "Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_final_user_is_numeric_and_not_root(rendered: Path) -> None:
    users = [
        i["value"] for i in _instructions(rendered / "Dockerfile") if i["instruction"] == "USER"
    ]
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0
    assert not group or (group.isdigit() and int(group) != 0)


def test_healthcheck_probes_the_ready_route_with_python(rendered: Path) -> None:
    checks = [
        i for i in _instructions(rendered / "Dockerfile") if i["instruction"] == "HEALTHCHECK"
    ]
    assert len(checks) == 1
    exec_form = json.loads(checks[0]["value"].split("CMD", 1)[1])
    assert exec_form == ["python", "-m", "tabserve.deploy.healthcheck", READY_PATH]


def test_no_env_or_arg_name_carries_a_secret(rendered: Path) -> None:
    parser = _parse(rendered / "Dockerfile")
    names = list(parser.envs) + list(parser.args)
    for item in parser.structure:
        if item["instruction"] in {"ENV", "ARG"}:
            names += re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", item["value"])
    assert names, "the parse found no ENV/ARG at all"
    assert [n for n in names if SECRET_NAME.search(n)] == []


def test_build_secret_comes_through_a_buildkit_mount(rendered: Path) -> None:
    runs = [i["value"] for i in _instructions(rendered / "Dockerfile") if i["instruction"] == "RUN"]
    assert any("--mount=type=secret,id=pip_conf" in run for run in runs)


def test_two_stages_and_the_runtime_copies_only_venv_and_registry(rendered: Path) -> None:
    structure = _instructions(rendered / "Dockerfile")
    froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]
    runtime_start = max(n for n, i in enumerate(structure) if i["instruction"] == "FROM")
    runtime = structure[runtime_start:]
    copies = [i["value"] for i in runtime if i["instruction"] in {"COPY", "ADD"}]
    assert copies == [
        "--from=build /opt/venv /opt/venv",
        "--chown=10001:10001 home/ /var/lib/tabserve/",
    ]
    assert not [i for i in runtime if i["instruction"] == "RUN"]


def test_base_image_is_a_build_arg_and_cmd_is_exec_form(rendered: Path) -> None:
    structure = _instructions(rendered / "Dockerfile")
    assert structure[0]["instruction"] == "ARG"
    assert structure[0]["value"] == "BASE_IMAGE=python:3.11-slim"
    cmd = [i["value"] for i in structure if i["instruction"] == "CMD"][-1]
    assert json.loads(cmd) == ["tabserve", "serve", "iris:1"]


def test_stop_signal_and_graceful_timeout_match_the_server(rendered: Path) -> None:
    parser = _parse(rendered / "Dockerfile")
    signals = [i["value"] for i in parser.structure if i["instruction"] == "STOPSIGNAL"]
    assert signals == ["SIGTERM"]
    graceful = Settings().graceful_timeout
    assert float(parser.envs["TABSERVE_GRACEFUL_TIMEOUT"]) == graceful


def test_dockerignore_sends_only_what_the_dockerfile_copies(rendered: Path) -> None:
    lines = [
        line
        for line in (rendered / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!requirements.lock", "!wheels/", "!home/"} <= set(lines)


def test_the_context_holds_the_wheel_the_lock_and_a_registry_with_the_model(rendered: Path) -> None:
    wheels = list((rendered / "wheels").glob("tabserve-*-py3-none-any.whl"))
    assert len(wheels) == 1
    assert wheels[0].name in (rendered / "Dockerfile").read_text()
    assert "scikit-learn==" in (rendered / "requirements.lock").read_text()
    assert (rendered / "home" / "registry.db").is_file()
    assert (rendered / "home" / "models" / "iris" / "1" / "manifest.json").is_file()

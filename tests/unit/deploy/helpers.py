"""Shared by the deploy tests: a trained Iris model, rendered output, a self-signed TLS pair."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tabserve.artifacts.local import LocalRegistry
from tabserve.deploy.render import DeployOptions, render
from tabserve.settings import Settings
from tabserve.training.train import TrainSpec, train
from tabserve.types import Manifest

LECTURE_QUERY = "sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3"
LECTURE_BODY = b'{"prediction":"2"}\n'


def trained_iris(home: Path) -> tuple[Manifest, Path]:
    """Train the lecture's Iris model into a registry at home; its manifest and folder."""
    settings = Settings(home=home, registry_url=None)
    result = train(TrainSpec(), settings)
    with LocalRegistry.open(settings) as registry:
        return registry.fetch(result.manifest.ref)


def self_signed_pair(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for CN=localhost made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def render_all(manifest: Manifest, artifact: Path, out: Path, **options: object) -> Path:
    """Render every target into out with the given options."""
    render(manifest, artifact, out, "all", DeployOptions(**options))  # type: ignore[arg-type]
    return out


def load_yaml_docs(path: Path) -> list[dict[str, object]]:
    """Every YAML document in a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]

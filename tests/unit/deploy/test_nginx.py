"""nginx.conf: `nginx -t` accepts it (with and without TLS); limits and errors are as designed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tabserve.deploy.render import ERROR_PAGES, METRICS_PATH


def nginx_binary() -> str:
    """Debian's nginx (tests/setup-system.sh installs nginx-light)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        pytest.fail("nginx is not installed: run `bash tests/setup-system.sh`")
    return found


def local_config(rendered: Path, prefix: Path, upstream: str = "127.0.0.1:9") -> Path:
    """The rendered config with compose's hostnames mapped to loopback and TLS paths to files."""
    text = (rendered / "nginx.conf").read_text()
    text = text.replace("server api:8000;", f"server {upstream};")
    text = text.replace("/etc/nginx/tls/", f"{rendered / 'tls'}/")
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(text)
    return path


def _nginx_t(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_binary(), "-t", "-p", f"{prefix}/", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_nginx_accepts_the_config(rendered: Path, tmp_path: Path) -> None:
    done = _nginx_t(local_config(rendered, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr


def test_nginx_accepts_the_config_with_tls(rendered_tls: Path, tmp_path: Path) -> None:
    config = local_config(rendered_tls, tmp_path)
    assert "ssl_certificate " in config.read_text()
    done = _nginx_t(config, tmp_path)
    assert done.returncode == 0, done.stderr


def test_nginx_refuses_a_broken_config(rendered: Path, tmp_path: Path) -> None:
    config = local_config(rendered, tmp_path)
    config.write_text(config.read_text().replace("client_max_body_size", "client_max_body_sise"))
    assert _nginx_t(config, tmp_path).returncode != 0


def test_limits_follow_the_server_settings(rendered: Path) -> None:
    text = (rendered / "nginx.conf").read_text()
    assert re.search(r"client_max_body_size 10485760;", text)
    assert "limit_req zone=" in text and "limit_conn " in text
    assert "keepalive 32;" in text
    assert "proxy_set_header X-Request-ID $tabserve_request_id;" in text


def test_json_error_pages_and_metrics_closed(rendered: Path) -> None:
    text = (rendered / "nginx.conf").read_text()
    for code, _ in ERROR_PAGES:
        assert f"error_page {code} /_tabserve/error/{code};" in text
        assert re.search(rf"return {code} '\{{\"error\":", text)
    assert f"location ^~ {METRICS_PATH} {{" in text

"""A wheel of the installed tabserve, made from its files, so an image needs no package index.

It works for a regular and an editable install alike, needs no build backend, and is
byte-for-byte reproducible (fixed timestamps), so Docker's layer cache holds across builds.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from pathlib import Path

import tabserve
from tabserve.errors import UsageError

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode('ascii')}"


def _metadata(dist: importlib.metadata.Distribution) -> str:
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not text:
        raise UsageError(
            "the installed tabserve has no METADATA: reinstall it with `pip install -e .` or "
            "`pip install tabserve`"
        )
    return text


def wheel_name() -> str:
    """The file name of the wheel build_wheel writes."""
    version = importlib.metadata.version("tabserve")
    return f"tabserve-{version}-py3-none-any.whl"


def build_wheel(out_dir: Path) -> Path:
    """Write tabserve-VERSION-py3-none-any.whl of the installed package into out_dir."""
    dist = importlib.metadata.distribution("tabserve")
    version = dist.version
    package_dir = Path(tabserve.__file__).parent
    dist_info = f"tabserve-{version}.dist-info"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / wheel_name()
    partial = target.with_suffix(".partial")
    records: list[str] = []

    def add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
        info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
        records.append(f"{arcname},{_record_hash(data)},{len(data)}")

    with zipfile.ZipFile(partial, "w") as zf:
        for path in sorted(package_dir.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix in _SKIP_SUFFIXES:
                continue
            arcname = "tabserve/" + path.relative_to(package_dir).as_posix()
            add(zf, arcname, path.read_bytes())
        add(zf, f"{dist_info}/METADATA", _metadata(dist).encode("utf-8"))
        wheel_meta = (
            "Wheel-Version: 1.0\nGenerator: tabserve.deploy.wheel\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        )
        add(zf, f"{dist_info}/WHEEL", wheel_meta.encode("ascii"))
        entry_points = dist.read_text("entry_points.txt")
        if entry_points:
            add(zf, f"{dist_info}/entry_points.txt", entry_points.encode("utf-8"))
        add(zf, f"{dist_info}/top_level.txt", b"tabserve\n")
        record_name = f"{dist_info}/RECORD"
        record = "\n".join([*records, f"{record_name},,"]) + "\n"
        info = zipfile.ZipInfo(record_name, date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        zf.writestr(info, record.encode("utf-8"))
    partial.replace(target)
    return target

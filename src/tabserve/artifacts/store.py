"""The artifact folder: stage it, verify every sha256, load the pipeline with skops.

A version folder holds `model.skops` (the fitted pipeline), optional extra files (`model.onnx`,
`report/...`) and `manifest.json`, whose `files` maps every other file to its sha256. Nothing
is loaded before every listed hash matches, and skops only builds the types in `trust.TRUSTED`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import msgspec

from tabserve.artifacts.trust import TRUSTED
from tabserve.errors import (
    ArtifactError,
    IntegrityError,
    UntrustedArtifactError,
    VersionMismatchError,
)
from tabserve.settings import Settings
from tabserve.types import Manifest

MANIFEST = "manifest.json"
MODEL = "model.skops"
_CHUNK = 1024 * 1024


def encode_manifest(manifest: Manifest) -> bytes:
    """manifest.json's bytes: msgspec JSON, indented for people reading it."""
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def decode_manifest(data: bytes | str, where: str = MANIFEST) -> Manifest:
    """Parse manifest.json; a broken one is an IntegrityError naming `where`."""
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as error:
        raise IntegrityError(
            f"{where} is not a valid tabserve manifest ({error}): re-train or re-import the model"
        ) from error


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_relpath(rel: str) -> str:
    """Return `rel` if it is a plain artifact-relative path (no `..`, not absolute), else raise."""
    parts = PurePosixPath(rel).parts
    if (
        not rel
        or "\\" in rel
        or "\x00" in rel
        or rel.startswith("/")
        or any(p in {"", ".", ".."} for p in parts)
        or rel.split("/") != list(parts)
    ):
        raise ArtifactError(
            f"artifact file path {rel!r} is not a plain relative path inside the folder"
        )
    return rel


def _inside(folder: Path, rel: str) -> Path:
    """The real path of `rel` under `folder`, refusing symlinks that lead out of it."""
    target = folder / check_relpath(rel)
    if not target.resolve().is_relative_to(folder.resolve()):
        raise IntegrityError(f"{rel} points outside the artifact folder: re-train or re-import it")
    return target


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file, creating its parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Replace manifest.json atomically (temp file + rename), e.g. to set the version."""
    tmp = folder / f".{MANIFEST}.tmp"
    write_file(tmp, encode_manifest(manifest))
    tmp.replace(folder / MANIFEST)
    fsync_dir(folder)


def new_temp_dir(home: Path, prefix: str) -> Path:
    """A new empty folder under TABSERVE_HOME/tmp (same filesystem, so a rename publishes it)."""
    root = home / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def stage(
    *,
    manifest: Manifest,
    pipeline: object,
    files: dict[str, bytes],
    home: Path | None = None,
) -> Path:
    """Write a complete artifact into a new staging folder under TABSERVE_HOME/tmp and return it."""
    import skops.io

    contents = {MODEL: skops.io.dumps(pipeline)}
    for rel, data in files.items():
        if check_relpath(rel) in {MODEL, MANIFEST}:
            raise ArtifactError(f"extra artifact file {rel!r} would overwrite {rel}: rename it")
        contents[rel] = data
    if manifest.runtime.file not in contents:
        raise ArtifactError(
            f"the manifest's runtime loads {manifest.runtime.file!r}, which is not among the "
            f"artifact's files {sorted(contents)}"
        )
    home = home or Settings().home
    folder = new_temp_dir(home, "stage-")
    for rel, data in contents.items():
        write_file(folder / rel, data)
    hashes = {rel: sha256_bytes(data) for rel, data in sorted(contents.items())}
    write_manifest(folder, msgspec.structs.replace(manifest, files=hashes))
    return folder


def _listed(manifest: Manifest) -> Iterator[tuple[str, str]]:
    for rel, expected in manifest.files.items():
        if check_relpath(rel) == MANIFEST:
            raise IntegrityError("manifest.json lists itself: re-train or re-import the model")
        yield rel, expected


def _mismatch(rel: str, actual: str, expected: str) -> IntegrityError:
    return IntegrityError(
        f"{rel}: sha256 is {actual}, manifest says {expected}: "
        "the artifact was changed or truncated; re-train or re-import it"
    )


def verify(path: Path) -> Manifest:
    """Read manifest.json and check the sha256 of every file it lists; return the manifest."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError(
            f"{manifest_path} is missing: this is not a tabserve artifact, or it was damaged; "
            "re-train or re-import it"
        )
    manifest = decode_manifest(manifest_path.read_bytes(), str(manifest_path))
    if MODEL not in manifest.files:
        raise IntegrityError(f"{MANIFEST} does not list {MODEL}: re-train or re-import the model")
    for rel, expected in _listed(manifest):
        target = _inside(path, rel)
        if not target.is_file():
            raise IntegrityError(
                f"{rel}: missing, manifest says sha256 {expected}: "
                "the artifact was changed or truncated; re-train or re-import it"
            )
        actual = sha256_file(target)
        if actual != expected:
            raise _mismatch(rel, actual, expected)
    return manifest


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_sklearn_version(manifest: Manifest, *, allow_version_mismatch: bool = False) -> None:
    """Refuse an artifact trained with another scikit-learn major.minor, unless allowed."""
    import sklearn

    trained = manifest.environment.get("scikit-learn")
    running = sklearn.__version__
    if trained is None or _major_minor(trained) == _major_minor(running):
        return
    if allow_version_mismatch or Settings().allow_version_mismatch:
        return
    raise VersionMismatchError(
        f"{manifest.ref} was trained with scikit-learn {trained} but {running} is running: "
        "install scikit-learn "
        f"{'.'.join(_major_minor(trained))}.*, re-train the model, or load it anyway with "
        "--allow-version-mismatch (TABSERVE_ALLOW_VERSION_MISMATCH=1)"
    )


def loads_trusted(data: bytes, what: str) -> object:
    """Build an object from skops bytes with tabserve's trusted types only."""
    import skops.io

    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED))
    except Exception as error:  # skops raises zipfile/JSON errors of many kinds for a bad file
        raise ArtifactError(f"{what} is not a readable skops file ({error})") from error
    if untrusted:
        raise UntrustedArtifactError(
            f"{what} contains types tabserve does not trust: {', '.join(untrusted)}; "
            "only scikit-learn, numpy and scipy types used by supported pipelines are loaded"
        )
    try:
        return skops.io.loads(data, trusted=TRUSTED)
    except Exception as error:
        raise ArtifactError(f"{what} could not be loaded by skops ({error})") from error


def load_pipeline(
    path: Path, manifest: Manifest, *, allow_version_mismatch: bool = False
) -> object:
    """Verify the artifact, check the scikit-learn version, and load model.skops safely."""
    verified = verify(path)
    if verified.files != manifest.files:
        raise IntegrityError(
            f"{path / MANIFEST} differs from the manifest the caller holds for {manifest.ref}: "
            "the artifact was replaced; fetch it again"
        )
    check_sklearn_version(verified, allow_version_mismatch=allow_version_mismatch)
    # Hash the very bytes skops reads, so a file swapped after verify() is still caught.
    data = (path / MODEL).read_bytes()
    actual = sha256_bytes(data)
    if actual != verified.files[MODEL]:
        raise _mismatch(MODEL, actual, verified.files[MODEL])
    return loads_trusted(data, f"{manifest.ref} {MODEL}")

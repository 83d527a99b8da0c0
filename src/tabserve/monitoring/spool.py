"""The on-disk spool of the prediction log: append-only segments of checksummed frames.

Each serving worker appends to its own segment `PID-SEQ.open`; one frame per flush (a group of
requests), written with one `write` and fsync'd. A segment is closed by renaming it to `.seg`
(after ~1 s or 4 MiB); the shipper ships closed segments and deletes them after the database
commit. A segment left `.open` by a worker that died is closed by the shipper. A torn last
frame (a worker killed mid-write) fails its checksum and ends the read: every frame before it
is intact. A frame whose checksum holds but whose contents cannot be decoded (written by a
bug, never by a crash) is set aside in `rejected/`, under its segment's name, and the rest of
the segment ships: one bad frame never stops the log behind it.

No I/O here runs on the event loop: the worker calls `SpoolWriter` from one writer thread.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import psutil

HEADER = struct.Struct("<II")  # payload length, crc32 of payload
OPEN_SUFFIX = ".open"
CLOSED_SUFFIX = ".seg"
SEGMENT_BYTES = 4 * 1024 * 1024
SEGMENT_AGE_S = 1.0
REJECTED_DIR = "rejected"


def spool_dir(home: Path) -> Path:
    """Where a server's workers spool prediction-log rows under TABSERVE_HOME."""
    return home / "spool" / "predictions"


def frame(payload: bytes) -> bytes:
    """One frame: header (length, crc32) then the payload."""
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(path: Path) -> Iterator[bytes]:
    """Every intact frame of a segment, in order; stops at a torn or corrupt tail."""
    data = path.read_bytes()
    pos, end = 0, len(data)
    while pos + HEADER.size <= end:
        length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        payload = data[start : start + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return
        yield payload
        pos = start + length


def set_aside(folder: Path, segment: Path, payloads: list[bytes]) -> Path:
    """Keep frames the shipper cannot decode in `rejected/SEGMENT`; returns that file.

    Written whole (and fsync'd) before the segment is deleted, so shipping the segment again
    after a crash writes the same file again.
    """
    target = folder / REJECTED_DIR / segment.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        handle.write(b"".join(frame(payload) for payload in payloads))
        handle.flush()
        os.fsync(handle.fileno())
    return target


class SpoolWriter:
    """One worker's appender: frames go to its open segment, which rotates by size and age."""

    def __init__(
        self,
        folder: Path,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        segment_age_s: float = SEGMENT_AGE_S,
        fsync: bool = True,
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.segment_age_s = segment_age_s
        self.fsync = fsync
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened = 0.0
        self._seq = 0
        folder.mkdir(parents=True, exist_ok=True)

    def _open(self) -> int:
        pid = os.getpid()
        while True:
            self._seq += 1
            # The nanosecond clock keeps names unique when a pid is reused after a restart.
            name = f"{pid}-{time.time_ns()}-{self._seq:06d}{OPEN_SUFFIX}"
            path = self.folder / name
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            self._fd, self._path, self._size, self._opened = fd, path, 0, time.monotonic()
            return fd

    def append(self, payload: bytes) -> int:
        """Write one frame and fsync it; returns the bytes written."""
        fd = self._fd if self._fd is not None else self._open()
        data = frame(payload)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if self.fsync:
            os.fsync(fd)
        self._size += len(data)
        if self._size >= self.segment_bytes:
            self.close_segment()
        return len(data)

    def rotate_if_due(self) -> None:
        """Close the open segment once it is old enough, so the shipper can take it."""
        if self._fd is not None and time.monotonic() - self._opened >= self.segment_age_s:
            self.close_segment()

    def close_segment(self) -> None:
        """Close the open segment: rename `.open` to `.seg` (empty segments are removed)."""
        if self._fd is None or self._path is None:
            return
        os.close(self._fd)
        path, size = self._path, self._size
        self._fd, self._path, self._size = None, None, 0
        if size == 0:
            path.unlink(missing_ok=True)
        else:
            path.rename(path.with_suffix(CLOSED_SUFFIX))


def claim_orphans(folder: Path) -> int:
    """Close `.open` segments whose worker process is gone; returns how many were claimed."""
    claimed = 0
    for path in folder.glob(f"*{OPEN_SUFFIX}"):
        try:
            pid = int(path.name.split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not psutil.pid_exists(pid):
            with contextlib.suppress(FileNotFoundError):
                path.rename(path.with_suffix(CLOSED_SUFFIX))
                claimed += 1
    return claimed


def closed_segments(folder: Path) -> list[Path]:
    """Closed segments, oldest first (by creation time in the name)."""

    def key(p: Path) -> tuple[int, str]:
        parts = p.name.split("-")
        try:
            return int(parts[1]), p.name
        except (IndexError, ValueError):
            return 0, p.name

    return sorted(folder.glob(f"*{CLOSED_SUFFIX}"), key=key)


def spool_bytes(folder: Path) -> int:
    """Bytes in the spool (open and closed segments)."""
    total = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith((OPEN_SUFFIX, CLOSED_SUFFIX)):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    return total

"""The spool: frames survive, a torn tail is cut, segments rotate and orphans are claimed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tabserve.monitoring import spool


def test_append_read_and_rotate_by_size(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path, segment_bytes=100)
    payloads = [bytes([i]) * 40 for i in range(5)]
    for p in payloads:
        writer.append(p)
    writer.close_segment()
    segments = spool.closed_segments(tmp_path)
    assert len(segments) == 2  # 48-byte frames: closed once past 100 bytes (3 frames), then 2
    assert [f for s in segments for f in spool.read_frames(s)] == payloads
    assert not list(tmp_path.glob("*.open"))


def test_rotate_by_age_only_closes_old_segments(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path, segment_age_s=3600)
    writer.append(b"x")
    writer.rotate_if_due()
    assert spool.closed_segments(tmp_path) == []
    writer.segment_age_s = 0
    writer.rotate_if_due()
    assert len(spool.closed_segments(tmp_path)) == 1


def test_torn_tail_keeps_every_frame_before_it(tmp_path: Path) -> None:
    writer = spool.SpoolWriter(tmp_path)
    writer.append(b"first")
    writer.append(b"second")
    writer.close_segment()
    (seg,) = spool.closed_segments(tmp_path)
    seg.write_bytes(seg.read_bytes() + spool.frame(b"third")[:-2])  # a write cut by kill -9
    assert list(spool.read_frames(seg)) == [b"first", b"second"]
    corrupt = bytearray(seg.read_bytes())
    corrupt[spool.HEADER.size] ^= 0xFF  # flip a byte of the first payload
    seg.write_bytes(bytes(corrupt))
    assert list(spool.read_frames(seg)) == []


def test_open_segment_of_a_dead_worker_is_claimed(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from tabserve.monitoring import spool;"
        "spool.SpoolWriter(Path(sys.argv[1])).append(b'row')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    assert len(list(tmp_path.glob("*.open"))) == 1
    mine = spool.SpoolWriter(tmp_path)
    mine.append(b"live worker")  # this process is alive: its segment stays open
    assert spool.claim_orphans(tmp_path) == 1
    (seg,) = spool.closed_segments(tmp_path)
    assert list(spool.read_frames(seg)) == [b"row"]
    assert spool.spool_bytes(tmp_path) == 2 * spool.HEADER.size + len(b"row") + len(b"live worker")

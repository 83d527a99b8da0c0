"""Retention: the shipper's prune deletes what is past it, for every model, by an index range."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.unit.monitoring.conftest import log_row

from tabserve.monitoring.sinks import SqliteSink

DAY = 86400.0


def fill(sink: SqliteSink, now: float) -> None:
    rows = [log_row(f"old-{m}-{i}", m, now - 40 * DAY) for m in ("iris", "wine") for i in range(5)]
    rows += [log_row(f"new-{m}-{i}", m, now - DAY) for m in ("iris", "wine") for i in range(3)]
    assert sink.write(rows) == 16
    with sqlite3.connect(sink.path) as db:  # feedback received long ago, and yesterday
        db.executemany(
            "INSERT INTO prediction_feedback VALUES (?, 0, ?, '1', ?)",
            [("old-iris-0", "iris", now - 40 * DAY), ("new-wine-0", "wine", now - DAY)],
        )


def test_prune_deletes_every_models_rows_past_the_cutoff_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    sink = SqliteSink(tmp_path / "predictions.db")
    sink.open()
    now = time.time()
    fill(sink, now)
    assert sink.prune(now - 30 * DAY) == 10
    with sqlite3.connect(sink.path) as db:
        kept = sorted(r[0] for r in db.execute("SELECT request_id FROM prediction_log"))
        feedback = [r[0] for r in db.execute("SELECT request_id FROM prediction_feedback")]
    assert kept == sorted(f"new-{m}-{i}" for m in ("iris", "wine") for i in range(3))
    assert feedback == ["new-wine-0"]
    assert sink.prune(now - 30 * DAY) == 0
    sink.close()


def test_prune_reads_the_model_time_index_never_the_whole_table(tmp_path: Path) -> None:
    # The hourly prune ran `WHERE ts < ?`: a full scan of a log of millions of rows, in the
    # shipper, beside the serving workers. Every statement it runs must search an index.
    sink = SqliteSink(tmp_path / "predictions.db")
    sink.open()
    fill(sink, time.time())
    db = sink._db()
    executed: list[str] = []
    db.set_trace_callback(executed.append)  # each statement, its parameters bound in
    sink.prune(time.time() - 30 * DAY)
    db.set_trace_callback(None)
    statements = [sql for sql in executed if sql.lstrip().upper().startswith(("DELETE", "WITH"))]
    assert any("prediction_log" in sql for sql in statements)
    assert any("prediction_feedback" in sql for sql in statements)
    for sql in statements:
        plan = " | ".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "INDEX" in plan, (sql, plan)
        assert "SCAN prediction_log" not in plan and "SCAN prediction_feedback" not in plan, (
            sql,
            plan,
        )
    sink.close()

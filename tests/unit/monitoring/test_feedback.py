"""Feedback: labels matched by either request id, and the SQLite log migrated to the new index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.unit.monitoring.feedback_cases import check_feedback_by_either_id, labels, log_row

from tabserve.errors import ValidationError
from tabserve.monitoring.feedback import parse_items, record_feedback
from tabserve.monitoring.sinks import SCHEMA_VERSION, SqliteSink

# The tables as the first tabserve release created them (schema version 1).
V1_DDL = """
CREATE TABLE prediction_log (
    request_id TEXT NOT NULL, row INTEGER NOT NULL, client_request_id TEXT,
    ts REAL NOT NULL, model TEXT NOT NULL, version INTEGER NOT NULL,
    role TEXT NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL,
    latency_ms REAL NOT NULL, PRIMARY KEY (request_id, row, role));
CREATE INDEX prediction_log_model_ts ON prediction_log (model, ts);
CREATE TABLE prediction_feedback (
    request_id TEXT NOT NULL, row INTEGER NOT NULL, model TEXT NOT NULL,
    label TEXT NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (request_id, row));
CREATE TABLE prediction_log_schema (version INTEGER NOT NULL);
INSERT INTO prediction_log_schema VALUES (1);
"""
# Version 2 added the client-id index over every row.
V2_DDL = V1_DDL.replace("VALUES (1)", "VALUES (2)") + (
    "CREATE INDEX prediction_log_model_client ON prediction_log (model, client_request_id);"
)


def test_feedback_matches_the_server_id_first_else_the_client_id(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "predictions.db")
    try:
        check_feedback_by_either_id(sink)
    finally:
        sink.close()


@pytest.mark.parametrize("ddl", [V1_DDL, V2_DDL], ids=["v1", "v2"])
def test_an_older_log_gains_the_partial_client_id_index_and_keeps_its_rows(
    tmp_path: Path, ddl: str
) -> None:
    path = tmp_path / "predictions.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
        conn.executemany(
            "INSERT INTO prediction_log VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                log_row("srv-old", 0, "client-old", "x", "toy"),
                log_row("srv-2", 0, None, "x", "toy"),
            ],
        )
    conn.close()
    sink = SqliteSink(path)
    try:
        assert record_feedback(sink, "toy", [("client-old", 0, "y")]) == 1
        assert labels(sink) == {("srv-old", 0): "y", ("srv-2", 0): None}
    finally:
        sink.close()
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT request_id FROM prediction_log "
            "WHERE model = 'toy' AND client_request_id = 'client-old'"
        ).fetchall()
        version = conn.execute("SELECT version FROM prediction_log_schema").fetchall()
        partial = {r[1]: r[4] for r in conn.execute("PRAGMA index_list(prediction_log)")}
        kept = conn.execute("SELECT count(*) FROM prediction_log").fetchone()
    conn.close()
    assert "prediction_log_model_client" in str(plan)
    assert partial["prediction_log_model_client"] == 1  # rows without a client id stay out
    assert kept == (2,)
    assert version == [(SCHEMA_VERSION,)] and SCHEMA_VERSION == 3


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"labels": []},
        {"labels": [{"row": 0, "label": 1}]},
        {"labels": [{"request_id": 1}]},
    ],
)
def test_bad_bodies_say_what_a_label_needs(body: object) -> None:
    with pytest.raises(ValidationError, match="request_id"):
        parse_items(body)

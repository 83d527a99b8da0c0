"""Feedback matched by the server's request id or the client's X-Request-ID, for any sink.

Shared by the SQLite unit test and the Postgres integration test, so both dialects are held
to the same behaviour.
"""

from __future__ import annotations

import time

from tabserve.monitoring.records import LogRow
from tabserve.monitoring.sinks import Sink


def log_row(request_id: str, row: int, client_id: str | None, label: str, model: str) -> LogRow:
    """A live prediction-log row predicting `label`."""
    return LogRow(
        request_id,
        row,
        client_id,
        time.time(),
        model,
        1,
        "live",
        '{"x": 1.0}',
        f'{{"label": "{label}"}}',
        1.0,
    )


def labels(sink: Sink, model: str = "toy") -> dict[tuple[str, int], object]:
    """{(server request id, row): true label} as the report reads them."""
    return {(r.request_id, r.row): r.label for r in sink.fetch(model, 0.0)}


def check_feedback_by_either_id(sink: Sink) -> None:
    """Server ids, client ids, the server id winning a clash, and a label sent before its row."""
    sink.open()
    sink.write(
        [
            log_row("srv-a", 0, "client-a", "x", "toy"),
            log_row("srv-a", 1, "client-a", "x", "toy"),
            log_row("srv-b", 0, "client-b", "x", "toy"),
            # A client that sent another request's server id as its own X-Request-ID.
            log_row("srv-c", 0, "srv-a", "x", "toy"),
            # The same client id used with another model: feedback is per model.
            log_row("srv-d", 0, "client-b", "x", "other"),
        ]
    )
    assert sink.add_feedback("toy", [("srv-a", 0, "y"), ("client-a", 1, "z")]) == 2
    assert sink.add_feedback("toy", [("client-b", 0, "w"), ("client-late", 0, "v")]) == 2
    got = labels(sink)
    assert got[("srv-a", 0)] == "y"  # by server id
    assert got[("srv-a", 1)] == "z"  # by client id
    assert got[("srv-b", 0)] == "w"
    assert got[("srv-c", 0)] is None  # "srv-a" names a server request: never read as a client id
    assert labels(sink, "other") == {("srv-d", 0): None}

    # A label that arrived before its row was shipped is matched once the row is there.
    sink.write([log_row("srv-e", 0, "client-late", "v", "toy")])
    assert labels(sink)[("srv-e", 0)] == "v"

    recent = {(r.request_id, r.row): r.label for r in sink.labelled("toy", 0.0, 100)}
    assert recent == {
        ("srv-a", 0): "y",
        ("srv-a", 1): "z",
        ("srv-b", 0): "w",
        ("srv-e", 0): "v",
    }
    assert sink.labelled("other", 0.0, 100) == []

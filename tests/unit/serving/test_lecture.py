"""The lecture's query decoding: the plain fast path and the full path read queries alike."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tabserve.serving.protocols import lecture
from tabserve.serving.validation import Schema
from tabserve.types import Prediction

ROW = [[7.7, 3.0, 6.1, 2.3]]


@pytest.fixture
def schema(iris: tuple[Any, Any]) -> Schema:
    return Schema(iris[0], 10_000)


@pytest.mark.parametrize(
    "query",
    [
        b"sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3",
        b"petal_width=2.3&sepal_length=7.7&extra=x&sepal_width=3&petal_length=6.1",
        b"sepal_length=7.7&sepal_length=1&sepal_width=3.0&petal_length=6.1&petal_width=2.3",
        b"sepal_length=7%2E7&sepal_width=+3.0&petal_length=6.1&petal_width=2.3",
        b"&sepal_length=%207.7&&sepal_width=3.0&petal_length=6.1&petal_width=2.3&",
        b"sepal_length=\xd9\xa7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3",  # as float()
    ],
)
def test_every_spelling_of_the_flower_gives_its_row(schema: Schema, query: bytes) -> None:
    assert np.array_equal(lecture.decode(schema, query), np.array(ROW))


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (b"sepal_length=7.7&petal_length=6.1&petal_width=2.3", "missing: ['sepal_width']"),
        (b"sepal_length=7.7&sepal_width&petal_length=6.1&petal_width=2.3", "not float"),
        (b"sepal_length=7.7&sepal_width=3.0&petal_length=1e999&petal_width=2.3", "not float"),
    ],
)
def test_refusals_keep_the_lecture_format(schema: Schema, query: bytes, body: str) -> None:
    with pytest.raises(lecture.LectureError) as refused:
        lecture.decode(schema, query)
    assert body in refused.value.body.decode() and refused.value.body.endswith(b'"\n')


def test_each_label_is_answered_as_jsonify_writes_it() -> None:
    # Labels of every kind, string ones twice (the second from the answers kept per label),
    # among numbers that compare equal to each other but print differently.
    labels = [np.str_("1"), np.float64(1.0), np.int64(1), np.True_, np.float64(-0.0),
              np.float64(0.0), np.str_("1"), "café", "café", np.str_('a"b')]  # fmt: skip
    bodies = [lecture.encode(Prediction(np.array([label], dtype=object), None)) for label in labels]
    assert bodies == [
        b'{"prediction":"1"}\n', b'{"prediction":"1.0"}\n', b'{"prediction":"1"}\n',
        b'{"prediction":"True"}\n', b'{"prediction":"-0.0"}\n', b'{"prediction":"0.0"}\n',
        b'{"prediction":"1"}\n', '{"prediction":"café"}\n'.encode(),
        '{"prediction":"café"}\n'.encode(), b'{"prediction":"a\\"b"}\n',
    ]  # fmt: skip

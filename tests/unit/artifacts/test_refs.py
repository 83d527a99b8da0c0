"""Model references and the names that may reach a file path."""

from __future__ import annotations

import pytest

from tabserve.artifacts.refs import Ref, check_name, parse_ref, parse_version_ref
from tabserve.errors import UsageError


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("iris", Ref("iris")),
        ("iris:3", Ref("iris", version=3)),
        ("iris@production", Ref("iris", alias="production")),
        ("my-model_2.1", Ref("my-model_2.1")),
        (" iris:12 ", Ref("iris", version=12)),
    ],
)
def test_parse_ref(text: str, ref: Ref) -> None:
    assert parse_ref(text) == ref
    assert str(ref) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "../etc",
        "..",
        "a/b",
        "iris:0",
        "iris:-1",
        "iris:1.5",
        "iris:x",
        "iris:01",
        "iris@",
        "iris@3",
        "iris@../x",
        "",
        ".hidden",
        "-rf",
        "a" * 65,
        "iris:1:2",
        "name with space",
        "iris\x00",
    ],
)
def test_bad_refs_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(text)


def test_names_are_limited_to_safe_characters() -> None:
    assert check_name("a" * 64) == "a" * 64
    with pytest.raises(UsageError, match="invalid model name"):
        check_name("x/../../y")


def test_promote_and_delete_need_a_version() -> None:
    assert parse_version_ref("iris:4") == ("iris", 4)
    with pytest.raises(UsageError, match="NAME:VERSION"):
        parse_version_ref("iris@production")

"""Model references (`NAME`, `NAME:VERSION`, `NAME@ALIAS`) and the names allowed in paths.

Everything a user types that ends up in a file path or a query goes through here first, so a
name can never hold `/`, `..` or anything but letters, digits, `.`, `_` and `-`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from tabserve.errors import UsageError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# An alias starts with a letter so that `iris@3` can never be mistaken for a version.
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


class Ref(NamedTuple):
    """A parsed reference: a name and at most one of version or alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def check_name(name: str) -> str:
    """Return `name` if it is a valid model name, else raise UsageError."""
    if not _NAME.fullmatch(name) or name in {".", ".."} or set(name) == {"."}:
        raise UsageError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    """Return `alias` if it is a valid alias, else raise UsageError."""
    if not _ALIAS.fullmatch(alias):
        raise UsageError(
            f"invalid alias {alias!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter (e.g. production)"
        )
    return alias


def check_version(version: int | str) -> int:
    """Return `version` as a positive int, else raise UsageError."""
    text = str(version)
    if isinstance(version, bool) or not _VERSION.fullmatch(text):
        raise UsageError(f"invalid version {text!r}: versions are positive integers (1, 2, 3 ...)")
    return int(text)


def parse_ref(ref: str) -> Ref:
    """Parse `NAME`, `NAME:VERSION` or `NAME@ALIAS`."""
    ref = ref.strip()
    if ":" in ref:
        name, _, version = ref.partition(":")
        return Ref(check_name(name), version=check_version(version))
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return Ref(check_name(name), alias=check_alias(alias))
    return Ref(check_name(ref))


def parse_version_ref(ref: str) -> tuple[str, int]:
    """Parse `NAME:VERSION`, the form promote and delete need."""
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise UsageError(f"{ref!r} names no version: write NAME:VERSION, e.g. iris:3")
    return parsed.name, parsed.version

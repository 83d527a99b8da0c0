"""The offline Swagger UI page for `/docs` and the folder of its assets."""

from __future__ import annotations

from pathlib import Path

# Served under /docs/assets/ (index.html names its assets there); see static/docs/README.md.
# The folder stays in tabserve/serving/static, next to the UI's, outside this package.
STATIC_DIR = Path(__file__).parent.parent / "static" / "docs"


def docs_html() -> str:
    """The /docs page: Swagger UI loading its assets from /docs/assets/ and the spec from /openapi.json."""
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")

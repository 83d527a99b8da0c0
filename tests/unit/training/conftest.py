"""Small data files the training tests read."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def shop_csv(tmp_path: Path) -> Path:
    """A CSV with a number, a category and missing values in both, and a string target."""
    rows = ["age,city,income,bought"]
    cities = ["paris", "rome", "oslo"]
    for i in range(90):
        age = "" if i % 9 == 0 else str(20 + (i * 7) % 50)
        city = "" if i % 11 == 0 else cities[i % 3]
        income = 10 + (i * 37) % 90
        bought = "yes" if (income > 50) != (i % 13 == 0) else "no"
        rows.append(f"{age},{city},{income},{bought}")
    path = tmp_path / "shop.csv"
    path.write_text("\n".join(rows) + "\n")
    return path

"""Feature drift: PSI of live rows against the training histogram, and a KS test for the report.

The training histogram in the manifest (`Feature.histogram`) holds quantile edges and counts.
Live values are binned with the same rule as `numpy.histogram` (half-open bins, the last one
closed); values outside the training range fall into the end bins, NaN (missing) is skipped.
Categorical features are binned by their training categories (`Feature.category_counts`), with
one extra "other" bucket (training count 0) for values training never saw; missing is skipped.
PSI = sum((live% - train%) * ln(live% / train%)); 0.1 is moderate drift, 0.2 significant.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from tabserve.types import Feature, Histogram, Manifest

PSI_THRESHOLD = 0.2
WINDOW_ROWS = 10_000
_EPS = 1e-4  # floor for empty bins, so ln() stays finite
OTHER = "(other)"  # label of the bucket for categories training never saw


def bin_counts(values: np.ndarray, hist: Histogram) -> np.ndarray:
    """Counts of `values` in the histogram's bins (NaN skipped, outliers in the end bins)."""
    edges = np.asarray(hist.edges, dtype=np.float64)
    v = values[~np.isnan(values)]
    k = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, k - 1)
    counts: np.ndarray = np.bincount(idx, minlength=k).astype(np.float64)
    return counts


def psi(expected: np.ndarray | list[int], actual: np.ndarray) -> float:
    """Population stability index of `actual` counts against `expected` counts (same bins)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    pe = np.maximum(e / e.sum(), _EPS)
    pa = np.maximum(a / a.sum(), _EPS)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def training_cdf(hist: Histogram) -> Any:
    """The training CDF, piecewise linear through the histogram's edges."""
    edges = np.asarray(hist.edges, dtype=np.float64)
    counts = np.asarray(hist.counts, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(counts)]) / max(counts.sum(), 1.0)

    def cdf(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.interp(x, edges, cum, left=0.0, right=1.0)
        return out

    return cdf


def ks_test(values: np.ndarray, hist: Histogram) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value against the training histogram.

    The training CDF is known exactly only at the histogram's edges, so the statistic is the
    largest CDF gap at those edges (a lower bound of the full KS statistic; no false alarms
    from interpolating inside wide tail bins).
    """
    from scipy import stats

    v = np.sort(values[~np.isnan(values)])
    n_train = float(sum(hist.counts))
    if len(v) == 0 or n_train == 0:
        return 0.0, 1.0
    edges = np.asarray(hist.edges, dtype=np.float64)
    train_cdf = training_cdf(hist)(edges)
    live_cdf = np.searchsorted(v, edges, side="right") / len(v)
    d = float(np.max(np.abs(live_cdf - train_cdf)))
    n_eff = len(v) * n_train / (len(v) + n_train)
    return d, float(stats.kstwobign.sf(d * np.sqrt(n_eff)))


class CategoryBins(NamedTuple):
    """The bins of a categorical feature: training categories, then the "other" bucket."""

    labels: list[str]  # training categories (sorted), then OTHER
    expected: np.ndarray  # training count per bin (0 for OTHER)
    bin_of: dict[str, int]  # category -> bin

    def counts(self, values: Iterable[Any]) -> np.ndarray:
        """Counts of live values per bin (unseen ones under OTHER, missing skipped)."""
        other = len(self.labels) - 1
        out = np.zeros(len(self.labels), dtype=np.float64)
        for v in values:
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            out[self.bin_of.get(str(v), other)] += 1
        return out


def category_bins(feature: Feature) -> CategoryBins | None:
    """A categorical feature's bins, or None when the manifest has no training counts."""
    counts = feature.category_counts
    if feature.kind != "category" or not counts:
        return None
    names = sorted(counts)
    expected = np.array([counts[c] for c in names] + [0], dtype=np.float64)
    return CategoryBins([*names, OTHER], expected, {c: i for i, c in enumerate(names)})


def feature_psi(values: Any, feature: Feature) -> float | None:
    """PSI of live values of one feature, or None when the manifest has no training counts.

    `values` is a float array for numbers, any sequence of values for categories.
    """
    bins = category_bins(feature)
    if bins is not None:
        return psi(bins.expected, bins.counts(values))
    if feature.kind != "number" or feature.histogram is None:
        return None
    return psi(
        feature.histogram.counts, bin_counts(np.asarray(values, np.float64), feature.histogram)
    )


class _Tracked(NamedTuple):
    """One feature whose drift is measured: where it sits in a row and how its values bin."""

    position: int  # index in the row (manifest feature order)
    name: str
    expected: np.ndarray  # training count per bin
    live_counts: Callable[[Any], np.ndarray]  # live values of one chunk -> count per bin


def _tracked(manifest: Manifest) -> list[_Tracked]:
    out = []
    for i, f in enumerate(manifest.features):
        if f.kind == "number" and f.histogram is not None and len(f.histogram.edges) > 1:
            hist = f.histogram

            def count(col: Any, hist: Histogram = hist) -> np.ndarray:
                # None (missing) becomes NaN, which bin_counts skips; a float column is used as is.
                return bin_counts(np.asarray(col, dtype=np.float64), hist)

            out.append(_Tracked(i, f.name, np.asarray(hist.counts, np.float64), count))
        elif (bins := category_bins(f)) is not None:
            out.append(_Tracked(i, f.name, bins.expected, bins.counts))
    return out


class _ModelWindow:
    """Bin counts of the most recent rows of one model version, per tracked feature."""

    def __init__(self, manifest: Manifest, window_rows: int) -> None:
        self.manifest = manifest
        self.window_rows = window_rows
        self.tracked = _tracked(manifest)
        self.chunks: deque[tuple[int, list[np.ndarray]]] = deque()
        self.totals = [np.zeros(len(t.expected)) for t in self.tracked]
        self.rows = 0

    def add(self, rows: np.ndarray | list[list[Any]]) -> None:
        if len(rows) == 0 or not self.tracked:
            return
        counts = []
        for j, t in enumerate(self.tracked):
            pos = t.position
            c = t.live_counts(
                rows[:, pos] if isinstance(rows, np.ndarray) else [r[pos] for r in rows]
            )
            counts.append(c)
            self.totals[j] += c
        self.chunks.append((len(rows), counts))
        self.rows += len(rows)
        # Drop whole old chunks while the rest still fills the window.
        while self.chunks and self.rows - self.chunks[0][0] >= self.window_rows:
            n, old = self.chunks.popleft()
            self.rows -= n
            for j, c in enumerate(old):
                self.totals[j] -= c

    def psi(self) -> list[tuple[str, float]]:
        return [(t.name, psi(t.expected, self.totals[j])) for j, t in enumerate(self.tracked)]


class DriftTracker:
    """PSI per model and feature over a sliding window of live rows (used by the shipper)."""

    def __init__(self, window_rows: int = WINDOW_ROWS) -> None:
        self.window_rows = window_rows
        self._models: dict[str, _ModelWindow] = {}
        self.changed: set[str] = set()

    def add(self, manifest: Manifest, rows: np.ndarray | list[list[Any]]) -> None:
        """Add live input rows in manifest feature order: a float matrix, or lists of values."""
        w = self._models.get(manifest.name)
        if w is None or w.manifest.version != manifest.version:
            # A new version has its own training histogram: start its window afresh.
            w = self._models[manifest.name] = _ModelWindow(manifest, self.window_rows)
        w.add(rows)
        self.changed.add(manifest.name)

    def psi(self, model: str) -> list[tuple[str, float]]:
        """(feature, PSI) for a model's current window; empty when nothing was seen."""
        w = self._models.get(model)
        return w.psi() if w is not None else []

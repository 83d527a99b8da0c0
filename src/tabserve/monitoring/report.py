"""The monitoring report: drift (PSI, KS), out-of-range and missing rates, classes, live accuracy.

`build_report` reads the prediction log; `render_html` writes one self-contained page (PNG plots
inlined as base64). Manifests come from the copies the workers saved beside the spool.
"""

from __future__ import annotations

import base64
import io
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tabserve.errors import UsageError
from tabserve.monitoring import drift, records, spool
from tabserve.monitoring.feedback import live_performance
from tabserve.monitoring.sinks import Sink, StoredRow
from tabserve.types import Feature, Manifest


@dataclass
class FeatureReport:
    """Drift figures of one feature."""

    name: str
    kind: str = "number"
    psi: float | None = None
    ks: float | None = None
    ks_p: float | None = None
    out_of_range: float | None = None  # categories: share of values training never saw
    missing: float | None = None
    live_mean: float | None = None
    train_mean: float | None = None
    flagged: bool = False
    plot: str | None = None  # base64 PNG


@dataclass
class Report:
    """Everything `tabserve monitor NAME` prints and renders."""

    model: str
    since: float
    until: float
    rows: int
    versions: list[int]
    psi_threshold: float
    ks_alpha: float
    features: list[FeatureReport] = field(default_factory=list)
    classes: list[dict[str, Any]] = field(default_factory=list)
    performance: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[str]:
        """Features over their threshold."""
        return [f.name for f in self.features if f.flagged]

    @property
    def since_text(self) -> str:
        return datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M UTC")

    @property
    def until_text(self) -> str:
        return datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_since(text: str) -> float:
    """`24h`, `30m`, `7d`, `90s` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise UsageError(
            f"--since {text!r}: use a number and a unit, e.g. 30m, 24h or 7d"
        ) from None


def _column(rows: list[StoredRow], name: str) -> np.ndarray:
    out = []
    for r in rows:
        v = r.input.get(name) if isinstance(r.input, dict) else None
        out.append(np.nan if v is None or isinstance(v, str) else float(v))
    return np.array(out, dtype=np.float64)


def _raw_column(rows: list[StoredRow], name: str) -> list[Any]:
    return [r.input.get(name) if isinstance(r.input, dict) else None for r in rows]


def _category_report(
    f: Feature, values: list[Any], psi_threshold: float, plots: bool
) -> FeatureReport:
    """Missing and unseen shares, PSI against the training counts, and a bar chart."""
    fr = FeatureReport(name=f.name, kind="category")
    n = len(values)
    if n == 0:
        return fr
    present = [v for v in values if v is not None]
    fr.missing = 1.0 - len(present) / n
    seen = set(f.categories or f.category_counts or ())
    if seen:
        fr.out_of_range = sum(str(v) not in seen for v in present) / n
    bins = drift.category_bins(f)
    if bins is not None and present:
        live = bins.counts(present)
        fr.psi = drift.psi(bins.expected, live)
        fr.flagged = fr.psi > psi_threshold
        if plots:
            fr.plot = _bar_plot(f.name, bins.labels, bins.expected, live)
    return fr


def _feature_report(
    f: Feature, values: np.ndarray, psi_threshold: float, ks_alpha: float
) -> FeatureReport:
    fr = FeatureReport(name=f.name, train_mean=f.mean)
    n = len(values)
    if n == 0:
        return fr
    missing = np.isnan(values)
    fr.missing = float(missing.mean())
    present = values[~missing]
    if len(present):
        fr.live_mean = float(present.mean())
        lo = f.min if f.min is not None else -np.inf
        hi = f.max if f.max is not None else np.inf
        fr.out_of_range = float(((present < lo) | (present > hi)).sum() / n)
    if f.histogram is not None and len(present):
        fr.psi = drift.feature_psi(values, f)
        fr.ks, fr.ks_p = drift.ks_test(values, f.histogram)
        fr.flagged = (fr.psi is not None and fr.psi > psi_threshold) or fr.ks_p < ks_alpha
    return fr


def build_report(
    sink: Sink,
    home: Path,
    model: str,
    since_s: float = 86400.0,
    psi_threshold: float = drift.PSI_THRESHOLD,
    ks_alpha: float = 0.001,
    plots: bool = True,
) -> Report:
    """Read the live rows of `model` from the last `since_s` seconds and measure them."""
    until = time.time()
    since = until - since_s
    rows = sink.fetch(model, since)
    versions = sorted({r.version for r in rows})
    report = Report(model, since, until, len(rows), versions, psi_threshold, ks_alpha)
    manifest: Manifest | None = None
    if versions:
        manifest = records.load_manifest(spool.spool_dir(home), model, versions[-1])
    if manifest is not None:
        for f in manifest.features:
            if f.kind == "category":
                raw = _raw_column(rows, f.name)
                report.features.append(_category_report(f, raw, psi_threshold, plots))
                continue
            values = _column(rows, f.name)
            fr = _feature_report(f, values, psi_threshold, ks_alpha)
            if plots and f.histogram is not None and len(values):
                fr.plot = _plot(f, values)
            report.features.append(fr)
    live = Counter(str(r.output.get("label")) for r in rows)
    train = _training_classes(manifest)
    for label in sorted(set(live) | set(train)):
        report.classes.append(
            {
                "label": label,
                "live": live[label] / max(len(rows), 1) if rows else None,
                "train": train.get(label),
            }
        )
    regression = manifest is not None and manifest.task == "regression"
    report.performance = live_performance(rows, regression)
    return report


def _training_classes(manifest: Manifest | None) -> dict[str, float]:
    """Training class shares if the manifest's metrics record them (class_counts)."""
    if manifest is None:
        return {}
    counts = manifest.metrics.get("class_counts") or manifest.metrics.get("class_distribution")
    if not isinstance(counts, dict) or not counts:
        return {}
    total = float(sum(counts.values()))
    return {str(k): float(v) / total for k, v in counts.items()}


def _plot(f: Feature, values: np.ndarray) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = f.histogram
    if hist is None:
        return ""
    edges = np.asarray(hist.edges)
    train = np.asarray(hist.counts, dtype=float)
    live = drift.bin_counts(values, hist)
    widths = np.diff(edges)
    widths[widths == 0] = 1e-12
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.stairs(train / max(train.sum(), 1) / widths, edges, label="training", fill=True, alpha=0.4)
    ax.stairs(live / max(live.sum(), 1) / widths, edges, label="live", linewidth=2)
    ax.set_title(f.name)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bar_plot(name: str, labels: list[str], train: np.ndarray, live: np.ndarray) -> str:
    """Grouped bars: each category's share in training and live (the last bar is unseen ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    ax.bar(x - 0.2, train / max(train.sum(), 1), 0.4, label="training", alpha=0.6)
    ax.bar(x + 0.2, live / max(live.sum(), 1), 0.4, label="live")
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 4 else 0, ha="right")
    ax.set_ylabel("share")
    ax.set_title(name)
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def render_html(report: Report) -> str:
    """One self-contained HTML page."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tabserve.monitoring", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return env.get_template("report.html.j2").render(r=report, fmt=_fmt, pct=_pct)


def default_path(home: Path, model: str) -> Path:
    """Where the report goes by default: TABSERVE_HOME/reports/NAME-YYYYmmdd-HHMMSS.html."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return home / "reports" / f"{model}-{stamp}.html"

"""The bench's results, the bar from issue 4 checked against them, and the Markdown they print as.

Nothing here measures: `run.py` fills `Results`, `render` turns it into `bench/RESULTS.md`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load import LoadResult
from bench.rows import RowsResult
from bench.servers import Memory

TABSERVE = "tabserve"
LECTURE = "lecture"
CEILING = "ceiling"
CEILING_GRANIAN = "ceiling, granian"  # the same constant on tabserve's own HTTP server
TABSERVE_GRPC = "tabserve gRPC"
CEILING_GRPC = "ceiling, grpc.aio"  # a constant-answer gRPC servicer: the gRPC rows' ceiling
SYNC_LOG = "tabserve, log sync"
NO_LOG = "tabserve, log off"
ONE_WORKER = "tabserve, 1 worker"  # --workers 1: what README says of a 2-core host
# The lecture-GET rows of tabserve (all against the lecture stack and the uvicorn ceiling).
TABSERVE_HTTP = (TABSERVE, SYNC_LOG, NO_LOG, ONE_WORKER)
# Each tabserve row's ceiling, for its tabserve/ceiling column.
CEILING_OF = {**dict.fromkeys(TABSERVE_HTTP, CEILING), TABSERVE_GRPC: CEILING_GRPC}


@dataclass(frozen=True)
class Point:
    """One server at one concurrency, with the server's memory measured right after it."""

    server: str
    load: LoadResult
    memory: Memory | None = None
    connections: list[int] | None = None  # wrk's connections per server process, mid-point


@dataclass(frozen=True)
class Bar:
    """One line of the bar: what is required, what was measured, and whether it passes."""

    what: str
    target: str
    figure: str
    ok: bool | None  # None: not measured in this run


@dataclass
class Results:
    """Everything one bench run measured."""

    date: str
    machine: dict[str, str]
    versions: dict[str, str]
    duration_s: float
    points: list[Point] = field(default_factory=list)
    cold_start_s: dict[str, float] = field(default_factory=dict)
    rows_server: RowsResult | None = None
    rows_local: RowsResult | None = None
    rows_label_mismatches: int | None = None
    runtime: str | None = None  # which runtime serves the model, and its parity record
    profile: str | None = None  # path of the py-spy profile, when --profile
    profile_top: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what failed or was skipped, and why

    def point(self, server: str, concurrency: int) -> Point | None:
        """The measured point, if that server ran at that concurrency."""
        for p in self.points:
            if p.server == server and p.load.concurrency == concurrency:
                return p
        return None


def _ratio(a: Point | None, b: Point | None) -> float | None:
    if a is None or b is None or b.load.rps <= 0:
        return None
    return a.load.rps / b.load.rps


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def _mark(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "not measured"}[ok]


def bars(results: Results) -> list[Bar]:
    """Issue 4's bar, checked against this run (informational: the bench never fails tests)."""
    t64, t1 = results.point(TABSERVE, 64), results.point(TABSERVE, 1)
    vs_lecture = _ratio(t64, results.point(LECTURE, 64))
    vs_ceiling = _ratio(t64, results.point(CEILING, 64))
    out = [
        Bar(
            "c=64 req/s vs the lecture stack",
            ">= 15x",
            _fmt(vs_lecture, ".1f", "x"),
            None if vs_lecture is None else vs_lecture >= 15,
        ),
        Bar(
            "c=64 p99",
            "<= 5 ms",
            _fmt(t64.load.p99_ms if t64 else None, ".2f", " ms"),
            None if t64 is None else t64.load.p99_ms <= 5,
        ),
        Bar(
            "c=64 errors",
            "0",
            _fmt(t64.load.errors if t64 else None, "d"),
            None if t64 is None else t64.load.errors == 0,
        ),
        Bar(
            "c=64 req/s vs the raw ASGI ceiling",
            ">= 40%",
            _fmt(None if vs_ceiling is None else 100 * vs_ceiling, ".0f", "%"),
            None if vs_ceiling is None else vs_ceiling >= 0.4,
        ),
        Bar(
            "c=1 p50",
            "<= 0.25 ms",
            _fmt(t1.load.p50_ms if t1 else None, ".3f", " ms"),
            None if t1 is None else t1.load.p50_ms <= 0.25,
        ),
    ]
    rows_ratio = (
        results.rows_server.rows_per_s / results.rows_local.rows_per_s
        if results.rows_server and results.rows_local and results.rows_local.rows_per_s > 0
        else None
    )
    out.append(
        Bar(
            "10,000-row V2 request vs the in-process runtime",
            ">= 50%",
            _fmt(None if rows_ratio is None else 100 * rows_ratio, ".0f", "%"),
            None if rows_ratio is None else rows_ratio >= 0.5,
        )
    )
    if results.rows_label_mismatches is not None:
        out.append(
            Bar(
                "10,000-row V2 labels equal to the in-process runtime's",
                "0 differ",
                f"{results.rows_label_mismatches} differ",
                results.rows_label_mismatches == 0,
            )
        )
    cold = results.cold_start_s.get(TABSERVE)
    out.append(
        Bar(
            "cold start to /v2/health/ready",
            "<= 2 s",
            _fmt(cold, ".2f", " s"),
            None if cold is None else cold <= 2,
        )
    )
    pss = [p.memory.pss_worker_max for p in results.points if p.server == TABSERVE and p.memory]
    worst = max(pss) if pss else None
    out.append(
        Bar(
            "PSS per serving worker (largest seen)",
            "<= 120 MB",
            _fmt(worst, ".0f", " MiB"),
            None if worst is None else worst * 2**20 <= 120e6,
        )
    )
    return out


def points_table(results: Results) -> str:
    """The main table: one line per server and concurrency."""
    head = (
        "| server | c | req/s | p50 ms | p99 ms | errors | RSS MiB (tree) | PSS MiB (tree) "
        "| PSS MiB per worker | connections per process | tabserve/lecture | tabserve/ceiling |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|\n"
    )
    lines = []
    for p in results.points:
        m = p.memory
        per_worker = (
            ", ".join(f"{w:.0f}" for w in m.pss_per_worker) if m and m.pss_per_worker else "-"
        )
        is_tabserve = p.server in TABSERVE_HTTP
        c = p.load.concurrency
        vs_l = _ratio(p, results.point(LECTURE, c)) if is_tabserve else None
        ceiling = CEILING_OF.get(p.server)
        vs_c = _ratio(p, results.point(ceiling, c)) if ceiling else None
        lines.append(
            f"| {p.server} | {c} | {p.load.rps:,.0f} | {p.load.p50_ms:.2f} | {p.load.p99_ms:.2f} "
            f"| {p.load.errors} | {_fmt(m.rss_total if m else None, '.0f')} | {_fmt(m.pss_total if m else None, '.0f')} "
            f"| {per_worker} | {', '.join(map(str, p.connections)) if p.connections else '-'} "
            f"| {'' if vs_l is None else f'{vs_l:.1f}x'} "
            f"| {'' if vs_c is None else f'{100 * vs_c:.0f}%'} |"
        )
    return head + "\n".join(lines) + "\n"


def bars_table(results: Results) -> str:
    """The bar, each line with the measured figure beside it and pass/fail."""
    head = "| the bar (issue 4) | target | measured | result |\n|---|---|---|---|\n"
    return (
        head
        + "\n".join(
            f"| {b.what} | {b.target} | {b.figure} | {_mark(b.ok)} |" for b in bars(results)
        )
        + "\n"
    )


def render(results: Results) -> str:
    """bench/RESULTS.md: date, machine, versions, the tables, and what went wrong."""
    out = [
        "# tabserve benchmark results\n",
        f"Written by `make bench` (`bench/run.py`) on {results.date}. "
        f"wrk, 1 thread, keep-alive, loopback, {results.duration_s:g} s per point after an "
        "unrecorded warm-up of each server; "
        'every response checked (status 200 and the exact body `{"prediction":"2"}` + newline). '
        "The load generator shares the machine's cores with the server.\n",
        "## Machine\n",
        *(f"- {k}: {v}" for k, v in results.machine.items()),
        "\n## Versions\n",
        *(f"- {k}: {v}" for k, v in results.versions.items()),
        "\n## Lecture GET endpoint\n",
        "`GET /?sepal_length=7.7&sepal_width=3.0&petal_length=6.1&petal_width=2.3`. "
        "errors = non-2xx + wrong bodies + socket errors. Memory is measured right after each point. "
        f"The gRPC rows (`{TABSERVE_GRPC}`, `{CEILING_GRPC}`) send the same flower as "
        "tritonclient does, from grpc.aio callers in one Python process instead of wrk; "
        f"their tabserve/ceiling is against `{CEILING_GRPC}`.\n",
        points_table(results),
        "\n## Other figures\n",
    ]
    for name, seconds in results.cold_start_s.items():
        out.append(f"- cold start, {name} (process start to ready): {seconds:.2f} s")
    if results.rows_server:
        out.append(
            f"- 10,000-row V2 infer request: {results.rows_server.rows_per_s:,.0f} rows/s "
            f"(median of {results.rows_server.calls} calls)"
        )
    if results.rows_local:
        out.append(
            f"- in-process runtime on the same rows: {results.rows_local.rows_per_s:,.0f} rows/s "
            f"(median of {results.rows_local.calls} calls)"
        )
    sync, plain = results.point(SYNC_LOG, 64), results.point(TABSERVE, 64)
    if sync and plain and plain.load.rps > 0:
        out.append(
            f"- TABSERVE_PREDICTION_LOG_SYNC=true at c=64: {sync.load.rps:,.0f} req/s, "
            f"{100 * sync.load.rps / plain.load.rps:.0f}% of the default's"
        )
    if results.runtime:
        out.append(f"- runtime serving the model: {results.runtime}")
    out.append("\n## The bar\n")
    out.append(bars_table(results))
    if results.profile:
        out.append(
            f"\n## Profile\n\npy-spy on one tabserve worker during c=64: `{results.profile}`\n"
        )
        if results.profile_top:
            out.append("| thread, then innermost Python function | share of samples |\n|---|---:|")
            out.extend(f"| `{name}` | {100 * share:.1f}% |" for name, share in results.profile_top)
    if results.notes:
        out.append("\n## Notes\n")
        out.extend(f"- {note}" for note in results.notes)
    return "\n".join(out) + "\n"

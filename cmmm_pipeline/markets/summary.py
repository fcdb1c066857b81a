"""The summary across markets: every market's published estimates, pooled, written beside the
markets' folders (`<output>/markets/pooled.csv`, `shrunken.csv`, `markets.csv`, `summary.html`).

Each file is written fresh and renamed over the old one, so a reader sees the old summary or the
new one, never half of either; a link or a folder at one of these names is refused, never
followed.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cmmm_pipeline.data.markets import MARKETS_DIR, published_estimates

SUMMARY_FILES = ("pooled.csv", "shrunken.csv", "markets.csv", "summary.html")
SHOWN_COLUMNS = ["channel", "effect", "metric", "k_markets", "pooled", "ci_low", "ci_high", "tau", "i2",
                 "prediction_low", "prediction_high"]


@dataclass(frozen=True)
class MarketsSummary:
    published: int
    missing: tuple[str, ...]
    """Markets without a publication yet (never run, or every run failed a gate)."""
    pooled: pd.DataFrame
    shrunken: pd.DataFrame
    report: Path

    def pooled_table(self) -> pd.DataFrame:
        return self.pooled[[c for c in SHOWN_COLUMNS if c in self.pooled.columns]]


def _write_fresh(path: Path, text: str) -> None:
    """Write `text` to a new temporary name, then rename it over `path`."""
    from cmmm_pipeline.publish.preflight import OutputError

    if path.is_symlink() or path.is_dir():
        raise OutputError("output-not-ours", str(path), "is a link or a folder where the markets summary belongs; "
                          "the pipeline never writes through a link.", "move it away; the run writes the file.")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def summary_html(kpi: str, pooled: pd.DataFrame, shrunken: pd.DataFrame, status: pd.DataFrame) -> str:
    """A self-contained page: the pooled table, the per-market (shrunken) table, links to each
    market's own report."""
    def table(frame: pd.DataFrame) -> str:
        return frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", escape=True, border=0)

    links = "".join(f'<li><a href="{html.escape(m)}/report.html">{html.escape(m)}</a>: {html.escape(s)}</li>'
                    for m, s in zip(status["market"], status["status"], strict=True))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Markets · {html.escape(kpi)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
            f"<h1>Across markets · {html.escape(kpi)}</h1>"
            "<h2>Pooled ROI and marginal ROI (random effects)</h2>"
            "<p>The mean of the markets' causal effects with its 95% interval (Hartung–Knapp), the spread "
            "between markets (tau, I²) and the range a new market's effect is expected in (prediction).</p>"
            f"{table(pooled)}<h2>Per market, partially pooled</h2>"
            "<p>Each market's estimate and its interval, and the estimate shrunk toward the pooled mean in "
            "proportion to its noise.</p>"
            f"{table(shrunken)}<h2>Markets</h2><ul>{links}</ul></body></html>")


@dataclass(frozen=True)
class MarketRun:
    """What one market's run did in the run that pools (published, or failed with its rule)."""

    market: str
    published: bool
    run_id: str
    error: str


def publish_summary(output_dir: str | Path, database: str | Path, markets: list[str], kpi: str,
                    pooling_run: str, runs: tuple[MarketRun, ...] = ()) -> MarketsSummary:
    """Gather the published markets, pool them, and write the summary files. `markets.csv` says,
    per market, whether it has a publication and, when this run refreshed it, how that went."""
    from cmmm_pipeline.markets.pooling import pool_markets

    folder = Path(output_dir) / MARKETS_DIR
    if folder.is_symlink():
        from cmmm_pipeline.publish.preflight import OutputError

        raise OutputError("output-not-ours", str(folder), "is a link; the pipeline never writes through a link.",
                          "move it away; the run creates the folder.")
    folder.mkdir(parents=True, exist_ok=True)
    estimates, missing = published_estimates(database, markets)
    if estimates.empty:
        pooled, shrunken = pd.DataFrame(columns=SHOWN_COLUMNS), pd.DataFrame()
    else:
        pooling = pool_markets(estimates)
        pooled, shrunken = pooling.pooled, pooling.shrunken
    by_market = {r.market: r for r in runs}
    status = pd.DataFrame({
        "market": markets,
        "status": ["no publication" if m in missing else "published" for m in markets],
        "this_run": [("published" if by_market[m].published else "failed") if m in by_market else "" for m in markets],
        "run_id": [by_market[m].run_id if m in by_market else "" for m in markets],
        "error": [by_market[m].error if m in by_market else "" for m in markets],
        "pooling_run": pooling_run})
    _write_fresh(folder / "pooled.csv", pooled.to_csv(index=False))
    _write_fresh(folder / "shrunken.csv", shrunken.to_csv(index=False))
    _write_fresh(folder / "markets.csv", status.to_csv(index=False))
    shown = pooled[[c for c in SHOWN_COLUMNS if c in pooled.columns]]
    _write_fresh(folder / "summary.html", summary_html(kpi, shown, shrunken, status))
    return MarketsSummary(published=len(markets) - len(missing), missing=tuple(missing), pooled=pooled,
                          shrunken=shrunken, report=folder / "summary.html")

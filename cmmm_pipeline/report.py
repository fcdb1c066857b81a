"""The self-contained HTML report: tables and plots inline (PNG as base64), no network."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ReportInputs:
    estimates: pd.DataFrame
    """channel, effect, roi, roi_ci_low, roi_ci_high, incremental_kpi, p_value, naive_roi, ..."""
    transforms: pd.DataFrame
    data_range: tuple[str, str]
    weeks: int
    kpi: str
    config_text: str
    run_id: str


def forest_plot_png(estimates: pd.DataFrame) -> bytes:
    """ROI with its interval per channel (total effect), causal beside naive OLS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    total = estimates[estimates["effect"] == "total"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(total) + 1.2), dpi=110)
    y = range(len(total))
    ax.errorbar(total["roi"], [v + 0.12 for v in y],
                xerr=[total["roi"] - total["roi_ci_low"], total["roi_ci_high"] - total["roi"]],
                fmt="o", color="#1f5fa8", capsize=4, label="causal (DAG) ROI, 95% interval")
    ax.scatter(total["naive_roi"], [v - 0.12 for v in y], marker="x", color="#c0392b", label="naive OLS ROI")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(list(y), total["channel"])
    ax.invert_yaxis()
    ax.set_xlabel("ROI (incremental KPI per unit of spend)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:,.3f}", border=0, classes="t", na_rep="—")


def render_report(inputs: ReportInputs) -> str:
    est = inputs.estimates
    summary = est[["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "incremental_kpi", "p_value",
                   "naive_roi"]]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Causal MMM report</title>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:980px;padding:1rem;color:#222}}
h1{{font-size:1.5rem}} h2{{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}}
table.t{{border-collapse:collapse;font-size:.85rem;display:block;overflow-x:auto}}
table.t td,table.t th{{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}}
img{{max-width:100%;height:auto}} pre{{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}}
</style></head><body>
<h1>Causal MMM report</h1>
<p>Run <code>{html.escape(inputs.run_id)}</code> · {inputs.weeks} weeks from {inputs.data_range[0]} to
{inputs.data_range[1]} · KPI <code>{html.escape(inputs.kpi)}</code></p>
<section id="summary"><h2>Summary</h2>{_table(summary)}</section>
<section id="forest"><h2>ROI by channel: causal vs naive</h2>{_img(forest_plot_png(est), "forest plot of ROI")}</section>
<section id="inputs"><h2>Run inputs</h2><h3>Transform parameters</h3>{_table(inputs.transforms)}
<h3>Config</h3><pre>{html.escape(inputs.config_text)}</pre></section>
</body></html>
"""

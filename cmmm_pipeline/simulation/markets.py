"""Several markets of the simulated world, each with its own true ROIs: the multi-market export
the partition tests and the pooling benchmark run on.

Every market shares the sample's causal structure; its channels' effects differ by a log-normal
market factor (between-market heterogeneity `spread`), and its weekly noise has its own seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.simulation.simulate import MODEL_TEXT, Scenario, simulate

MARKET_COLUMN = "market"


@dataclass(frozen=True)
class MarketsWorld:
    data: pd.DataFrame
    """The export: the sample's columns plus `market`, weeks repeated per market."""
    truth: pd.DataFrame
    """Per market, channel and effect: the true incremental KPI, spend and ROI."""


def market_names(n_markets: int) -> list[str]:
    return [f"m{i + 1:03d}" for i in range(n_markets)]


def simulate_markets(n_markets: int, seed: int = 11, spread: float = 0.25, n_weeks: int = 156) -> MarketsWorld:
    """`n_markets` worlds; market i's channel betas are the sample's times exp(N(0, spread²))."""
    rng = np.random.default_rng(seed)
    base = Scenario(n_weeks=n_weeks)
    frames, truths = [], []
    for i, market in enumerate(market_names(n_markets)):
        factors = np.exp(rng.normal(0.0, spread, size=len(base.channels)))
        channels = {name: dataclasses.replace(ch, beta=ch.beta * f)
                    for (name, ch), f in zip(base.channels.items(), factors, strict=True)}
        result = simulate(dataclasses.replace(base, channels=channels), seed=seed * 1000 + i)
        frames.append(result.data.assign(**{MARKET_COLUMN: market}))
        truths.append(result.truth.assign(**{MARKET_COLUMN: market}))
    data = pd.concat(frames, ignore_index=True)
    data = data[[MARKET_COLUMN, *[c for c in data.columns if c != MARKET_COLUMN]]]
    truth = pd.concat(truths, ignore_index=True)
    return MarketsWorld(data=data, truth=truth[[MARKET_COLUMN, *[c for c in truth.columns if c != MARKET_COLUMN]]])


def markets_config_text(markets: list[str] | None = None, estimation: str = "") -> str:
    """The sample's config for a multi-market export: static partitions when `markets` is given,
    dynamic ones (added as markets arrive) otherwise. `estimation` is an extra YAML line."""
    listed = f", markets: [{', '.join(markets)}]" if markets else ""
    return f"""data: {{path: weekly.csv, date_column: week, kpi: sales, market_column: {MARKET_COLUMN}{listed}}}
{MODEL_TEXT}{estimation}"""


def write_markets(directory: str | Path, n_markets: int, seed: int = 11, static: bool = True,
                  estimation: str = "") -> MarketsWorld:
    """weekly.csv (all markets), truth.csv and config.yaml in `directory`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    world = simulate_markets(n_markets, seed)
    data = world.data.copy()
    data["week"] = data["week"].dt.strftime("%Y-%m-%d")
    data.to_csv(out / "weekly.csv", index=False)
    world.truth.to_csv(out / "truth.csv", index=False)
    markets = market_names(n_markets) if static else None
    (out / "config.yaml").write_text(markets_config_text(markets, estimation), encoding="utf-8")
    return world

"""Public MMM data with a published truth, produced outside this project (see data/README.md).

PyMC-Marketing's "Unobserved Confounders, ROAS and Lift Tests" case study ships `mmm_roas_data.csv`:
131 weeks, two channels x1 and x2, the KPI y and, for the truth, y01 and y02 (y without x1's and
without x2's effect). Its notebook defines the true ROAS as sum(y − y01) / sum(x1) (93.39) and
sum(y − y02) / sum(x2) (171.41). A confounder z drives x1 and y; the case study treats it as
unobserved. Two cases are run: as the case study's user sees it (z unobserved: the declared graph
misses a confounder, so x1's estimate is expected to be biased) and with z given as a control.
The file carries no marginal ROI truth: mROI is not scored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.heldout.worlds import zero_in_support

DATA = Path(__file__).resolve().parent / "data" / "pymc_marketing_mmm_roas_data.csv"
PUBLISHED_ROAS = {"x1": 93.39, "x2": 171.41}
"""As printed by the case study (docs/source/notebooks/mmm/mmm_roas.ipynb), two decimals."""


@dataclass(frozen=True)
class PublicDataset:
    name: str
    data: pd.DataFrame
    truth: pd.DataFrame
    edges: tuple[tuple[str, str], ...]
    controls: tuple[str, ...]
    date_column: str = "week"
    kpi: str = "sales"


def missing() -> list[str]:
    """Why a public dataset cannot be loaded (empty when all are present)."""
    return [] if DATA.exists() else [f"{DATA} is absent (see benchmarks/heldout/data/README.md)"]


def roas_truth(raw: pd.DataFrame) -> pd.DataFrame:
    """The case study's truth: incremental y over the window per unit of spend, per channel."""
    rows = []
    for channel, without in (("x1", "y01"), ("x2", "y02")):
        spend = raw[channel].to_numpy(dtype=float)
        rows.append({"channel": channel, "spend": float(spend.sum()),
                     "roi": float((raw["y"] - raw[without]).sum() / spend.sum()), "mroi": np.nan,
                     "zero_in_support": zero_in_support(spend), "always_on": not zero_in_support(spend),
                     "null": False})
    return pd.DataFrame(rows)


def load_all() -> list[PublicDataset]:
    if missing():
        return []
    raw = pd.read_csv(DATA)
    truth = roas_truth(raw)
    frame = pd.DataFrame({"week": raw["date"], "x1_spend": raw["x1"], "x2_spend": raw["x2"], "sales": raw["y"]})
    base = (("seasonality", "x1"), ("seasonality", "sales"), ("trend", "sales"), ("x1", "sales"), ("x2", "sales"))
    with_z = frame.assign(z=raw["z"])
    return [
        PublicDataset("pymc_roas (z unobserved)", frame, truth, base, ("seasonality", "trend")),
        PublicDataset("pymc_roas (z observed)", with_z, truth, (*base, ("z", "x1"), ("z", "sales")),
                      ("seasonality", "trend", "z")),
    ]

"""Budgets that follow sales: a channel whose spend is planned from the KPI's past.

A lagged-KPI node is a control column that holds the KPI of earlier weeks: named `kpi_lag<k>`,
`<kpi>_lag<k>`, `kpi_mean_last<k>` or `<kpi>_mean_last<k>`, or recognised from its values (the KPI
shifted by k weeks, or the mean of the k weeks before, on every week where both are defined).

Read in time, a DAG edge `sales_lag52 -> tv` says: past spend → past KPI → planned spend → KPI. The
lagged KPI is then a confounder of spend and KPI (the KPI's slow drivers, its autocorrelated noise,
reach both the past and the present KPI) and at the same time a result of earlier spend, which the
adstocked treatment carries and which moves the present spend through the plan. Adjusting for it
conditions on a result of the treatment's own history (a collider between earlier spend and the
KPI's persistent drivers); leaving it out leaves the confounding open. No regression adjustment of
the observed weekly columns is valid then. The channel is withheld from the estimates table with
that reason rather than given a confident number from an invalid adjustment, and estimated instead
by g-estimation over the planning rule (`effects/feedback.py`, published as feedback.csv), which is
valid under treatment–confounder feedback and states its assumptions.

A control named `kpi_lag<k>` / `<kpi>_lag<k>` or `kpi_mean_last<k>` / `<kpi>_mean_last<k>` that the
data lacks is generated from the KPI (`generated_history`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import lagged_kpi_name

MAX_LAG = 104
"""Lags tried when a column is recognised from its values (two years of weeks)."""


class LagKind(Enum):
    LAG = "lag"
    """The KPI k weeks before."""
    MEAN = "mean_last"
    """The mean KPI over the k weeks before."""


@dataclass(frozen=True)
class LaggedKpi:
    node: str
    kind: LagKind
    weeks: int

    def describe(self) -> str:
        return (f"the KPI {self.weeks} weeks before" if self.kind is LagKind.LAG
                else f"the mean KPI of the {self.weeks} weeks before")


def from_name(name: str, outcome: str) -> LaggedKpi | None:
    parts = lagged_kpi_name(name, outcome)
    return LaggedKpi(name, LagKind(parts[0]), parts[1]) if parts else None


def kpi_history(kpi: np.ndarray, driver: LaggedKpi) -> np.ndarray:
    """The lagged-KPI values of `driver` per week, NaN where the KPI's history does not reach."""
    y = np.asarray(kpi, dtype=float)
    out = np.full(y.size, np.nan)
    k = driver.weeks
    if k >= y.size:
        return out
    if driver.kind is LagKind.LAG:
        out[k:] = y[:-k]
        return out
    csum = np.concatenate([[0.0], np.cumsum(y)])
    t = np.arange(k, y.size)
    out[k:] = (csum[t] - csum[t - k]) / k
    return out


def generated_history(kpi: np.ndarray, driver: LaggedKpi) -> np.ndarray:
    """A generated lagged-KPI control: `kpi_history`, with the weeks before the data (which no
    history reaches) holding the mean KPI of the first `weeks` weeks. The independence tests see
    those filled weeks; g-estimation reads `kpi_history` and skips them."""
    out = kpi_history(kpi, driver)
    y = np.asarray(kpi, dtype=float)
    out[~np.isfinite(out)] = float(np.mean(y[:max(1, min(driver.weeks, y.size))]))
    return out


def _matches(values: np.ndarray, reference: np.ndarray) -> bool:
    ok = np.isfinite(values) & np.isfinite(reference)
    weeks = np.flatnonzero(ok)
    if weeks.size < 10:
        return False
    a, b = values[weeks], reference[weeks]
    tolerance = 1e-6 * max(1.0, float(np.max(np.abs(b))))
    if abs(a[0] - b[0]) > tolerance:  # most candidate lags differ at once: skip the whole comparison
        return False
    return bool(np.all(np.abs(a - b) <= tolerance))


def lagged_kpi_nodes(data: pd.DataFrame, outcome: str, candidates: Collection[str],
                     max_lag: int = MAX_LAG) -> dict[str, LaggedKpi]:
    """The candidate columns that hold the KPI's past (by name, else by value)."""
    y = data[outcome].to_numpy(dtype=float)
    out: dict[str, LaggedKpi] = {}
    for name in candidates:
        if name == outcome or name not in data.columns:
            continue
        named = from_name(name, outcome)
        if named is not None:
            out[name] = named
            continue
        values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
        for k in range(1, min(max_lag, len(y) // 3) + 1):
            kinds = (LagKind.LAG, LagKind.MEAN) if k > 1 else (LagKind.LAG,)
            found = next((LaggedKpi(name, kind, k) for kind in kinds
                          if _matches(values, kpi_history(y, LaggedKpi(name, kind, k)))), None)
            if found is not None:
                out[name] = found
                break
    return out


def feedback_reason(g_nodes: nx.DiGraph, channel: str, outcome: str,
                    lagged: Mapping[str, LaggedKpi]) -> str | None:
    """Why regression adjustment is invalid for `channel`: a lagged-KPI node drives its spend (a
    directed path to it) while the channel moves the KPI. None when no such feedback is in the DAG."""
    if channel not in g_nodes or outcome not in g_nodes or not nx.has_path(g_nodes, channel, outcome):
        return None
    drivers = [lagged[n] for n in lagged if n in g_nodes and nx.has_path(g_nodes, n, channel)]
    if not drivers:
        return None
    named = "; ".join(f"'{d.node}', {d.describe()}" for d in drivers)
    return (f"not identifiable by adjustment: its spend is planned from the KPI's past ({named}); past spend -> past "
            f"KPI -> planned spend -> KPI makes the lagged KPI both a confounder and a result of earlier spend "
            f"(carried in the adstocked treatment), so no adjustment of the observed columns is valid. Its g-estimate, "
            f"valid under that feedback with the assumptions it states, is in feedback.csv; a lift test answers "
            f"without assumptions on the plan.")

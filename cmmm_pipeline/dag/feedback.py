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
the observed weekly columns is valid then: such a channel needs a method valid under
treatment–confounder feedback (g-computation or a marginal structural model over the planning rule),
which this pipeline does not have, so the channel is withheld with that reason rather than given a
confident number from an invalid adjustment.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

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


def _from_name(name: str, outcome: str) -> LaggedKpi | None:
    m = re.fullmatch(rf"(?:kpi|{re.escape(outcome)})_(lag|mean_last)([0-9]+)", name)
    return LaggedKpi(name, LagKind(m.group(1)), int(m.group(2))) if m and int(m.group(2)) > 0 else None


def _matches(values: np.ndarray, reference: np.ndarray) -> bool:
    ok = np.isfinite(values) & np.isfinite(reference)
    if ok.sum() < 10:
        return False
    scale = max(1.0, float(np.nanmax(np.abs(reference[ok]))))
    return bool(np.allclose(values[ok], reference[ok], rtol=0.0, atol=1e-6 * scale))


def lagged_kpi_nodes(data: pd.DataFrame, outcome: str, candidates: Collection[str],
                     max_lag: int = MAX_LAG) -> dict[str, LaggedKpi]:
    """The candidate columns that hold the KPI's past (by name, else by value)."""
    y = data[outcome].astype(float)
    out: dict[str, LaggedKpi] = {}
    for name in candidates:
        if name == outcome or name not in data.columns:
            continue
        named = _from_name(name, outcome)
        if named is not None:
            out[name] = named
            continue
        values = pd.to_numeric(data[name], errors="coerce").to_numpy(dtype=float)
        for k in range(1, min(max_lag, len(y) // 3) + 1):
            if _matches(values, y.shift(k).to_numpy()):
                out[name] = LaggedKpi(name, LagKind.LAG, k)
                break
            if k > 1 and _matches(values, y.shift(1).rolling(k).mean().to_numpy()):
                out[name] = LaggedKpi(name, LagKind.MEAN, k)
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
            f"(carried in the adstocked treatment), so no adjustment of the observed columns is valid. Fix: a method "
            f"valid under treatment-confounder feedback (g-computation or a marginal structural model over the "
            f"planning rule) or a lift test; withheld until then.")

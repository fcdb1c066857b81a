"""The DAG checked against the data: the conditional independences it implies, each tested on
the weekly table with tests that stay calibrated on autocorrelated, trending series.

Which implications. For every pair of observed nodes the DAG leaves unconnected, one local Markov
statement `x ⟂ y | pa(x)` with y not a descendant of x. Of the (at most two) candidates we prefer
a stochastic x (a generated Fourier or trend node has no noise of its own to test), then the
smallest conditioning set in data columns. When x's parents include a latent node, the smallest
d-separator among observed nodes stands in. Every statement is verified by d-separation.

How they are tested. A plain partial correlation between two autocorrelated weekly series has a
variance several times 1/n and rejects far too often (about a quarter of true implications on
the simulator). So each test is a regression with autoregressive errors (feasible GLS):

1. x is regressed on the conditioning columns, a linear time index and the squares of the
   stochastic conditioning columns (a curved dependence on a parent, e.g. through saturation,
   must not pass for a missing edge), together with y's columns;
2. an AR(p) model is fitted to that residual (Yule–Walker through statsmodels' Levinson–Durbin
   recursion, p by BIC) and its small-sample bias is
   removed by a parametric bootstrap (Kilian): a downward-biased AR filter leaves exactly the
   low-frequency noise that a trend or a seasonal regressor picks up;
3. the same AR filter is applied to every column, which turns the errors of x white while keeping
   any contemporaneous link between x and y;
4. Fisher z on the partial correlation of filtered x and filtered y, its variance inflated by
   Bartlett's formula 1 + 2 Σ_k ρ_u(k) ρ_v(k) for whatever serial dependence the filter left
   (never deflated); chi-squared on a table of quantile bins of the two filtered residuals, its
   null moments estimated by resampling x's residual in blocks of weeks (circular block bootstrap,
   which keeps its serial dependence and breaks its alignment with y) and matched by a scaled
   chi-squared (never narrower than the iid one).

A node carried by several columns (Fourier seasonality) is tested column by column given the
others, and the smallest p-value is Bonferroni-corrected for the number of columns. The p-values
of all tests are then adjusted together (Holm by default: the DAG
passes or fails as a whole).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.dag.adjustment import open_path

MIN_WEEKS = 30
"""Fewer weeks than this cannot support an AR fit and a test of independence."""


class TestKind(Enum):
    """The two tests every implication gets: linear (Fisher z) and binned (chi-squared)."""

    __test__ = False  # not a pytest test class

    FISHER_Z = "fisher_z"
    CHI_SQUARED = "chi_squared"


class SerialDependence(Enum):
    """PREWHITEN: the calibrated tests of this module. IGNORE: textbook iid tests (no AR filter, no
    inflation), kept only to show by simulation how often they reject a true DAG on weekly data."""

    PREWHITEN = "prewhiten"
    IGNORE = "ignore"


class CorrectionMethod(Enum):
    """Multiple-testing control: Holm bounds the chance of any false alarm, BH the false share."""

    HOLM = "holm"
    BH = "bh"


@dataclass(frozen=True)
class Implication:
    """`x ⟂ y | given`: x is the node regressed on `given` (its parents, when they are observed)."""

    x: str
    y: str
    given: tuple[str, ...]

    def text(self) -> str:
        given = f" | {', '.join(self.given)}" if self.given else ""
        return f"{self.x} ⟂ {self.y}{given}"


@dataclass(frozen=True)
class IndependenceSettings:
    """How the tests run. `detrend` adds a linear time index to every conditioning set (except in
    tests of the trend node itself): spend that grows over the years is not by itself evidence of
    a missing edge, and time has no causes, so conditioning on it never opens a path.
    `dependence_lags` is the range of serial dependence allowed for after prewhitening
    (None: 2·n^(1/3) weeks)."""

    alpha: float = 0.05
    correction: CorrectionMethod = CorrectionMethod.HOLM
    bins: int = 3
    max_ar_order: int = 6
    bias_correction_draws: int = 100
    null_draws: int = 500
    dependence_lags: int | None = None
    detrend: bool = True
    quadratic: bool = True
    serial: SerialDependence = SerialDependence.PREWHITEN
    seed: int = 0
    max_implications: int | None = 300
    """At most this many implications are tested (None: all), see `select_implications`."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.bins < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")
        if self.max_ar_order < 0 or self.bias_correction_draws < 0 or self.null_draws < 0:
            raise ValueError("max_ar_order, bias_correction_draws and null_draws must be >= 0")
        if self.max_implications is not None and self.max_implications < 1:
            raise ValueError(f"max_implications must be >= 1, got {self.max_implications}")
        if self.dependence_lags is not None and self.dependence_lags < 1:
            raise ValueError(f"dependence_lags must be >= 1, got {self.dependence_lags}")

    def lags(self, weeks: int) -> int:
        """Weeks of serial dependence allowed for after prewhitening (0 when it is ignored)."""
        if self.serial is SerialDependence.IGNORE:
            return 0
        lags = self.dependence_lags if self.dependence_lags is not None else round(2 * weeks ** (1 / 3))
        return max(1, min(lags, weeks // 4))


@dataclass(frozen=True)
class IndependenceTestResult:
    """One test of one implication; `p_adjusted` and `rejected` are set by `adjust_results`."""

    implication: Implication
    test: TestKind
    statistic: float
    df: float
    p_value: float
    weeks: int
    ar_order: int
    column: str
    """The column of the tested node that gave the smallest p-value (the node's own name unless it
    spans several columns)."""
    p_adjusted: float = float("nan")
    rejected: bool = False


@dataclass(frozen=True)
class Untestable:
    """An implication the data cannot speak to, and why (e.g. both nodes are generated features)."""

    implication: Implication
    reason: str


# ---------------------------------------------------------------------------------------------
# Implications


def implied_independences(g: nx.DiGraph, observed: Collection[str], width: Mapping[str, int] | None = None,
                          deterministic: Collection[str] = ()) -> list[Implication]:
    """One conditional independence per unconnected pair of observed nodes (see the module docstring).

    `width` is the number of data columns of a node (default 1) and prices a conditioning set.
    Pairs that no set of observed nodes separates (two children of a latent node) are left out:
    the DAG implies nothing testable about them. Quadratic in the number of nodes (each node's
    descendants are found once); how many of them are tested is bounded by `select_implications`."""
    observed_set = set(observed)
    widths = dict(width or {})

    def cost(nodes: Sequence[str]) -> int:
        return sum(widths.get(n, 1) for n in nodes)

    order = [n for n in nx.lexicographical_topological_sort(g) if n in observed_set]
    position = {n: i for i, n in enumerate(order)}
    descendants = {n: nx.descendants(g, n) for n in order}
    parents = {n: tuple(sorted(g.predecessors(n))) for n in order}
    out: list[Implication] = []
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if g.has_edge(a, b) or g.has_edge(b, a):
                continue
            candidates = [Implication(x, y, parents[x]) for x, y in ((b, a), (a, b))
                          if y not in descendants[x] and set(parents[x]) <= observed_set]
            if not candidates:
                separator = nx.find_minimal_d_separator(g, a, b, restricted=observed_set)
                if separator is None:
                    continue
                x, y = (a, b) if b in deterministic and a not in deterministic else (b, a)
                candidates = [Implication(x, y, tuple(sorted(separator)))]
            best = min(candidates, key=lambda c: (c.x in deterministic, cost(c.given), -position[c.x]))
            if open_path(g, best.x, best.y, best.given) is not None:
                raise AssertionError(f"{best.text()} is not implied by the DAG")
            out.append(best)
    return out


def select_implications(implications: Sequence[Implication], limit: int | None,
                        first: Collection[str] = ()) -> tuple[list[Implication], list[Implication]]:
    """The implications to test and those left out when there are more than `limit` (None: no
    limit). A DAG over n nodes implies up to n(n−1)/2 of them (5,668 with 100 controls), each a
    few tens of milliseconds to test: the limit keeps the step bounded, and the report says how
    many were left out. Those naming a node in `first` (the channels: a missing edge into a
    channel is a missing confounder) come first; otherwise the DAG's topological order is kept."""
    if limit is None or len(implications) <= limit:
        return list(implications), []
    first_set = set(first)
    ranked = sorted(range(len(implications)),
                    key=lambda i: (not ({implications[i].x, implications[i].y} & first_set), i))
    keep = set(ranked[:limit])
    return ([imp for i, imp in enumerate(implications) if i in keep],
            [imp for i, imp in enumerate(implications) if i not in keep])


# ---------------------------------------------------------------------------------------------
# Autoregressive errors


def _fits_by_order(acov: np.ndarray, order: int) -> list[tuple[np.ndarray, float]]:
    """Yule–Walker fits of every order 0..order from biased autocovariances: (coefficients,
    innovation variance), by statsmodels' Levinson–Durbin recursion. Yule–Walker estimates are
    always stationary, so the filter never explodes. Orders past a vanishing innovation variance
    (a perfectly predictable series) are left out."""
    from statsmodels.tsa.stattools import levinson_durbin
    fits: list[tuple[np.ndarray, float]] = [(np.zeros(0), float(acov[0]))]
    if order == 0 or acov[0] <= 0:
        return fits
    with np.errstate(divide="ignore", invalid="ignore"):
        recursion = levinson_durbin(acov[: order + 1], nlags=order, isacov=True)
    sigma = np.concatenate([[acov[0]], recursion.sigma[1:]])
    for k in range(1, order + 1):
        if not sigma[k - 1] > 0:
            break
        fits.append((recursion.phi[1: k + 1, k].copy(), float(sigma[k])))
    return fits


def _autocovariances(e: np.ndarray, order: int) -> np.ndarray:
    """Biased (divided by n) autocovariances of lags 0..order of a demeaned series: statsmodels'
    `acovf(e, adjusted=False, demean=False, fft=False, nlag=order)` written out with its very
    operations, which it wraps in checks costing ten times the arithmetic at 300 tests a run."""
    acov = np.empty(order + 1)
    acov[0] = e.dot(e)
    for k in range(1, order + 1):
        acov[k] = e[k:].dot(e[:-k])
    return acov / len(e)


def yule_walker_rows(paths: np.ndarray, order: int) -> np.ndarray:
    """Yule–Walker AR(order) coefficients of every row (each row demeaned by the caller), the
    Toeplitz systems of all rows solved at once (the same estimates as the recursion, vectorised
    for the bias correction's hundreds of simulated paths)."""
    n = paths.shape[1]
    if order == 0:
        return np.zeros((len(paths), 0))
    acov = np.stack([(paths[:, : n - k] * paths[:, k:]).sum(axis=1) / n for k in range(order + 1)], axis=1)
    lags = np.abs(np.subtract.outer(np.arange(order), np.arange(order)))
    toeplitz = acov[:, lags]
    return np.linalg.solve(toeplitz, acov[:, 1:, None])[:, :, 0]


def yule_walker(residual: np.ndarray, order: int) -> np.ndarray:
    """Yule–Walker AR(order) coefficients of a (demeaned) series."""
    e = residual - residual.mean()
    return _fits_by_order(_autocovariances(e, order), order)[-1][0]


def fit_ar(residual: np.ndarray, max_order: int, min_order: int = 0) -> np.ndarray:
    """AR coefficients of a residual series, the order chosen by BIC between `min_order` and
    `max_order` (empty: white noise)."""
    e = residual - residual.mean()
    n = len(e)
    max_order = min(max_order, n // 4)
    if max_order == 0 or float(e @ e) <= 0:
        return np.zeros(0)
    fits = _fits_by_order(_autocovariances(e, max_order), max_order)
    bic = [n * np.log(max(s2, 1e-300)) + np.log(n) * len(phi) if len(phi) >= min(min_order, len(fits) - 1)
           else np.inf for phi, s2 in fits]
    return fits[int(np.argmin(bic))][0]


def ar_filter(values: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """v_t − Σ_k φ_k v_{t−k} for t ≥ p (weeks are rows; 1-D or 2-D)."""
    p = len(phi)
    out = np.array(values[p:], dtype=float)
    for k, coefficient in enumerate(phi, start=1):
        out -= coefficient * values[p - k: len(values) - k]
    return out


def simulate_ar(phi: np.ndarray, innovations: np.ndarray, burn: int) -> np.ndarray:
    """AR(p) paths driven by `innovations` (draws × (burn + n)); the first `burn` weeks are dropped."""
    from scipy.signal import lfilter

    return lfilter([1.0], np.concatenate([[1.0], -phi]), innovations, axis=1)[:, burn:]


def _is_stationary(phi: np.ndarray) -> bool:
    if len(phi) == 0:
        return True
    return bool(np.all(np.abs(np.roots(np.concatenate([[1.0], -phi]))) < 0.995))


def bias_corrected_ar(residual: np.ndarray, design: np.ndarray, max_order: int, draws: int,
                      rng: np.random.Generator, min_order: int = 0) -> np.ndarray:
    """AR coefficients with their small-sample bias removed (Kilian 1998): simulate the fitted AR
    with resampled innovations, push the paths through the same regression, refit, and subtract
    the average shift; the correction is shrunk until the filter stays stationary. The order is
    chosen by BIC between `min_order` and `max_order`."""
    phi = fit_ar(residual, max_order, min_order)
    p = len(phi)
    if p == 0 or draws == 0:
        return phi
    n, burn = len(residual), 50
    innovations = ar_filter(residual - residual.mean(), phi)
    innovations = innovations - innovations.mean()
    paths = simulate_ar(phi, rng.choice(innovations, size=(draws, burn + n), replace=True), burn)
    q, _ = np.linalg.qr(design)
    paths = paths - (paths @ q) @ q.T
    refits = yule_walker_rows(paths - paths.mean(axis=1, keepdims=True), p)
    bias = refits.mean(axis=0) - phi
    for shrink in np.linspace(1.0, 0.0, 21):
        corrected = phi - shrink * bias
        if _is_stationary(corrected):
            return corrected
    return phi


# ---------------------------------------------------------------------------------------------
# The two tests on prewhitened residuals


def _residual(y: np.ndarray, design: np.ndarray) -> np.ndarray:
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ beta


def _acf(v: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelations of lags 1..lags (zeros for a constant series), as statsmodels' `acf`
    (biased, no FFT) computes them."""
    if float(np.ptp(v)) <= 0:
        return np.zeros(lags)
    acov = _autocovariances(v - v.mean(), lags)
    return acov[1:] / acov[0]


def serial_variance_inflation(u: np.ndarray, v: np.ndarray, lags: int) -> float:
    """Bartlett's formula for the variance of a correlation between two independent series, relative
    to 1/n: 1 + 2 Σ_k w_k ρ_u(k) ρ_v(k) (Bartlett-weighted), floored at 1."""
    if lags == 0:
        return 1.0
    weights = 1.0 - np.arange(1, lags + 1) / (lags + 1.0)
    return max(1.0, 1.0 + 2.0 * float(weights @ (_acf(u, lags) * _acf(v, lags))))


def fisher_z(u: np.ndarray, v: np.ndarray, u_full: np.ndarray, df: int, lags: int) -> tuple[float, float]:
    """z statistic and two-sided p-value of the correlation of residuals u and v; the serial
    inflation is measured on `u_full`, x's residual with y included (under a link, u carries it)."""
    from scipy.special import ndtr
    denominator = float(np.sqrt((u @ u) * (v @ v)))
    r = float(np.clip(float(u @ v) / denominator, -0.999999, 0.999999)) if denominator > 0 else 0.0
    z = float(np.arctanh(r) * np.sqrt(max(df, 1)) / np.sqrt(serial_variance_inflation(u_full, v, lags)))
    return z, float(2.0 * ndtr(-abs(z)))  # scipy.stats.norm.sf(|z|), without its argument checks


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Quantile bin of each value, from ranks (ties and outliers do not matter). The ranks are
    scipy's `rankdata(values, method="ordinal") - 1`: ties in the order they come (a stable sort)."""
    ranks = np.empty(len(values), dtype=np.intp)
    ranks[np.argsort(values, kind="mergesort")] = np.arange(len(values))
    return (ranks * bins) // len(values)


def pearson_statistic(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    table = np.bincount(a * bins + b, minlength=bins * bins).reshape(bins, bins).astype(float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def _pearson_rows(rows: np.ndarray, b: np.ndarray, bins: int) -> np.ndarray:
    """Pearson's statistic of (each row of bin labels, b) at once."""
    draws, n = rows.shape
    cells = bins * bins
    # 32-bit codes: the same counts at a tenth of the cost of broadcasting 64-bit integers
    offsets = np.add.outer(cells * np.arange(draws, dtype=np.int32), np.asarray(b, dtype=np.int32))
    codes = rows.astype(np.int32, copy=False) * np.int32(bins) + offsets
    tables = np.bincount(codes.ravel(), minlength=cells * draws).reshape(draws, bins, bins).astype(float)
    expected = tables.sum(axis=2, keepdims=True) * tables.sum(axis=1, keepdims=True) / n
    return ((tables - expected) ** 2 / expected).sum(axis=(1, 2))


def circular_block_indices(n: int, block: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n) week indices: runs of `block` consecutive weeks (wrapping around) from random starts."""
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(draws, blocks), dtype=np.int32)
    weeks = starts[:, :, None] + np.arange(block, dtype=np.int32)[None, None, :]
    weeks[weeks >= n] -= n  # the wrap-around: a start is below n and a block no longer than n
    return weeks.reshape(draws, -1)[:, :n]


def chi_squared(u: np.ndarray, v: np.ndarray, u_full: np.ndarray, bins: int,
                resample: np.ndarray | None) -> tuple[float, float, float]:
    """Pearson's statistic on quantile bins of u and v, and its p-value against a scaled chi-squared
    a·χ²(ν) with the mean and variance of the statistic when `u_full`'s bins are resampled in blocks
    of weeks (`resample`: rows of `circular_block_indices`) against v's: the blocks keep the serial
    dependence of x's residual and break its alignment with y. The null is never taken narrower than
    the iid χ²((bins−1)²), which is the reference when `resample` is None."""
    from scipy.special import chdtrc
    a, b = quantile_bins(u, bins), quantile_bins(v, bins)
    statistic = pearson_statistic(a, b, bins)
    df = float((bins - 1) ** 2)
    mean, var = df, 2.0 * df
    if resample is not None and len(resample):
        null = _pearson_rows(quantile_bins(u_full, bins)[resample], b, bins)
        mean, var = max(float(null.mean()), df), max(float(null.var()), 2.0 * df)
    scale, nu = var / (2.0 * mean), 2.0 * mean**2 / var
    return statistic, df, float(chdtrc(nu, statistic / scale))  # scipy.stats.chi2.sf(statistic / scale, nu)


class WeeklyColumns:
    """The model table's columns as float arrays, each converted (and checked for gaps) once: a DAG
    of 20 channels implies some 300 independences, and each test reads its columns again."""

    def __init__(self, data: pd.DataFrame) -> None:
        self._data = data
        self._values: dict[str, np.ndarray] = {}
        self.weeks = len(data)

    def values(self, column: str) -> np.ndarray:
        if column not in self._values:
            self._values[column] = self._data[column].to_numpy(dtype=float)
        return self._values[column]

    def has_gaps(self, column: str) -> bool:
        return bool(np.isnan(self.values(column)).any())


def _conditioning_design(data: WeeklyColumns, columns: Sequence[str], stochastic: Collection[str],
                         time_index: bool, quadratic: bool) -> np.ndarray:
    n = data.weeks
    parts = [np.ones((n, 1))]
    if time_index:
        parts.append(np.linspace(0.0, 1.0, n)[:, None])
    for column in columns:
        v = data.values(column)
        parts.append(v[:, None])
        sd = float(v.std())
        if quadratic and column in stochastic and sd > 0:
            parts.append((((v - v.mean()) / sd) ** 2)[:, None])
    return np.hstack(parts)


def check_implication(data: pd.DataFrame | WeeklyColumns, implication: Implication,
                      columns: Mapping[str, Sequence[str]],
                      deterministic: Collection[str], settings: IndependenceSettings,
                      trend_node: str | None = "trend") -> list[IndependenceTestResult] | Untestable:
    """Both tests of one implication (unadjusted p-values), or why it cannot be tested.

    Parameters
    ----------
    data
        The model table, weeks as rows in calendar order (`WeeklyColumns` of it when many
        implications are tested on the same table).
    implication
        `x ⟂ y | given`.
    columns
        Each node's data columns (Fourier seasonality spans several).
    deterministic
        The generated nodes (Fourier seasonality, trend) that carry no noise of their own.
    settings
        Levels, bins, AR orders, draws and the seed.
    trend_node
        The trend node, never added as a nuisance time index to its own test.
    """
    x, y = implication.x, implication.y
    if x in deterministic and y in deterministic:
        return Untestable(implication, "both nodes are generated features without noise")
    if x in deterministic or len(columns[x]) > 1:
        x, y = y, x
    if x in deterministic or len(columns[x]) > 1:
        return Untestable(implication, "neither node is a single column with noise of its own")
    given = [c for node in implication.given for c in columns[node]]
    used = [columns[x][0], *columns[y], *given]
    table = data if isinstance(data, WeeklyColumns) else WeeklyColumns(data)
    if table.weeks < MIN_WEEKS:
        return Untestable(implication, f"only {table.weeks} weeks (at least {MIN_WEEKS} are needed)")
    missing = [c for c in used if table.has_gaps(c)]
    if missing:
        return Untestable(implication, f"missing values in {', '.join(missing)}")

    stochastic = {c for node in implication.given if node not in deterministic for c in columns[node]}
    time_index = settings.detrend and trend_node not in {x, y, *implication.given}
    design = _conditioning_design(table, given, stochastic, time_index, settings.quadratic)
    response = table.values(columns[x][0])
    block = np.column_stack([table.values(c) for c in columns[y]])
    full = np.hstack([design, block])
    rng = np.random.default_rng(settings.seed)
    phi = (bias_corrected_ar(_residual(response, full), full, settings.max_ar_order,
                             settings.bias_correction_draws, rng)
           if settings.serial is SerialDependence.PREWHITEN else np.zeros(0))
    f_design, f_response, f_block = ar_filter(design, phi), ar_filter(response, phi), ar_filter(block, phi)
    u_full = _residual(f_response, np.hstack([f_design, f_block]))
    weeks = len(u_full)
    lags = settings.lags(weeks)
    df_z = weeks - (f_design.shape[1] - 1) - (block.shape[1] - 1) - len(phi) - 3
    resample = circular_block_indices(weeks, lags, settings.null_draws, rng) if lags else None
    best: dict[TestKind, tuple[float, float, float, str]] = {}
    for j, column in enumerate(columns[y]):
        given_j = np.hstack([f_design, np.delete(f_block, j, axis=1)])  # column j given the others
        v = _residual(f_block[:, j], given_j)
        if float(v @ v) <= 1e-10 * max(1.0, float(f_block[:, j] @ f_block[:, j])):
            continue  # the column is a function of the conditioning set: nothing left to test
        u = _residual(f_response, given_j)
        z, p_z = fisher_z(u, v, u_full, df_z, lags)
        chi, df_chi, p_chi = chi_squared(u, v, u_full, settings.bins, resample)
        for kind, value in ((TestKind.FISHER_Z, (z, float(df_z), p_z, column)),
                            (TestKind.CHI_SQUARED, (chi, df_chi, p_chi, column))):
            if kind not in best or value[2] < best[kind][2]:
                best[kind] = value
    if not best:
        return Untestable(implication, f"'{y}' is fully determined by the conditioning set")
    tested = len(columns[y])
    return [IndependenceTestResult(implication, kind, statistic, df, min(1.0, tested * p), weeks, len(phi), column)
            for kind, (statistic, df, p, column) in best.items()]


# ---------------------------------------------------------------------------------------------
# The family


def adjust_pvalues(p_values: Sequence[float], method: CorrectionMethod) -> np.ndarray:
    """Holm (step-down, family-wise error) or Benjamini–Hochberg (step-up, false discovery rate).
    Written out rather than called from statsmodels' `multipletests` (tested equal to it), whose Holm
    branch runs a full garbage collection: 0.3 s per call in a run's heap, for a dozen numbers."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method is CorrectionMethod.HOLM:
        adjusted = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        adjusted = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def adjust_results(results: Sequence[IndependenceTestResult],
                   settings: IndependenceSettings) -> list[IndependenceTestResult]:
    adjusted = adjust_pvalues([r.p_value for r in results], settings.correction)
    return [replace(r, p_adjusted=float(a), rejected=bool(a < settings.alpha)) for r, a in zip(results, adjusted)]


TABLE_COLUMNS = ["x", "y", "given", "implication", "test", "statistic", "df", "p_value", "p_adjusted", "rejected",
                 "alpha", "correction", "weeks", "ar_order", "column"]


@dataclass(frozen=True)
class IndependenceReport:
    """Every test of every testable implication (adjusted together), and what could not be tested."""

    results: tuple[IndependenceTestResult, ...]
    untestable: tuple[Untestable, ...]
    settings: IndependenceSettings
    not_tested: int = 0
    """Implications of the DAG left out by `settings.max_implications`."""

    def table(self) -> pd.DataFrame:
        """The `dag_tests` table: one row per implication and test."""
        rows = [{"x": r.implication.x, "y": r.implication.y, "given": "|".join(r.implication.given),
                 "implication": r.implication.text(), "test": r.test.value, "statistic": r.statistic, "df": r.df,
                 "p_value": r.p_value, "p_adjusted": r.p_adjusted, "rejected": r.rejected,
                 "alpha": self.settings.alpha, "correction": self.settings.correction.value, "weeks": r.weeks,
                 "ar_order": r.ar_order, "column": r.column} for r in self.results]
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def message(self) -> str:
        return rejection_message(self.table(), self.not_tested)


ROLE_ORDER = {"latent": 0, "control": 0, "channel": 1, "kpi": 2}
"""Causal order of roles: an added edge runs from a lower rank to a higher one where the DAG allows it
(a control that drives a channel's spend, a channel that drives the KPI)."""


def edge_to_add(g: nx.DiGraph, x: str, y: str, roles: Mapping[str, str],
                no_causes: Collection[str] = ()) -> tuple[str, str] | None:
    """The edge that would account for a rejected `x ⟂ y | …`: of y → x and x → y, those that keep
    the DAG acyclic, give the KPI no child and a generated node (`no_causes`) no cause; of these,
    the one from a control towards a channel or from a channel towards the KPI, else y → x (the
    local Markov statement regresses x on its parents: y is the parent the data ask for). None when
    neither is allowed: then only a common cause explains the dependence."""
    allowed = [(u, v) for u, v in ((y, x), (x, y))
               if u in g and v in g and v not in no_causes and roles.get(u) != "kpi"
               and not nx.has_path(g, v, u)]
    if not allowed:
        return None
    return min(allowed, key=lambda e: ROLE_ORDER.get(roles.get(e[0], "control"), 0)
               - ROLE_ORDER.get(roles.get(e[1], "control"), 0))


def with_edges_to_add(table: pd.DataFrame, g: nx.DiGraph, roles: Mapping[str, str],
                      no_causes: Collection[str] = ()) -> pd.DataFrame:
    """The `dag_tests` table with `edge_to_add` (`seasonality → digital`) on every rejected row."""
    edges = []
    for x, y, rejected in zip(table["x"].astype(str), table["y"].astype(str), table["rejected"].astype(bool)):
        edge = edge_to_add(g, x, y, roles, no_causes) if rejected else None
        edges.append(f"{edge[0]} → {edge[1]}" if edge else "")
    return table.assign(edge_to_add=edges)


def rejection_advice(implication: str, edge: str) -> str:
    """What to do about one rejected implication: the edge to add, or a common cause."""
    pair = " and ".join(implication.split(" | ")[0].split(" ⟂ "))
    if edge:
        return f"add the edge {edge} or a common cause of {pair}"
    return f"add a common cause of {pair} (no edge between them keeps the DAG valid)"


def not_tested_note(not_tested: int) -> str:
    """The sentence that says implications were left untested by the limit ('' when none were)."""
    if not not_tested:
        return ""
    return (f" {not_tested:,} further implications of the DAG were not tested: at most checks.max_implications "
            "are (those naming a channel first), to keep the step's time bounded; raise it to test more.")


def rejection_message(table: pd.DataFrame, not_tested: int = 0) -> str:
    """One paragraph from a `dag_tests` table: which implications the data reject, and what to do
    about each (the edge to add, from its `edge_to_add` column), and how many implications the
    limit left untested."""
    return _rejection_message(table) + not_tested_note(not_tested)


def _rejection_message(table: pd.DataFrame) -> str:
    if table.empty:
        return "The DAG implies no testable independence between observed nodes."
    tested = table["implication"].nunique()
    first = table.iloc[0]
    level = f"{str(first['correction']).upper()}-adjusted p < {float(first['alpha']):g}"
    rejected = table[table["rejected"].astype(bool)]
    if rejected.empty:
        return f"The data are consistent with all {tested} tested implications of the DAG (none with {level})."
    strongest = rejected.sort_values("p_adjusted", kind="stable").drop_duplicates("implication")
    if "edge_to_add" not in strongest.columns:
        parts = [f"{r.implication} (adjusted p = {r.p_adjusted:.2g}, {r.test})" for r in strongest.itertuples()]
        return (f"The data reject {len(strongest)} of {tested} implications of the DAG ({level}): "
                + "; ".join(parts) + ". Each names two nodes the DAG keeps apart that move together in the data: "
                "add the missing edge (or common cause) between them, or explain why the DAG is right.")
    parts = [f"{r.implication} rejected (adjusted p = {r.p_adjusted:.2g}, {r.test}): "
             f"{rejection_advice(str(r.implication), r.edge_to_add if isinstance(r.edge_to_add, str) else '')}"
             for r in strongest.itertuples()]
    return (f"The data reject {len(strongest)} of {tested} implications of the DAG ({level}). " + "; ".join(parts)
            + ". Each pair moves together in the data although the DAG keeps it apart: add the edge, or explain "
            "why the DAG is right.")


def run_independence_tests(data: pd.DataFrame, implications: Sequence[Implication],
                           columns: Mapping[str, Sequence[str]], deterministic: Collection[str],
                           settings: IndependenceSettings, trend_node: str | None = "trend",
                           first: Collection[str] = ()) -> IndependenceReport:
    """Both tests of every implication, p-values adjusted over the whole family (arguments as in
    `check_implication`); at most `settings.max_implications` of them, those naming a node of
    `first` first (`select_implications`), the number left out kept in the report."""
    results: list[IndependenceTestResult] = []
    untestable: list[Untestable] = []
    tested, left_out = select_implications(implications, settings.max_implications, first)
    table = WeeklyColumns(data)
    for implication in tested:
        outcome = check_implication(table, implication, columns, deterministic, settings, trend_node)
        if isinstance(outcome, Untestable):
            untestable.append(outcome)
        else:
            results.extend(outcome)
    return IndependenceReport(tuple(adjust_results(results, settings)), tuple(untestable), settings, len(left_out))

"""Missing drivers: what moves the KPI that no node of the DAG explains.

The KPI is regressed on all its parents in the DAG (the model columns of its causes: transformed
media, controls, Fourier seasonality); what is left over should be noise. Three patterns in that
residual name a cause the DAG leaves out, each with its fix:

- a trend: a linear time index added to the parents' regression is significant ("add trend to
  controls");
- seasonality: yearly Fourier terms added to it are jointly significant ("add seasonality to
  controls");
- strong autocorrelation: after whatever trend or seasonality was found, the residual's lag-1
  autocorrelation stays above a threshold (a slow-moving cause, e.g. distribution, brand or
  competitors' prices, is missing).

A candidate that the parents already span (the DAG has a trend node, or Fourier seasonality) is not
tested: the DAG explains it. Where the driver is a node of the DAG but does not span the pattern (a
provided `seasonality` column, fewer Fourier terms than the test's, or no edge into the KPI), a
finding says so and what to try, instead of asking for a control the config already has. Weekly
residuals are autocorrelated, so the tests are F tests of the added terms on AR-prewhitened columns
(feasible GLS), calibrated by a parametric bootstrap of AR errors under the null; their p-values are
Bonferroni-adjusted over the candidates tested. Thresholds are calibrated by
`benchmarks/diagnostics_calibration.py` (false alarms and power by simulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import networkx as nx
import numpy as np
import pandas as pd

from cmmm_pipeline.core.status import CheckCase, Status
from cmmm_pipeline.core.threads import numeric_step
from cmmm_pipeline.dag.independence import (
    MIN_WEEKS,
    ar_filter,
    bias_corrected_ar,
    simulate_ar,
    yule_walker,
    yule_walker_rows,
)
from cmmm_pipeline.media.transforms import fourier_terms, linear_trend

DIAGNOSTIC_COLUMNS = ["driver", "status", "tested", "statistic", "p_value", "p_adjusted", "effect_size", "message",
                      "recommendation"]


class Driver(Enum):
    """The patterns of a missing driver that the residual is searched for."""

    TREND = "trend"
    SEASONALITY = "seasonality"
    AUTOCORRELATION = "autocorrelation"


class MissingDriverCase(CheckCase):
    """What the KPI's residual shows, per pattern. Details: `size` (trend: change over the weeks;
    seasonality: amplitude; in KPI units), `share` (of the KPI's mean), `p` (adjusted), `rho`,
    `threshold`, `weeks`."""

    TREND = (Status.REVIEW, ("the KPI's residual drifts by {size:+,.0f} ({share:+.0%} of its mean) over {weeks} "
                             "weeks that no node of the DAG explains (adjusted p = {p:.2g})"),
             "add trend to controls, with an edge from trend to the KPI.")
    SEASONALITY = (Status.REVIEW, ("the KPI's residual follows the calendar year (amplitude {size:,.0f}, "
                                   "{share:.0%} of its mean) and no node of the DAG explains it "
                                   "(adjusted p = {p:.2g})"),
                   ("add seasonality to controls, with edges from seasonality to the KPI and to the channels it "
                    "drives."))
    TREND_FORM = (Status.REVIEW, ("the KPI's residual drifts by {size:+,.0f} ({share:+.0%} of its mean) over {weeks} "
                                  "weeks (adjusted p = {p:.2g}) although {form}"),
                  "trend is in the DAG but its form does not fit the drift (the finding says what to try).")
    SEASONALITY_FORM = (Status.REVIEW, ("the KPI's residual follows the calendar year (amplitude {size:,.0f}, "
                                        "{share:.0%} of its mean; adjusted p = {p:.2g}) although {form}"),
                        "seasonality is in the DAG but its form does not fit the yearly pattern (the finding says "
                        "what to try).")
    AUTOCORRELATION = (Status.REVIEW, ("the KPI's residual stays correlated from week to week (lag-1 "
                                       "autocorrelation {rho:.2f}, above {threshold:.2f})"),
                       ("a driver is missing: add the slow-moving cause of the KPI (e.g. distribution, brand, "
                        "competitors' prices) as a control with its edges, or as a latent node."))
    EXPLAINED = (Status.PASS, "the DAG's nodes already span the {driver}", "no action.")
    ABSENT = (Status.PASS, "no {driver} left in the KPI's residual ({detail})", "no action.")
    UNTESTED = (Status.PASS, "not tested: {reason}", "no action.")


@dataclass(frozen=True)
class DiagnosticSettings:
    """`alpha`: family-wise level of the trend and seasonality tests; `max_autocorrelation`: the
    residual's lag-1 autocorrelation above which a slow-moving driver is reported; the AR filter's
    bias correction as in `IndependenceSettings`."""

    alpha: float = 0.01
    max_autocorrelation: float = 0.5
    fourier_order: int = 2
    ar_order: int = 2
    """The AR order of the prewhitening filter, fixed: an order chosen by BIC is often 0 on 156
    weeks of AR(0.3) noise, and the left-over correlation then passes for seasonality."""
    null_draws: int = 200
    """Parametric bootstrap draws that calibrate the F tests (0: the F table)."""
    bias_correction_draws: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.max_autocorrelation < 1.0:
            raise ValueError(f"max_autocorrelation must be in (0, 1), got {self.max_autocorrelation}")
        if self.fourier_order < 1 or self.ar_order < 0 or self.bias_correction_draws < 0 or self.null_draws < 0:
            raise ValueError("fourier_order must be >= 1; ar_order, bias_correction_draws and null_draws >= 0")


@dataclass(frozen=True)
class DriverFinding:
    """One pattern's verdict: its case, the message with the numbers, and the statistics."""

    driver: Driver
    case: MissingDriverCase
    message: str
    statistic: float = float("nan")
    """Trend and seasonality: the F statistic of the added terms; autocorrelation: lag-1 ρ."""
    p_value: float = float("nan")
    p_adjusted: float = float("nan")
    effect_size: float = float("nan")
    """KPI units: the trend's change over the weeks, the seasonality's amplitude; ρ itself."""
    recommendation: str = ""
    """What to do about this finding, where it depends on the DAG (empty: the case's recommendation)."""

    @property
    def advice(self) -> str:
        return self.recommendation or self.case.recommendation

    @property
    def warns(self) -> bool:
        return self.case.status is not Status.PASS

    @property
    def tested(self) -> bool:
        return self.case not in (MissingDriverCase.EXPLAINED, MissingDriverCase.UNTESTED)


@dataclass(frozen=True)
class MissingDriverReport:
    findings: tuple[DriverFinding, ...]
    parents: tuple[str, ...]
    """The model columns the KPI was regressed on."""
    weeks: int

    @property
    def warnings(self) -> tuple[DriverFinding, ...]:
        return tuple(f for f in self.findings if f.warns)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "driver": f.driver.value, "status": f.case.status.value, "tested": f.tested, "statistic": f.statistic,
            "p_value": f.p_value, "p_adjusted": f.p_adjusted, "effect_size": f.effect_size, "message": f.message,
            "recommendation": f.advice} for f in self.findings], columns=DIAGNOSTIC_COLUMNS)

    def description(self) -> str:
        """One readable line: the fixes, or that nothing is missing."""
        if not self.warnings:
            return ("No missing driver: the KPI's residual shows no trend, seasonality or strong autocorrelation "
                    "that the DAG leaves unexplained.")
        return "Missing driver: " + "; ".join(f"{f.message}: {f.advice}" for f in self.warnings)


def _residual(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return y - x @ beta


def _spanned(z: np.ndarray, x: np.ndarray) -> bool:
    """Whether the parents' columns already span the candidate terms (the DAG explains them)."""
    rest = _residual(z, x)
    return float((rest**2).sum()) <= 1e-8 * float(((z - z.mean(axis=0)) ** 2).sum())


@dataclass(frozen=True)
class DriverInDag:
    """A driver the DAG already has in some form: what it is, and what to try when the residual
    still shows the pattern."""

    form: str
    fix: str


def driver_in_dag(driver: Driver, g: nx.DiGraph, kpi: str, parents: tuple[str, ...]) -> DriverInDag | None:
    """Whether `driver` (trend or seasonality) is a node of the DAG over model columns, and if so why
    it does not span the pattern: no edge into the KPI, a provided column, or too few Fourier terms.
    None when the DAG does not have it (then the fix is to add it)."""
    name = driver.value
    columns = [c for c in g.nodes if c == name or (driver is Driver.SEASONALITY and c.startswith(f"{name}_"))]
    if not columns:
        return None
    if not any(c in parents for c in columns):
        return DriverInDag(f"{name} is a control with no edge into {kpi}",
                           f"add the edge [{name}, {kpi}] to the graph.")
    if driver is Driver.TREND:
        return DriverInDag("trend is a control (a provided `trend` column, not the generated linear trend)",
                           "its form does not fit the drift: rename the provided column (e.g. `trend_index`, kept as "
                           "a control if it matters) so that `trend` is generated as a linear time index, or add the "
                           "slow-moving cause of the drift (distribution, prices) as a control.")
    if name in columns:
        return DriverInDag("seasonality is a control (the provided `seasonality` column)",
                           "its form does not fit the KPI's yearly pattern: provide a column that follows it, or "
                           "rename the provided column (e.g. `season_index`, kept as a control if it matters) so that "
                           "`seasonality` is generated as Fourier terms (features.fourier_order).")
    order = sum(1 for c in columns if c.startswith(f"{name}_sin"))
    return DriverInDag(f"seasonality is a control ({order} Fourier harmonic{'s' if order != 1 else ''})",
                       "its form does not fit the KPI's yearly pattern: use more Fourier terms "
                       f"(features.fourier_order: {order + 1} or more), or provide a `seasonality` column that "
                       "follows the pattern.")


def _filtered_f(y: np.ndarray, x: np.ndarray, full: np.ndarray, phi: np.ndarray) -> float:
    """F statistic of the columns `full` adds to `x`, on columns filtered by the AR coefficients `phi`."""
    f_y = ar_filter(y, phi)
    rss_full = float((_residual(f_y, ar_filter(full, phi)) ** 2).sum())
    rss_restricted = float((_residual(f_y, ar_filter(x, phi)) ** 2).sum())
    q, df = full.shape[1] - x.shape[1], len(f_y) - full.shape[1]
    if df <= 0 or rss_full <= 0:
        return float("nan")
    return max(0.0, rss_restricted - rss_full) / q / (rss_full / df)


def added_terms_test(y: np.ndarray, x: np.ndarray, z: np.ndarray, settings: DiagnosticSettings,
                     rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """F statistic and p-value of the terms `z` added to the regression of `y` on `x`, on columns
    prewhitened by a Yule–Walker AR(`ar_order`) fit to the full regression's residual; also the
    coefficients of `z` (unfiltered fit), for the effect's size.

    With ~150 weeks an estimated AR filter leaves the F test too liberal against slow regressors
    (Fourier terms above all). The p-value therefore comes from a parametric bootstrap under the
    null: AR paths with the (bias-corrected) AR fit of the full residual and its resampled
    innovations go through the same filter-and-test, and the observed q·F is read against a scaled
    chi-squared with the draws' mean and variance (never narrower than χ²(q))."""
    from scipy import stats
    full = np.hstack([x, z])
    beta, *_ = np.linalg.lstsq(full, y, rcond=None)
    order = min(settings.ar_order, len(y) // 4)
    phi = yule_walker(y - full @ beta, order)
    f_stat = _filtered_f(y, x, full, phi)
    q = z.shape[1]
    if not np.isfinite(f_stat):
        return f_stat, 1.0, beta[x.shape[1]:]
    mean, var = float(q), 2.0 * q
    if order and settings.null_draws:
        # The errors' AR law comes from the full regression's residual, which estimates it under the
        # null and the alternative alike (a missed trend would pass for a unit root in the other).
        residual = y - full @ beta
        phi0 = bias_corrected_ar(residual, full, order, settings.bias_correction_draws, rng, min_order=order)
        innovations = ar_filter(residual - residual.mean(), phi0)
        burn = 50
        # F is invariant to x·β, so the null paths need no fitted values.
        paths = simulate_ar(phi0, rng.choice(innovations - innovations.mean(), size=(settings.null_draws,
                                                                                      burn + len(y))), burn)
        basis, _ = np.linalg.qr(full)
        residuals = paths - (paths @ basis) @ basis.T
        phis = yule_walker_rows(residuals - residuals.mean(axis=1, keepdims=True), order)
        null = q * np.array([_filtered_f(path, x, full, phi_b) for path, phi_b in zip(paths, phis)])
        null = null[np.isfinite(null)]
        if len(null) > 1:
            mean, var = max(float(null.mean()), mean), max(float(null.var()), var)
    scale, nu = var / (2.0 * mean), 2.0 * mean**2 / var
    return f_stat, float(stats.chi2.sf(q * f_stat / scale, nu)), beta[x.shape[1]:]


def _lag1(v: np.ndarray) -> float:
    c = v - v.mean()
    denominator = float(c @ c)
    return float(c[1:] @ c[:-1]) / denominator if denominator > 0 else 0.0


@numeric_step()
def diagnose_missing_drivers(features: pd.DataFrame, g: nx.DiGraph, kpi: str,
                             settings: DiagnosticSettings) -> MissingDriverReport:
    """Trend, seasonality and strong autocorrelation in the KPI's residual given all its parents.

    Parameters
    ----------
    features
        The model table: one column per model node (transformed media, controls, Fourier terms),
        weeks as rows in calendar order, and the KPI.
    g
        The DAG over model columns (the expanded graph); the KPI's parents that are columns of
        `features` are the regressors (latent parents are not).
    kpi
        The KPI column.
    settings
        Levels, thresholds and the seed of the AR bias correction.
    """
    parents = tuple(p for p in sorted(g.predecessors(kpi)) if p in features.columns)
    n = len(features)
    y = features[kpi].to_numpy(dtype=float)
    x = np.column_stack([np.ones(n), features[list(parents)].to_numpy(dtype=float)])
    if n < MIN_WEEKS or not np.isfinite(x).all() or not np.isfinite(y).all():
        reason = (f"only {n} weeks (at least {MIN_WEEKS} are needed)" if n < MIN_WEEKS
                  else "missing values in the KPI or its parents")
        untested = MissingDriverCase.UNTESTED
        return MissingDriverReport(tuple(DriverFinding(d, untested, untested.render(reason=reason)) for d in Driver),
                                   parents, n)
    rng = np.random.default_rng(settings.seed)
    mean = abs(float(y.mean())) or 1.0
    candidates = {Driver.TREND: linear_trend(n)[:, None],
                  Driver.SEASONALITY: fourier_terms(n, settings.fourier_order)}
    # Terms the parents already span are dropped (a first Fourier harmonic in the DAG leaves the
    # second to test); a candidate they span entirely is explained.
    candidates = {d: z[:, [j for j in range(z.shape[1]) if not _spanned(z[:, [j]], x)]] for d, z in candidates.items()}
    to_test = {d: z for d, z in candidates.items() if z.shape[1] > 0 and not _spanned(z, x)}
    found: dict[Driver, DriverFinding] = {}
    for driver, z in candidates.items():
        if driver not in to_test:
            case = MissingDriverCase.EXPLAINED
            found[driver] = DriverFinding(driver, case, case.render(driver=driver.value))
            continue
        f_stat, p, coefficients = added_terms_test(y, x, z, settings, rng)
        p_adjusted = min(1.0, p * len(to_test))
        if driver is Driver.TREND:
            size = float(coefficients[0])  # the trend runs from 0 to 1 over the weeks
        else:
            size = float(np.ptp(z @ coefficients)) / 2.0
        present = driver_in_dag(driver, g, kpi, parents)
        advice = ""
        if p_adjusted < settings.alpha and present is not None:
            case = MissingDriverCase[f"{driver.name}_FORM"]
            message = case.render(size=size, share=size / mean, p=p_adjusted, weeks=n, form=present.form)
            advice = present.fix
        elif p_adjusted < settings.alpha:
            case = MissingDriverCase[driver.name]
            message = case.render(size=size, share=size / mean, p=p_adjusted, weeks=n)
        else:
            case = MissingDriverCase.ABSENT
            message = case.render(driver=driver.value, detail=f"adjusted p = {p_adjusted:.2g}")
        found[driver] = DriverFinding(driver, case, message, f_stat, p, p_adjusted, size, advice)
    flagged = [candidates[d] for d, f in found.items() if f.warns]
    rho = _lag1(_residual(y, np.hstack([x, *flagged])))
    if rho > settings.max_autocorrelation:
        case = MissingDriverCase.AUTOCORRELATION
        message = case.render(rho=rho, threshold=settings.max_autocorrelation)
    else:
        case = MissingDriverCase.ABSENT
        message = case.render(driver="strong autocorrelation",
                              detail=f"lag-1 autocorrelation {rho:.2f} <= {settings.max_autocorrelation:.2f}")
    found[Driver.AUTOCORRELATION] = DriverFinding(Driver.AUTOCORRELATION, case, message, rho, effect_size=rho)
    return MissingDriverReport(tuple(found[d] for d in Driver), parents, n)

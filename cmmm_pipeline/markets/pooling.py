"""Pooling per-market ROIs and marginal ROIs across markets: random-effects meta-analysis.

Each market's run publishes its own estimate of a channel's ROI (and mROI) with a 95% block-bootstrap
interval. Across markets the question is twofold: what is the channel's ROI in a typical market (the
mean of the market-level causal ROIs, mu) and how much does it vary between markets (tau, the standard
deviation of those ROIs)? The random-effects model answers both:

    y_i = theta_i + e_i,   e_i ~ N(0, v_i)       market i's estimate around its own causal ROI theta_i
    theta_i ~ N(mu, tau^2)                        the markets' ROIs around their mean

with v_i the market's sampling variance, taken from its interval as ((high - low) / (2 z))^2 (the
interval is a percentile interval of the bootstrap, so this is the bootstrap's standard error when the
draws are near normal). The between-market variance tau^2 is estimated by REML (default), Paule-Mandel
or DerSimonian-Laird; the interval for mu is Hartung-Knapp-Sidik-Jonkman (a t interval on k - 1 degrees
of freedom with the weighted residual scale), which stays near its level with 5-20 markets (0.90-0.96 in
the benchmark) where the normal (Wald) interval falls to 0.85. Heterogeneity: Cochran's Q with its
chi-squared p-value and Higgins-Thompson I^2 = max(0, (Q - (k - 1)) / Q), the share of the spread that is
not sampling noise. The prediction interval is where a new market's ROI should lie, from three markets on:
with tau_hat plugged in, Higgins, Thompson & Spiegelhalter's (2009) mu_hat +/- t_{k-2} sqrt(tau_hat^2 +
se(mu_hat)^2); by default averaged over tau like the shrunken estimates below.

Partially pooled (shrunken) market estimates are the empirical-Bayes best linear unbiased predictions:

    theta_i_hat = mu_hat + lambda_i (y_i - mu_hat),   lambda_i = tau^2 / (tau^2 + v_i)

a noisy market (large v_i) is pulled further toward the mean. Given tau, their variance counts the
market's own noise and the uncertainty of mu_hat (Raudenbush & Bryk 2002; metafor's `blup`):
lambda_i v_i + (1 - lambda_i)^2 var(mu_hat). Plugging tau_hat in (TauUncertainty.PLUG_IN, t quantile on
k - 1 degrees of freedom) under-covers: with 5-20 markets tau_hat is often 0 when the true tau is moderate,
and every market is then pulled onto the mean. By default (TauUncertainty.INTEGRATED) the shrunken
estimates, their intervals and the prediction interval average over tau instead, weighted by the restricted
likelihood with a flat prior on tau (the hierarchical normal model of Gelman et al., Bayesian Data
Analysis, ch. 5.4); `benchmarks/market_pooling.py` prints the coverage of both (docs/markets.md).

Domain code: no dagster; the summary asset calls `pool_markets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from cmmm_pipeline.core.errors import DataError, format_rows


class Metric(Enum):
    """The per-market numbers that are pooled: ROI against zero spend and the marginal ROI."""

    ROI = "roi"
    MROI = "mroi"


class TauEstimator(Enum):
    """Estimator of the between-market variance tau^2."""

    REML = "reml"
    PAULE_MANDEL = "paule_mandel"
    DERSIMONIAN_LAIRD = "dersimonian_laird"


class MeanInterval(Enum):
    """Interval for the pooled mean."""

    HKSJ = "hksj"
    """Hartung-Knapp-Sidik-Jonkman: t on k - 1 df with the weighted residual scale."""
    HKSJ_FLOOR = "hksj_floor"
    """HKSJ whose scale is never below 1 (Knapp & Hartung's ad hoc rule): never narrower than WALD_T."""
    WALD = "wald"
    """Normal quantile with var(mu_hat) = 1 / sum(w): the classic interval, too narrow for few markets."""
    TAU_INTEGRATED = "tau_integrated"
    """Averaged over tau like the shrunken intervals under TauUncertainty.INTEGRATED."""


class TauUncertainty(Enum):
    """How the shrunken and prediction intervals treat the estimate of tau."""

    PLUG_IN = "plug_in"
    """tau_hat as if known (metafor's `blup`, Higgins-Thompson-Spiegelhalter's prediction interval)."""
    INTEGRATED = "integrated"
    """Averaged over tau, weighted by the restricted likelihood with a flat prior on tau (Gelman et al.,
    Bayesian Data Analysis, ch. 5.4): a small tau_hat no longer pulls every market onto the mean."""


@dataclass(frozen=True)
class PoolingSettings:
    """How markets are pooled. `level` is the level of the markets' intervals and of the pooled ones."""

    level: float = 0.95
    estimator: TauEstimator = TauEstimator.REML
    interval: MeanInterval = MeanInterval.HKSJ
    uncertainty: TauUncertainty = TauUncertainty.INTEGRATED

    def __post_init__(self) -> None:
        if not (isinstance(self.level, float | int) and 0.5 <= float(self.level) < 1.0):
            raise ValueError(f"level must be in [0.5, 1), got {self.level!r}")
        if not (isinstance(self.estimator, TauEstimator) and isinstance(self.interval, MeanInterval)
                and isinstance(self.uncertainty, TauUncertainty)):
            raise TypeError("estimator, interval and uncertainty must be TauEstimator, MeanInterval, TauUncertainty")


@dataclass(frozen=True)
class MetaAnalysis:
    """A random-effects meta-analysis of k estimates (one per market), in their input order."""

    k: int
    mean: float
    mean_se: float
    """Standard error of the pooled mean that its interval uses (HKSJ's, unless WALD)."""
    ci_low: float
    ci_high: float
    tau2: float
    q: float
    q_p_value: float
    i2: float
    prediction_low: float
    """NaN below three markets: the prediction interval needs k - 2 >= 1 degrees of freedom."""
    prediction_high: float
    weights: tuple[float, ...]
    """Each market's share of the pooled mean: (1 / (v_i + tau^2)) normalised to sum to 1."""
    shrunken: tuple[float, ...]
    shrunken_se: tuple[float, ...]
    shrunken_ci_low: tuple[float, ...]
    shrunken_ci_high: tuple[float, ...]
    shrinkage: tuple[float, ...]
    """1 - lambda_i: how far each market's estimate is pulled toward the mean (0 = not at all, 1 = onto it);
    averaged over tau under TauUncertainty.INTEGRATED."""

    @property
    def tau(self) -> float:
        return math.sqrt(self.tau2)


@dataclass(frozen=True)
class MarketPooling:
    """The two tables of a pooling: one row per channel, effect and metric, and one per market as well."""

    pooled: pd.DataFrame
    shrunken: pd.DataFrame
    settings: PoolingSettings


POOLED_COLUMNS = ["channel", "effect", "metric", "k_markets", "withheld_markets", "pooled", "std_error", "ci_low",
                  "ci_high", "tau", "tau2", "i2", "q", "q_p_value", "prediction_low", "prediction_high",
                  "estimator", "interval_method", "reason"]
SHRUNKEN_COLUMNS = ["market", "channel", "effect", "metric", "estimate", "std_error", "ci_low", "ci_high", "shrunken",
                    "shrunken_std_error", "shrunken_ci_low", "shrunken_ci_high", "weight", "shrinkage"]
KEY_COLUMNS = ("market", "channel", "effect")
MIN_MARKETS = 2
MIN_MARKETS_PREDICTION = 3


# --- the estimators: small functions of (y, v) ----------------------------------------------------------

def _fixed_mean(y: np.ndarray, w: np.ndarray) -> float:
    return float(np.dot(w, y) / w.sum())


def cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Cochran's Q: the inverse-variance weighted squared deviations around the fixed-effect mean."""
    w = 1.0 / v
    return float(np.dot(w, (y - _fixed_mean(y, w)) ** 2))


def tau2_dersimonian_laird(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird's moment estimator, truncated at 0."""
    w = 1.0 / v
    c = w.sum() - np.dot(w, w) / w.sum()
    return max(0.0, (cochran_q(y, v) - (y.size - 1)) / c) if c > 0 else 0.0


def _generalised_q(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + tau2)
    return float(np.dot(w, (y - _fixed_mean(y, w)) ** 2))


def _upper_bracket(score, start: float) -> float:  # type: ignore[no-untyped-def]
    """A tau^2 at which `score` (decreasing in tau^2 past its root) is negative."""
    upper = max(start, 1e-12)
    for _ in range(200):
        if score(upper) < 0:
            return upper
        upper *= 4.0
    raise ArithmeticError("no upper bracket for tau^2")


def tau2_paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    """Paule-Mandel: the tau^2 at which the generalised Q equals its expectation k - 1 (0 if Q(0) <= k - 1).
    Q(tau^2) is strictly decreasing, so a bracketing root finder always converges."""
    from scipy import optimize

    df = y.size - 1

    def score(t: float) -> float:
        return _generalised_q(t, y, v) - df

    if score(0.0) <= 0:
        return 0.0
    upper = _upper_bracket(score, float(np.var(y, ddof=1)))
    return float(optimize.brentq(score, 0.0, upper, xtol=1e-14, rtol=1e-12))


def _reml_score(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """d/d(tau^2) of the restricted log-likelihood, times 2."""
    w = 1.0 / (v + tau2)
    mu = _fixed_mean(y, w)
    return float(np.dot(w * w, (y - mu) ** 2) - w.sum() + np.dot(w, w) / w.sum())


def _reml_loglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / (v + tau2)
    mu = _fixed_mean(y, w)
    return float(-0.5 * (np.log(v + tau2).sum() + math.log(w.sum()) + np.dot(w, (y - mu) ** 2)))


def tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """Restricted maximum likelihood: the root of the REML score on tau^2 >= 0 (0 when the score is not
    positive there). Of several roots, the one with the highest restricted likelihood."""
    from scipy import optimize

    def score(t: float) -> float:
        return _reml_score(t, y, v)

    upper = _upper_bracket(score, 4.0 * float(np.var(y, ddof=1)) + float(v.max()))
    grid = np.concatenate([[0.0], np.geomspace(max(upper, 1e-12) * 1e-8, upper, 60)])
    w = 1.0 / (v[None, :] + grid[:, None])  # the score on the whole grid at once: (grid, k)
    mu = (w * y).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
    values = (w * w * (y - mu) ** 2).sum(axis=1) - w.sum(axis=1) + (w * w).sum(axis=1) / w.sum(axis=1)
    candidates = [0.0]
    for a, b, fa, fb in zip(grid[:-1], grid[1:], values[:-1], values[1:], strict=True):
        if fa > 0 >= fb:
            candidates.append(float(optimize.brentq(score, a, b, xtol=1e-14, rtol=1e-12)))
    return max(candidates, key=lambda t: _reml_loglik(t, y, v))


TAU_GRID = 121
"""Points of the grid over tau on which TauUncertainty.INTEGRATED averages."""
BISECTIONS = 12
"""Halvings of a mixture quantile's bracket before Newton's steps polish it."""
NEWTON_STEPS = 3
"""Newton steps on the mixture's distribution function after the bisection: each roughly squares the error."""
TAU_GRID_SPAN = 3.0
"""The grid runs from 0 to TAU_GRID_SPAN x (range of the estimates + largest standard error)."""


@dataclass(frozen=True)
class _TauMixture:
    tau: np.ndarray
    p: np.ndarray
    """Posterior weight of each tau (flat prior on tau, restricted likelihood), summing to 1."""
    mu: np.ndarray
    var_mu: np.ndarray


def _tau_mixture(y: np.ndarray, v: np.ndarray) -> _TauMixture:
    """The restricted likelihood of tau on a grid, normalised: p(tau | y) with flat priors on mu and tau.
    Its tail falls as tau^-(k-1), so the grid's bound matters at k = 2-3 (the benchmark shows how much)."""
    upper = TAU_GRID_SPAN * (float(y.max() - y.min()) + float(np.sqrt(v.max())))
    tau = np.linspace(0.0, upper, TAU_GRID)
    w = 1.0 / (v[None, :] + tau[:, None] ** 2)  # (grid, k)
    total = w.sum(axis=1)
    mu = (w * y).sum(axis=1) / total
    loglik = -0.5 * (np.log(v[None, :] + tau[:, None] ** 2).sum(axis=1) + np.log(total)
                     + (w * (y[None, :] - mu[:, None]) ** 2).sum(axis=1))
    p = np.exp(loglik - loglik.max())
    p[[0, -1]] *= 0.5  # trapezoid weights on the uniform grid
    return _TauMixture(tau=tau, p=p / p.sum(), mu=mu, var_mu=1.0 / total)


def _mixture_interval(centre: np.ndarray, spread: np.ndarray, p: np.ndarray,
                      level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of each row's mixture of normals N(centre[r, j], spread[r, j]^2) with weights p[j],
    by bisection on the mixture's distribution function (all rows and both tails at once)."""
    from scipy import special

    alpha = (1 - level) / 2
    z = float(-special.ndtri(alpha / 4))
    keep = p > 1e-12 * p.max()  # grid points without weight change nothing but the cost
    centre, spread, p = centre[:, keep], spread[:, keep], p[keep] / p[keep].sum()
    centre2, spread2 = np.vstack([centre, centre]), np.vstack([spread, spread])
    target = np.repeat([alpha, 1 - alpha], centre.shape[0])
    low = (centre2 - z * spread2).min(axis=1)
    high = (centre2 + z * spread2).max(axis=1)
    for _ in range(BISECTIONS):
        mid = 0.5 * (low + high)
        below = special.ndtr((mid[:, None] - centre2) / spread2) @ p < target
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    x = 0.5 * (low + high)
    for _ in range(NEWTON_STEPS):  # the distribution function is smooth: Newton, kept inside the bracket
        u = (x[:, None] - centre2) / spread2
        density = (np.exp(-0.5 * u * u) / (np.sqrt(2 * np.pi) * spread2)) @ p
        x = np.clip(x - (special.ndtr(u) @ p - target) / np.maximum(density, 1e-300), low, high)
    return x[: centre.shape[0]], x[centre.shape[0]:]


def _t_quantile(level: float, df: int) -> float:
    """The two-sided critical value of Student's t (scipy.special: microseconds, not scipy.stats' overhead)."""
    from scipy import special

    return float(special.stdtrit(df, 1 - (1 - level) / 2))


_TAU2 = {TauEstimator.REML: tau2_reml, TauEstimator.PAULE_MANDEL: tau2_paule_mandel,
         TauEstimator.DERSIMONIAN_LAIRD: tau2_dersimonian_laird}


def random_effects(estimates: np.ndarray, std_errors: np.ndarray, level: float = 0.95,
                   estimator: TauEstimator = TauEstimator.REML,
                   interval: MeanInterval = MeanInterval.HKSJ,
                   uncertainty: TauUncertainty = TauUncertainty.INTEGRATED) -> MetaAnalysis:
    """Random-effects meta-analysis of k >= 2 estimates with known standard errors (all finite, se > 0).

    Returns the pooled mean with its interval, tau^2, Q, I^2, the prediction interval for a new market and
    the shrunken (BLUP) estimate of every input with its interval."""
    from scipy import special

    y = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    k = y.size
    if k < MIN_MARKETS or se.shape != y.shape:
        raise ValueError(f"random_effects needs at least {MIN_MARKETS} estimates with one standard error each")
    if not (np.isfinite(y).all() and np.isfinite(se).all() and (se > 0).all()):
        raise ValueError("estimates and standard errors must be finite, standard errors positive")
    v = se * se
    df = k - 1
    tau2 = _TAU2[estimator](y, v)
    w = 1.0 / (v + tau2)
    mean = _fixed_mean(y, w)
    var_wald = 1.0 / w.sum()
    mixture = _tau_mixture(y, v) if (uncertainty is TauUncertainty.INTEGRATED
                                      or interval is MeanInterval.TAU_INTEGRATED) else None
    if interval is MeanInterval.WALD or interval is MeanInterval.TAU_INTEGRATED:
        var_mean, crit = var_wald, float(-special.ndtri((1 - level) / 2))
    else:
        scale = float(np.dot(w, (y - mean) ** 2)) / df
        if interval is MeanInterval.HKSJ_FLOOR:
            scale = max(scale, 1.0)
        var_mean, crit = scale * var_wald, _t_quantile(level, df)
    mean_se = math.sqrt(var_mean)
    mean_ci = (mean - crit * mean_se, mean + crit * mean_se)
    if interval is MeanInterval.TAU_INTEGRATED:
        assert mixture is not None
        low, high = _mixture_interval(mixture.mu[None, :], np.sqrt(mixture.var_mu)[None, :], mixture.p, level)
        mean_ci = (float(low[0]), float(high[0]))
    q = cochran_q(y, v)
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    if k >= MIN_MARKETS_PREDICTION:
        half = _t_quantile(level, k - 2) * math.sqrt(tau2 + var_mean)
        prediction = (mean - half, mean + half)
    else:
        prediction = (math.nan, math.nan)
    lam = tau2 / (tau2 + v)
    if mixture is not None and uncertainty is TauUncertainty.INTEGRATED:
        if k >= MIN_MARKETS_PREDICTION:
            low, high = _mixture_interval(mixture.mu[None, :], np.sqrt(mixture.var_mu + mixture.tau ** 2)[None, :],
                                          mixture.p, level)
            prediction = (float(low[0]), float(high[0]))
        lam_j = mixture.tau[None, :] ** 2 / (mixture.tau[None, :] ** 2 + v[:, None])  # (k, grid)
        centre = mixture.mu[None, :] + lam_j * (y[:, None] - mixture.mu[None, :])
        spread = np.sqrt(lam_j * v[:, None] + (1.0 - lam_j) ** 2 * mixture.var_mu[None, :])
        shrunken = centre @ mixture.p
        shrunken_se = np.sqrt((spread ** 2 + centre ** 2) @ mixture.p - shrunken ** 2)
        shrunken_low, shrunken_high = _mixture_interval(centre, spread, mixture.p, level)
        pull = (1.0 - lam_j) @ mixture.p
    else:
        shrunken = mean + lam * (y - mean)
        shrunken_se = np.sqrt(lam * v + (1.0 - lam) ** 2 * var_mean)
        crit_shrunken = _t_quantile(level, df)
        shrunken_low, shrunken_high = shrunken - crit_shrunken * shrunken_se, shrunken + crit_shrunken * shrunken_se
        pull = 1.0 - lam
    return MetaAnalysis(
        k=k, mean=mean, mean_se=mean_se, ci_low=mean_ci[0], ci_high=mean_ci[1],
        tau2=tau2, q=q, q_p_value=float(special.chdtrc(df, q)), i2=i2,
        prediction_low=prediction[0], prediction_high=prediction[1],
        weights=tuple(float(x) for x in w / w.sum()), shrunken=tuple(float(x) for x in shrunken),
        shrunken_se=tuple(float(x) for x in shrunken_se),
        shrunken_ci_low=tuple(float(x) for x in shrunken_low),
        shrunken_ci_high=tuple(float(x) for x in shrunken_high),
        shrinkage=tuple(float(x) for x in pull))


def standard_error_from_interval(low: np.ndarray | float, high: np.ndarray | float,
                                 level: float = 0.95) -> np.ndarray:
    """The standard error a symmetric normal interval of this width and level has: (high - low) / (2 z)."""
    from scipy import stats

    z = float(stats.norm.isf((1 - level) / 2))
    return (np.asarray(high, dtype=float) - np.asarray(low, dtype=float)) / (2.0 * z)


# --- the table layer: per-market estimates.csv rows in, pooled and shrunken tables out ---------------

def _metric_columns(metric: Metric) -> tuple[str, str, str]:
    return metric.value, f"{metric.value}_ci_low", f"{metric.value}_ci_high"


def _row_names(frame: pd.DataFrame, mask: pd.Series) -> list[str]:
    return [f"{m}/{c}/{e}" for m, c, e in frame.loc[mask, list(KEY_COLUMNS)].itertuples(index=False)]


PLACE = "per-market estimates"


def _withheld(frame: pd.DataFrame) -> pd.Series:
    if "withheld_reason" not in frame.columns:
        return pd.Series(False, index=frame.index)
    reason = frame["withheld_reason"]
    return reason.notna() & (reason.astype(str).str.strip() != "")


def check_market_estimates(estimates: pd.DataFrame) -> pd.DataFrame:
    """The input as numbers, or a DataError naming the rule, the column and the rows (market/channel/effect).

    Refused: a required column missing (`pooling-columns`), a row without a market, channel or effect
    (`pooling-missing-key`), a market/channel/effect twice (`pooling-duplicate-rows`), a value that is not a
    number or is infinite (`pooling-not-a-number`), an estimate without its interval or an interval without
    its estimate on a row that is not withheld (`pooling-incomplete-interval`), an interval whose high end
    is not above its low end (`pooling-interval-width`). A withheld row (a `withheld_reason`, or no
    numbers at all for a metric) is not an error: it is left out and counted."""
    required = [*KEY_COLUMNS, *(c for m in Metric for c in _metric_columns(m))]
    missing = [c for c in required if c not in estimates.columns]
    if missing:
        raise DataError("pooling-columns", PLACE, f"the columns {', '.join(missing)} are missing; pooling reads "
                        f"{', '.join(required)} (and withheld_reason when present).",
                        "pass the markets' estimates.csv rows stacked with a `market` column.")
    frame = estimates.reset_index(drop=True).copy()
    for column in KEY_COLUMNS:
        blank = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if blank.any():
            raise DataError("pooling-missing-key", f"{PLACE}, column {column}",
                            f"{int(blank.sum())} rows have no {column} (row numbers "
                            f"{format_rows(list(frame.index[blank]))}).",
                            f"give every row its {column}.")
        frame[column] = frame[column].astype(str).str.strip()
    duplicated = frame.duplicated(list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        raise DataError("pooling-duplicate-rows", f"{PLACE}, columns market/channel/effect",
                        f"rows appear more than once: {format_rows(sorted(set(_row_names(frame, duplicated))))}.",
                        "keep one row per market, channel and effect (one published run per market).")
    for metric in Metric:
        for column in _metric_columns(metric):
            raw = frame[column]
            numbers = pd.to_numeric(raw, errors="coerce")
            bad = (numbers.isna() & raw.notna() & (raw.astype(str).str.strip() != "")) | np.isinf(numbers)
            if bad.any():
                raise DataError("pooling-not-a-number", f"{PLACE}, column {column}",
                                f"values that are not finite numbers in rows {format_rows(_row_names(frame, bad))}.",
                                "export the estimates as numbers; leave a withheld value empty.")
            frame[column] = numbers.astype(float)
    withheld = _withheld(frame)
    for metric in Metric:
        estimate, low, high = _metric_columns(metric)
        present = frame[[estimate, low, high]].notna()
        partial = ~withheld & present.any(axis=1) & ~present.all(axis=1)
        if partial.any():
            raise DataError("pooling-incomplete-interval", f"{PLACE}, columns {estimate}/{low}/{high}",
                            f"an estimate without its interval (or the reverse) in rows "
                            f"{format_rows(_row_names(frame, partial))}.",
                            "publish each market's interval with its estimate, or withhold the row with a reason.")
        narrow = ~withheld & present.all(axis=1) & ~(frame[high] > frame[low])
        if narrow.any():
            raise DataError("pooling-interval-width", f"{PLACE}, columns {low}/{high}",
                            f"the interval's high end is not above its low end in rows "
                            f"{format_rows(_row_names(frame, narrow))}: no standard error follows from it.",
                            "re-run those markets (an interval of zero width means the bootstrap did not vary).")
    return frame


def _skipped(channel: str, effect: str, metric: Metric, k: int, withheld: int, settings: PoolingSettings,
             reason: str) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(POOLED_COLUMNS, math.nan)
    row.update(channel=channel, effect=effect, metric=metric.value, k_markets=k, withheld_markets=withheld,
               estimator=settings.estimator.value, interval_method=settings.interval.value, reason=reason)
    return row


def pool_markets(estimates: pd.DataFrame, settings: PoolingSettings | None = None) -> MarketPooling:
    """Pool every channel and effect's ROI and mROI across markets.

    `estimates`: the markets' estimates.csv rows stacked, with a `market` column. Per channel, effect and
    metric, the rows with an estimate and its interval are pooled; withheld rows (a `withheld_reason`, or
    no numbers for the metric) are left out and counted in `withheld_markets`. With fewer than two
    markets the pooled row has no numbers and says why in `reason`; with two, no prediction interval.
    Malformed input raises a DataError (see `check_market_estimates`)."""
    settings = settings or PoolingSettings()
    frame = check_market_estimates(estimates)
    withheld = _withheld(frame)
    pooled_rows: list[dict[str, object]] = []
    shrunken_rows: list[dict[str, object]] = []
    for (channel, effect), group in frame.groupby(["channel", "effect"], sort=True):
        group_withheld = withheld.loc[group.index]
        for metric in Metric:
            estimate, low, high = _metric_columns(metric)
            usable = group[~group_withheld & group[[estimate, low, high]].notna().all(axis=1)]
            k, n_withheld = len(usable), len(group) - len(usable)
            if k < MIN_MARKETS:
                pooled_rows.append(_skipped(channel, effect, metric, k, n_withheld, settings,
                                            f"{k} market{'s' if k != 1 else ''} with numbers; pooling needs at "
                                            f"least {MIN_MARKETS}"))
                continue
            se = standard_error_from_interval(usable[low], usable[high], settings.level)
            result = random_effects(usable[estimate].to_numpy(), se, settings.level, settings.estimator,
                                    settings.interval, settings.uncertainty)
            notes = [f"{n_withheld} withheld" if n_withheld else "",
                     "prediction interval needs at least 3 markets" if k < MIN_MARKETS_PREDICTION else ""]
            pooled_rows.append({
                "channel": channel, "effect": effect, "metric": metric.value, "k_markets": k,
                "withheld_markets": n_withheld, "pooled": result.mean, "std_error": result.mean_se,
                "ci_low": result.ci_low, "ci_high": result.ci_high, "tau": result.tau, "tau2": result.tau2,
                "i2": result.i2, "q": result.q, "q_p_value": result.q_p_value,
                "prediction_low": result.prediction_low, "prediction_high": result.prediction_high,
                "estimator": settings.estimator.value, "interval_method": settings.interval.value,
                "reason": "; ".join(n for n in notes if n)})
            for i, row in enumerate(usable.itertuples(index=False)):
                shrunken_rows.append({
                    "market": getattr(row, "market"), "channel": channel, "effect": effect, "metric": metric.value,
                    "estimate": getattr(row, estimate), "std_error": float(se[i]), "ci_low": getattr(row, low),
                    "ci_high": getattr(row, high), "shrunken": result.shrunken[i],
                    "shrunken_std_error": result.shrunken_se[i], "shrunken_ci_low": result.shrunken_ci_low[i],
                    "shrunken_ci_high": result.shrunken_ci_high[i], "weight": result.weights[i],
                    "shrinkage": result.shrinkage[i]})
    pooled = pd.DataFrame(pooled_rows, columns=POOLED_COLUMNS)
    pooled["reason"] = pooled["reason"].fillna("").astype(str)
    shrunken = pd.DataFrame(shrunken_rows, columns=SHRUNKEN_COLUMNS)
    return MarketPooling(pooled=pooled.reset_index(drop=True), shrunken=shrunken.reset_index(drop=True),
                         settings=settings)


def _number(value: object, spec: str = ".3f") -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def pooled_markdown(pooled: pd.DataFrame) -> str:
    """The pooled table as Markdown for the asset's metadata and the report: one line per channel, effect and
    metric with the pooled value and its interval, tau, I^2 and the prediction interval, or the reason."""
    lines = ["| channel | effect | metric | markets | pooled | 95% interval | tau | I² | new market | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in pooled.to_dict("records"):
        interval = f"[{_number(r['ci_low'])}, {_number(r['ci_high'])}]" if not pd.isna(r["pooled"]) else ""
        prediction = (f"[{_number(r['prediction_low'])}, {_number(r['prediction_high'])}]"
                      if not pd.isna(r["prediction_low"]) else "")
        markets = f"{int(r['k_markets'])}" + (f" (+{int(r['withheld_markets'])} withheld)"
                                               if r["withheld_markets"] else "")
        i2 = "" if pd.isna(r["i2"]) else f"{100 * r['i2']:.0f}%"
        lines.append(f"| {r['channel']} | {r['effect']} | {r['metric']} | {markets} | {_number(r['pooled'])} | "
                     f"{interval} | {_number(r['tau'])} | {i2} | {prediction} | {r['reason']} |")
    return "\n".join(lines)

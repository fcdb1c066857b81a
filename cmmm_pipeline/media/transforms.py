"""MMM media transforms as small pure functions: carryover (adstock), diminishing returns
(saturation), seasonality and trend features.

Every function is vectorised over time, maps zero spend to zero response, and takes its
parameters explicitly so that the same code serves estimation, simulation and the bootstrap.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def geometric_adstock(spend: npt.ArrayLike, decay: float) -> FloatArray:
    """Carryover a_t = x_t + decay * a_{t-1}: a week's spend keeps acting, fading geometrically.

    Works along the first axis, so a (weeks, k) matrix transforms k series at once.
    """
    from scipy.signal import lfilter
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"geometric adstock decay must be in [0, 1), got {decay}")
    x = np.asarray(spend, dtype=float)
    return lfilter([1.0], [1.0, -decay], x, axis=0)


def weibull_adstock(spend: npt.ArrayLike, shape: float, scale: float, max_lag: int = 12) -> FloatArray:
    """Carryover with Weibull-survival lag weights exp(-(l/scale)^shape): largest at lag 0 and
    never rising, like geometric, but with a tail that fades faster (shape > 1) or slower (< 1)."""
    from scipy.signal import lfilter
    if shape <= 0 or scale <= 0 or max_lag < 1:
        raise ValueError("weibull adstock needs shape > 0, scale > 0 and max_lag >= 1")
    lags = np.arange(max_lag + 1, dtype=float)
    weights = np.exp(-((lags / scale) ** shape))
    x = np.asarray(spend, dtype=float)
    return lfilter(weights, [1.0], x, axis=0)


def weibull_pdf_weights(shape: float, scale: float, max_lag: int) -> FloatArray:
    """Lag weights of a delayed-peak carryover: the Weibull(shape, scale) probability of each week
    [l, l + 1), so a campaign can act most two or three weeks after it airs (shape > 1)."""
    if shape <= 0 or scale <= 0 or max_lag < 1:
        raise ValueError("weibull_pdf adstock needs shape > 0, scale > 0 and max_lag >= 1")
    edges = np.arange(max_lag + 2, dtype=float)
    survival = np.exp(-((edges / scale) ** shape))
    weights = survival[:-1] - survival[1:]
    return weights / weights.sum()


def weibull_pdf_adstock(spend: npt.ArrayLike, shape: float, scale: float, max_lag: int = 12) -> FloatArray:
    """Carryover with `weibull_pdf_weights`: unlike geometric or Weibull-survival weights, its
    peak may come after the week of spend (at lag ≈ scale·((shape−1)/shape)^(1/shape) − ½)."""
    from scipy.signal import lfilter
    x = np.asarray(spend, dtype=float)
    return lfilter(weibull_pdf_weights(shape, scale, max_lag), [1.0], x, axis=0)


def hill_saturation(x: npt.ArrayLike, half_saturation: float, slope: float) -> FloatArray:
    """Hill curve x^s / (x^s + K^s): 0 at 0, 1/2 at K, bounded by 1, increasing."""
    if half_saturation <= 0 or slope <= 0:
        raise ValueError("hill saturation needs half_saturation > 0 and slope > 0")
    z = np.clip(np.asarray(x, dtype=float), 0.0, None)
    zs = z**slope
    return zs / (zs + half_saturation**slope)


def fourier_terms(n_weeks: int, order: int, period: float = 52.1775) -> FloatArray:
    """Columns sin(2πkt/P), cos(2πkt/P) for k = 1..order: yearly seasonality for weekly data."""
    t = np.arange(n_weeks, dtype=float)
    k = np.arange(1, order + 1, dtype=float)
    angles = 2.0 * np.pi * np.outer(t, k) / period
    out = np.empty((n_weeks, 2 * order))
    out[:, 0::2] = np.sin(angles)
    out[:, 1::2] = np.cos(angles)
    return out


def linear_trend(n_weeks: int) -> FloatArray:
    """Trend scaled to [0, 1] over the modelled weeks."""
    if n_weeks <= 1:
        return np.zeros(n_weeks)
    return np.arange(n_weeks, dtype=float) / (n_weeks - 1)

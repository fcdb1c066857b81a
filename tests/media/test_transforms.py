"""Invariants of the media transforms: zero in → zero out, monotone, bounded, vectorised = loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmmm_pipeline.media.transforms import (
    fourier_terms,
    geometric_adstock,
    hill_saturation,
    linear_trend,
    weibull_adstock,
    weibull_pdf_adstock,
    weibull_pdf_weights,
)

ADSTOCKS = {
    "geometric": lambda x: geometric_adstock(x, 0.5),
    "weibull": lambda x: weibull_adstock(x, 1.5, 2.0, 8),
    "weibull_pdf": lambda x: weibull_pdf_adstock(x, 3.0, 4.0, 8),
}

spend_arrays = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


def _adstock_loop(x: list[float], decay: float) -> list[float]:
    out, carry = [], 0.0
    for v in x:
        carry = v + decay * carry
        out.append(carry)
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(spend_arrays, st.floats(min_value=0, max_value=0.95))
def test_geometric_adstock_equals_the_recursive_loop(x: list[float], decay: float) -> None:
    np.testing.assert_allclose(geometric_adstock(x, decay), _adstock_loop(x, decay), rtol=1e-9, atol=1e-6)


def test_adstock_zero_in_zero_out_and_carryover_mass() -> None:
    assert np.all(geometric_adstock(np.zeros(10), 0.7) == 0)
    pulse = np.zeros(200)
    pulse[0] = 1.0
    # A unit of spend acts 1 / (1 - decay) units in total over time.
    assert geometric_adstock(pulse, 0.6).sum() == pytest.approx(1 / 0.4, rel=1e-9)
    assert np.all(weibull_adstock(np.zeros(10), 1.5, 2.0) == 0)


def test_adstock_is_vectorised_over_columns() -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 10.0, size=(30, 3))
    stacked = geometric_adstock(x, 0.4)
    for j in range(3):
        np.testing.assert_allclose(stacked[:, j], geometric_adstock(x[:, j], 0.4))


def test_weibull_survival_adstock_is_largest_at_lag_zero() -> None:
    pulse = np.zeros(12)
    pulse[0] = 1.0
    response = weibull_adstock(pulse, shape=3.0, scale=3.0, max_lag=11)
    assert response[0] == pytest.approx(1.0)
    assert response[1] > 0.9 * response[0]  # slow decay at first, unlike geometric
    assert np.all(np.diff(response) <= 1e-12)  # but it never rises: no delayed peak


@pytest.mark.parametrize(("shape", "scale", "peak"), [(2.0, 3.5, 2), (4.0, 3.5, 3), (4.0, 5.0, 4), (1.0, 2.0, 0)])
def test_weibull_pdf_adstock_peaks_where_its_mode_says(shape: float, scale: float, peak: int) -> None:
    weights = weibull_pdf_weights(shape, scale, 12)
    assert weights.sum() == pytest.approx(1.0)
    assert int(np.argmax(weights)) == peak
    pulse = np.zeros(14)
    pulse[0] = 1.0
    np.testing.assert_allclose(weibull_pdf_adstock(pulse, shape, scale, 12)[:13], weights)


@pytest.mark.parametrize("name", sorted(ADSTOCKS))
def test_every_adstock_maps_zero_to_zero_is_linear_and_vectorised(name: str) -> None:
    adstock = ADSTOCKS[name]
    assert np.all(adstock(np.zeros(10)) == 0)
    rng = np.random.default_rng(5)
    x, z = rng.gamma(2.0, 10.0, size=(40, 3)), rng.gamma(2.0, 10.0, size=(40, 3))
    np.testing.assert_allclose(adstock(x + 2 * z), adstock(x) + 2 * adstock(z), rtol=1e-10)
    for j in range(3):
        np.testing.assert_allclose(adstock(x)[:, j], adstock(x[:, j]))
    assert np.all(adstock(x) >= 0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(spend_arrays, st.floats(min_value=0.1, max_value=5), st.floats(min_value=0.3, max_value=4))
def test_hill_is_bounded_and_monotone(x: list[float], k: float, slope: float) -> None:
    values = np.sort(np.asarray(x))
    y = hill_saturation(values, k, slope)
    assert np.all((y >= 0) & (y <= 1))
    assert np.all(np.diff(y) >= -1e-12)


def test_hill_anchor_points() -> None:
    assert hill_saturation([0.0], 1.0, 2.0)[0] == 0.0
    assert hill_saturation([2.5], 2.5, 1.7)[0] == pytest.approx(0.5)
    assert hill_saturation([1e9], 1.0, 1.0)[0] == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("call", [lambda: geometric_adstock([1.0], 1.0), lambda: geometric_adstock([1.0], -0.1),
                                  lambda: hill_saturation([1.0], 0.0, 1.0), lambda: weibull_adstock([1.0], 0, 1),
                                  lambda: weibull_pdf_adstock([1.0], 2.0, 0.0)])
def test_invalid_parameters_are_refused(call) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        call()


def test_fourier_and_trend_features() -> None:
    terms = fourier_terms(104, 2)
    assert terms.shape == (104, 4)
    # A full year of sin/cos terms averages to ~0 and has unit amplitude.
    assert np.abs(terms[:52].mean(axis=0)).max() < 0.05
    assert terms.max() == pytest.approx(1.0, abs=1e-2)
    trend = linear_trend(5)
    np.testing.assert_allclose(trend, [0, 0.25, 0.5, 0.75, 1.0])

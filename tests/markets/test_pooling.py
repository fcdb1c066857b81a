"""Pooling across markets: a published meta-analysis reproduced, the model's invariants, the table layer's
withheld and skipped rows, its refusals, and a seeded coverage check on simulated markets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.errors import DataError
from cmmm_pipeline.markets.pooling import (
    MeanInterval,
    Metric,
    PoolingSettings,
    TauEstimator,
    TauUncertainty,
    pool_markets,
    random_effects,
    standard_error_from_interval,
    tau2_paule_mandel,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "sample_estimates.csv"

# BCG vaccine trials (Colditz et al. 1994; metafor's dat.bcg): tpos, tneg, cpos, cneg of the 13 trials.
BCG = np.array([[4, 119, 11, 128], [6, 300, 29, 274], [3, 228, 11, 209], [62, 13536, 248, 12619],
                [33, 5036, 47, 5761], [180, 1361, 372, 1079], [8, 2537, 10, 619], [505, 87886, 499, 87892],
                [29, 7470, 45, 7232], [17, 1699, 65, 1600], [186, 50448, 141, 27197], [5, 2493, 3, 2338],
                [27, 16886, 29, 17825]], dtype=float)


def bcg_log_risk_ratios() -> tuple[np.ndarray, np.ndarray]:
    """metafor's escalc(measure="RR"): log risk ratios and their sampling variances."""
    a, b, c, d = BCG.T
    return np.log(a / (a + b)) - np.log(c / (c + d)), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def test_bcg_reproduces_metafor() -> None:
    """Published numbers for the BCG data, log risk ratios:
    - metafor `rma(yi, vi, data=dat, method="REML")` prints tau^2 = 0.3132 and tau = 0.5597 (as shown in the
      RoBMA vignette "Bayesian Meta-Analysis", which prints metafor's output beside its own);
    - metafor's test file tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r (checked against Stata's
      metan): DL estimate -0.7141 with 95% interval [-1.0644, -0.3638], and Q = 152.2330 (df 12)."""
    y, v = bcg_log_risk_ratios()
    reml = random_effects(y, np.sqrt(v), estimator=TauEstimator.REML, interval=MeanInterval.WALD)
    assert reml.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert reml.tau == pytest.approx(0.5597, abs=5e-5)
    dl = random_effects(y, np.sqrt(v), estimator=TauEstimator.DERSIMONIAN_LAIRD, interval=MeanInterval.WALD)
    assert dl.mean == pytest.approx(-0.7141, abs=5e-5)
    assert (dl.ci_low, dl.ci_high) == pytest.approx((-1.0644, -0.3638), abs=5e-5)
    assert dl.q == pytest.approx(152.2330, abs=5e-4)
    assert dl.i2 == pytest.approx((152.2330 - 12) / 152.2330, abs=1e-5)
    assert dl.q_p_value < 1e-20
    # HKSJ: a t(12) interval with the weighted residual scale, wider than the normal one here.
    hksj = random_effects(y, np.sqrt(v), estimator=TauEstimator.REML, interval=MeanInterval.HKSJ)
    assert hksj.mean == pytest.approx(reml.mean)
    assert hksj.ci_high - hksj.ci_low > reml.ci_high - reml.ci_low


def test_paule_mandel_matches_statsmodels() -> None:
    from statsmodels.stats.meta_analysis import combine_effects

    y, v = bcg_log_risk_ratios()
    reference = combine_effects(y, v, method_re="iterated", atol=1e-12, maxiter=500)
    assert tau2_paule_mandel(y, v) == pytest.approx(reference.tau2, rel=1e-6)
    ours = random_effects(y, np.sqrt(v), estimator=TauEstimator.PAULE_MANDEL, interval=MeanInterval.HKSJ)
    assert ours.mean == pytest.approx(reference.mean_effect_re, rel=1e-6)
    assert ours.mean_se == pytest.approx(reference.sd_eff_w_re_hksj, rel=1e-5)


def test_homogeneous_markets_have_no_heterogeneity() -> None:
    se = np.array([0.1, 0.2, 0.15, 0.3, 0.25])
    same = random_effects(np.full(5, 1.7), se)
    assert same.tau2 == 0.0 and same.i2 == 0.0 and same.q == pytest.approx(0.0, abs=1e-12)
    assert same.mean == pytest.approx(1.7)
    # scatter smaller than the sampling noise: Q < k - 1, so I^2 and tau^2 are 0 and Q's p-value is large
    close = random_effects(1.7 + 0.2 * se * np.array([1, -1, 0.5, -0.5, 0]), se)
    assert close.i2 == 0.0 and close.tau2 == 0.0 and close.q_p_value > 0.9


@pytest.mark.parametrize("uncertainty", list(TauUncertainty))
def test_shrinkage_toward_the_mean_grows_with_the_standard_error(uncertainty: TauUncertainty) -> None:
    # markets 0 and 1 lie equally far above the mean, markets 2 and 3 equally far below; 1 and 3 are noisier
    y = np.array([2.0, 2.0, 1.0, 1.0, 1.5, 1.5, 2.4, 0.6])
    se = np.array([0.05, 0.4, 0.05, 0.4, 0.1, 0.1, 0.1, 0.1])
    r = random_effects(y, se, uncertainty=uncertainty)
    shrunken = np.array(r.shrunken)
    assert r.tau2 > 0
    assert r.shrinkage[1] > r.shrinkage[0] and r.shrinkage[3] > r.shrinkage[2]
    assert abs(shrunken[1] - r.mean) < abs(shrunken[0] - r.mean)
    assert abs(shrunken[3] - r.mean) < abs(shrunken[2] - r.mean)
    # a precise market keeps almost its own estimate; a noisy one borrows precision from the others
    assert shrunken[0] == pytest.approx(2.0, abs=0.02)
    assert r.shrunken_se[1] < 0.9 * se[1] and r.shrunken_se[3] < 0.9 * se[3]


def test_mixture_quantiles_are_exact_for_known_mixtures() -> None:
    from cmmm_pipeline.markets.pooling import _mixture_interval

    low, high = _mixture_interval(np.array([[0.0], [2.0]]), np.array([[1.0], [0.5]]), np.array([1.0]), 0.95)
    assert low == pytest.approx([-1.959964, 2.0 - 0.5 * 1.959964], abs=1e-6)
    assert high == pytest.approx([1.959964, 2.0 + 0.5 * 1.959964], abs=1e-6)
    # an equal mixture of N(-1, 1) and N(1, 1): its 2.5% quantile x solves (Phi(x + 1) + Phi(x - 1)) / 2 = 0.025
    from scipy import special

    low, high = _mixture_interval(np.array([[-1.0, 1.0]]), np.ones((1, 2)), np.array([0.5, 0.5]), 0.95)
    assert (special.ndtr(low[0] + 1) + special.ndtr(low[0] - 1)) / 2 == pytest.approx(0.025, abs=1e-9)
    assert high[0] == pytest.approx(-low[0], abs=1e-9)


def test_standard_error_from_a_95_interval() -> None:
    assert standard_error_from_interval(-1.959964, 1.959964) == pytest.approx(1.0, rel=1e-6)
    assert standard_error_from_interval(0.0, 2 * 1.644854, level=0.90) == pytest.approx(1.0, rel=1e-6)


def markets(rows: list[tuple]) -> pd.DataFrame:
    """market, channel, effect, roi, its interval, mroi, its interval, withheld_reason."""
    return pd.DataFrame(rows, columns=["market", "channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "mroi",
                                       "mroi_ci_low", "mroi_ci_high", "withheld_reason"])


def test_golden_estimates_of_three_markets_pool_to_their_centre() -> None:
    """Three markets with the sample's published rows, shifted by -0.1, 0 and +0.1: equal standard errors,
    so the pooled ROI is the middle market's and the shrunken ones lie between."""
    golden = pd.read_csv(GOLDEN)
    frames = []
    for name, shift in (("north", -0.1), ("centre", 0.0), ("south", 0.1)):
        frame = golden.copy()
        for column in ("roi", "roi_ci_low", "roi_ci_high"):
            frame[column] = frame[column] + shift
        frames.append(frame.assign(market=name))
    result = pool_markets(pd.concat(frames, ignore_index=True))
    pooled = result.pooled.set_index(["channel", "effect", "metric"])
    assert len(pooled) == 12 and set(pooled["k_markets"]) == {3}
    for (channel, effect), row in golden.set_index(["channel", "effect"]).iterrows():
        assert pooled.loc[(channel, effect, "roi"), "pooled"] == pytest.approx(row["roi"], abs=1e-9)
        assert pooled.loc[(channel, effect, "mroi"), "pooled"] == pytest.approx(row["mroi"], abs=1e-9)
        assert pooled.loc[(channel, effect, "mroi"), "i2"] == 0.0
    tv = result.shrunken[(result.shrunken["channel"] == "tv") & (result.shrunken["effect"] == "total")
                         & (result.shrunken["metric"] == Metric.ROI.value)].set_index("market")
    assert tv.loc["north", "estimate"] < tv.loc["north", "shrunken"] < tv.loc["centre", "shrunken"]
    assert tv["weight"].sum() == pytest.approx(1.0)


def test_withheld_rows_are_left_out_and_counted_and_one_market_is_skipped_with_its_reason() -> None:
    rows = [(m, "tv", "total", 1.0 + d, 0.8 + d, 1.2 + d, 0.6 + d, 0.5 + d, 0.7 + d, None)
            for m, d in (("a", 0.0), ("b", 0.1), ("c", -0.05), ("d", 0.2))]
    rows.append(("e", "tv", "total", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, "overlap: too few weeks"))
    rows.append(("f", "tv", "total", 9.0, 8.0, 10.0, 5.0, 4.0, 6.0, "identification failed"))  # numbers, but withheld
    rows.append(("a", "radio", "total", 2.0, 1.5, 2.5, 1.0, 0.8, 1.2, None))
    rows.append(("b", "radio", "total", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, "withheld"))
    result = pool_markets(markets(rows))
    pooled = result.pooled.set_index(["channel", "metric"])
    assert pooled.loc[("tv", "roi"), "k_markets"] == 4 and pooled.loc[("tv", "roi"), "withheld_markets"] == 2
    assert pooled.loc[("tv", "roi"), "pooled"] < 1.3  # market f's 9.0 is not in it
    assert set(result.shrunken.loc[result.shrunken["channel"] == "tv", "market"]) == {"a", "b", "c", "d"}
    radio = pooled.loc[("radio", "roi")]
    assert radio["k_markets"] == 1 and radio["withheld_markets"] == 1 and np.isnan(radio["pooled"])
    assert radio["reason"] == "1 market with numbers; pooling needs at least 2"
    assert "radio" not in set(result.shrunken["channel"])


def test_two_markets_pool_without_a_prediction_interval() -> None:
    rows = [("a", "tv", "total", 1.0, 0.8, 1.2, 0.6, 0.5, 0.7, ""),
            ("b", "tv", "total", 1.4, 1.2, 1.6, 0.7, 0.6, 0.8, "")]
    row = pool_markets(markets(rows)).pooled.iloc[0]
    assert row["k_markets"] == 2 and row["ci_low"] < 1.2 < row["ci_high"]
    assert np.isnan(row["prediction_low"]) and "prediction interval needs at least 3 markets" in row["reason"]


@pytest.mark.parametrize(("change", "rule", "named"), [
    (lambda f: f.drop(columns=["mroi_ci_high"]), "pooling-columns", "mroi_ci_high"),
    (lambda f: f.assign(roi_ci_high=f["roi_ci_low"].where(f["market"] != "b", f["roi_ci_high"])),
     "pooling-interval-width", "a/tv/total"),
    (lambda f: f.assign(mroi_ci_low=f["mroi_ci_low"].where(f["market"] != "b", np.nan)),
     "pooling-incomplete-interval", "b/tv/total"),
    (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "pooling-duplicate-rows", "a/tv/total"),
    (lambda f: f.astype({"roi": object}).assign(roi=["1.2", "n/a"]), "pooling-not-a-number", "b/tv/total"),
    (lambda f: f.assign(market=["a", None]), "pooling-missing-key", "market"),
])
def test_malformed_input_is_refused_with_its_rule(change, rule: str, named: str) -> None:  # noqa: ANN001
    rows = [("a", "tv", "total", 1.0, 0.8, 1.2, 0.6, 0.5, 0.7, ""),
            ("b", "tv", "total", 1.4, 1.2, 1.6, 0.7, 0.6, 0.8, "")]
    with pytest.raises(DataError) as raised:
        pool_markets(change(markets(rows)))
    assert raised.value.rule == rule and named in str(raised.value)


def test_settings_refuse_an_impossible_level() -> None:
    with pytest.raises(ValueError, match="level"):
        PoolingSettings(level=1.0)


def test_seeded_coverage_of_the_pooled_mean_and_the_shrunken_markets() -> None:
    """200 replications of 10 markets (true ROIs ~ N(1.5, 0.3^2), se 0.2): both 95% intervals cover their
    truth in 0.90-0.99 of cases (binomial sd at 200 replications: 0.015)."""
    rng = np.random.default_rng(20261206)
    mean_hits, market_hits = 0, []
    for _ in range(200):
        se = np.full(10, 0.2)
        theta = rng.normal(1.5, 0.3, 10)
        r = random_effects(rng.normal(theta, se), se)
        mean_hits += r.ci_low <= 1.5 <= r.ci_high
        market_hits.append(np.mean((np.array(r.shrunken_ci_low) <= theta) & (theta <= np.array(r.shrunken_ci_high))))
    assert 0.90 <= mean_hits / 200 <= 0.99
    assert 0.90 <= float(np.mean(market_hits)) <= 0.99


def test_pooled_markdown_shows_numbers_and_reasons() -> None:
    from cmmm_pipeline.markets.pooling import pooled_markdown

    rows = [(m, "tv", "total", 1.0 + d, 0.8 + d, 1.2 + d, 0.6, 0.5, 0.7, "")
            for m, d in (("a", 0.0), ("b", 0.2), ("c", 0.4))]
    rows.append(("a", "radio", "total", 2.0, 1.5, 2.5, 1.0, 0.8, 1.2, ""))
    text = pooled_markdown(pool_markets(markets(rows)).pooled)
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    tv_roi = next(line for line in lines if line.startswith("| tv | total | roi |"))
    assert "| 3 | 1.200 |" in tv_roi and "[" in tv_roi
    radio = next(line for line in lines if line.startswith("| radio | total | roi |"))
    assert "1 market with numbers; pooling needs at least 2" in radio

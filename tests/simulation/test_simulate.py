"""The simulator's truth is what an intervention on its own equations gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.media.transforms import geometric_adstock
from cmmm_pipeline.simulation.simulate import SAMPLE_SEED, Scenario, simulate, transformed, write_sample

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = simulate(seed=11), simulate(seed=11), simulate(seed=12)
    pd.testing.assert_frame_equal(a.data, b.data)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.allclose(a.data["sales"], c.data["sales"])


def test_truth_of_a_channel_without_mediators_matches_the_direct_formula() -> None:
    # Email touches nothing but sales: switching it off removes exactly beta * transformed(email).
    scenario = Scenario()
    result = simulate(scenario, seed=5)
    ch = scenario.channels["email"]
    spend = result.data[ch.spend_column].to_numpy()
    x = transformed(spend, ch, geometric_adstock(spend, ch.decay).mean())
    truth = result.truth.set_index(["channel", "effect"]).loc[("email", "total")]
    assert truth["incremental_kpi"] == pytest.approx(ch.beta * x.sum(), rel=1e-9)
    assert truth["roi"] == pytest.approx(ch.beta * x.sum() / spend.sum(), rel=1e-9)


def test_tv_total_splits_into_direct_and_indirect_through_search() -> None:
    result = simulate(seed=5)
    t = result.truth.set_index(["channel", "effect"])["incremental_kpi"]
    assert t[("tv", "total")] == pytest.approx(t[("tv", "direct")] + t[("tv", "indirect")])
    assert t[("tv", "indirect")] > 0.1 * t[("tv", "total")]  # the halo is material
    # Without mediation TV's total effect is its direct effect.
    flat = simulate(Scenario(mediation=0.0), seed=5).truth.set_index(["channel", "effect"])["incremental_kpi"]
    assert flat[("tv", "indirect")] == pytest.approx(0.0, abs=1e-6)


def test_zero_beta_channel_has_zero_truth() -> None:
    result = simulate(Scenario().with_beta("email", 0.0), seed=2)
    assert result.truth.set_index(["channel", "effect"]).loc[("email", "total"), "roi"] == pytest.approx(0.0, abs=1e-9)


def test_contributions_sum_to_the_total_truth() -> None:
    result = simulate(seed=4)
    totals = result.truth[result.truth["effect"] == "total"].set_index("channel")["incremental_kpi"]
    for channel, value in totals.items():
        assert result.contributions[channel].sum() == pytest.approx(value)


def test_bundled_sample_is_the_simulator_output(tmp_path: Path) -> None:
    write_sample(str(tmp_path))
    for name in ("weekly.csv", "truth.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLE / name).read_bytes(), name
    data = pd.read_csv(SAMPLE / "weekly.csv")
    assert len(data) == 156 and SAMPLE_SEED == 7


def test_the_sample_config_states_the_simulators_true_transforms() -> None:
    # Tests that need "the true transforms" read them from the sample config: keep the two in step.
    from cmmm_pipeline.core.loading import load_config

    config = load_config(SAMPLE / "config.yaml")
    for name, truth in Scenario().channels.items():
        channel = config.channel(name)
        assert channel.spend_column == truth.spend_column
        assert (channel.adstock.decay, channel.saturation.half_saturation, channel.saturation.slope) == \
            (truth.decay, truth.half_saturation, truth.slope), name

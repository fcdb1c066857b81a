"""The external family (benchmarks/external/simmmulator.py): its truth follows the simulator's own
equations and ROI, and the world is written as a user would. Needs the `bench` extra."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pysimmmulator")

from benchmarks.external import simmmulator as sm  # noqa: E402


def test_the_truth_is_the_simulators_roi_plus_one_and_search_is_null() -> None:
    world = sm.generate(1)
    truth = world.truth.set_index("channel")
    assert list(truth.index) == ["search", "amazon", "tv", "long_form_video"]
    # Its ROI is net of spend over every day; ours gross over the full weeks kept: within 0.5%.
    for channel in ("amazon", "tv", "long_form_video"):
        assert truth.loc[channel, "roi"] == pytest.approx(truth.loc[channel, "simulator_roi_plus_1"], rel=5e-3)
    assert truth.loc["search", "roi"] == 0.0 and truth.loc["search", "null"]  # click-priced: no conversions
    # The S-curve times impressions is convex over most of the range: the marginal ROI exceeds the ROI.
    assert (truth.loc[["amazon", "tv", "long_form_video"], "mroi"] > truth.loc[["amazon", "tv", "long_form_video"],
                                                                               "roi"]).all()
    assert len(world.data) == 156 and world.data["week"].is_unique
    assert set(world.data.columns) == {"week", "search_spend", "amazon_spend", "tv_spend", "long_form_video_spend",
                                       "revenue"}


def test_the_oracle_recovers_the_truth_from_the_true_response() -> None:
    world = sm.generate(2)
    orc = sm.oracle(world)
    truth = world.truth.set_index("channel")
    for channel in ("amazon", "tv", "long_form_video"):
        for what in ("roi", "mroi"):
            low, high = orc.loc[channel, ("low", what)], orc.loc[channel, ("high", what)]
            assert low <= truth.loc[channel, what] <= high
    assert orc.loc["search", ("est", "roi")] == 0.0
    assert np.isfinite(orc.to_numpy(dtype=float)).all()

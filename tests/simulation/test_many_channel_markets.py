"""The many-channel markets world of `benchmarks/markets_scaling.py`: what it adds to each market's
KPI is exactly the effect its truth states, through the transform its config gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.markets_scaling import write_world
from benchmarks.refresh_speed import extra_channel_effect
from cmmm_pipeline.simulation.markets import write_markets


def test_added_channels_add_their_true_effect_through_the_configured_transform(tmp_path: Path) -> None:
    write_markets(tmp_path / "base", 2)
    write_world(tmp_path / "wide", 2, 7, fast=True)
    base, wide = pd.read_csv(tmp_path / "base" / "weekly.csv"), pd.read_csv(tmp_path / "wide" / "weekly.csv")
    truth = pd.read_csv(tmp_path / "wide" / "truth.csv")
    config = yaml.safe_load((tmp_path / "wide" / "config.yaml").read_text(encoding="utf-8"))
    added = ["ch00", "ch01", "ch02"]

    assert [c for c in config["channels"] if c not in ("tv", "search", "digital", "email")] == added
    assert all([name, "sales"] in config["graph"]["edges"] for name in added)
    assert config["estimation"]["bootstrap_samples"] == 50  # --fast survives the rewrite
    rows = truth[truth["channel"].isin(added)]
    assert len(rows) == 6 and (rows["effect"] == "total").all()

    for market, weeks in wide.groupby("market"):
        lift = weeks["sales"].to_numpy() - base.loc[base["market"] == market, "sales"].to_numpy()
        mine = rows[rows["market"] == market].set_index("channel")
        # Rounding the KPI to cents is the only difference between the lift and the stated effects.
        assert lift.sum() == pytest.approx(mine["incremental_kpi"].sum(), abs=0.01 * len(weeks))
        shapes = []
        for name in added:
            spend = weeks[f"{name}_spend"].to_numpy()
            assert mine.loc[name, "spend"] == pytest.approx(spend.sum())
            assert mine.loc[name, "roi"] == pytest.approx(mine.loc[name, "incremental_kpi"] / spend.sum())
            entry = config["channels"][name]
            shapes.append(extra_channel_effect(spend, {"decay": entry["adstock"]["decay"], **entry["saturation"]}, 1.0))
        # The lift is the config's transforms of the spend, each times its market's effect size, to the cent,
        # and those sizes times the transforms give the stated effects.
        shapes = np.column_stack(shapes)
        sizes, *_ = np.linalg.lstsq(shapes, lift, rcond=None)
        assert np.abs(lift - shapes @ sizes).max() < 0.01
        assert sizes * shapes.sum(axis=0) == pytest.approx(mine.loc[added, "incremental_kpi"].to_numpy(), rel=1e-4)
    # Each market its own effect size: the same channel's ROI differs between markets.
    assert not np.allclose(rows[rows["market"] == "m001"]["roi"].to_numpy(),
                           rows[rows["market"] == "m002"]["roi"].to_numpy())

"""Calibration of the hidden-confounder flag: how often robustness turns REVIEW because a confounder
as strong as the strongest observed one could remove significance.

    python benchmarks/sensitivity_calibration.py [--seeds 20] [--first-seed 100]

Two simulator families (the project's own, `cmmm_pipeline.simulation.simulate`, and the held-out
one, `benchmarks.heldout.worlds`), each in three settings:

- `correct`: the DAG is right (seasonality confounds TV and digital, nothing hidden);
- `hidden`: an unobserved demand driver as strong as the seasonality moves TV spend and the KPI;
- `hidden_null`: the same, with TV's true effect zero (the estimate is significant only through
  the hidden driver).

The regressions use the true transforms (the question is the sensitivity rule, not the transform
selection) and the HAC standard error. For TV's direct effect (adjusted for search, whose truth is
the channel's coefficient) it prints per setting: REVIEW rate of the benchmark rule (k = 1) and of
the former absolute rule (RV_α < 10%), the naive interval's coverage of the truth and the
bias-adjusted interval's coverage. For the other channels' total effects (correct worlds) it prints
the REVIEW rate of both rules. Last, TV in the hidden-confounder settings split by whether its true
effect would be significant at the estimate's standard error (|truth| >= 1.97 SE): the benchmark rule
can only flag the worlds where it would not. DoWhy's simulated confounder row is not run here (its verdict counts
only below the benchmark's strength; see docs/estimation.md).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from benchmarks.heldout.worlds import WORLDS, carry, season_curve, simulate_world  # noqa: E402
from cmmm_pipeline.core.config import EffectType  # noqa: E402
from cmmm_pipeline.effects import refutation as ref  # noqa: E402
from cmmm_pipeline.effects.estimation import EffectSpec  # noqa: E402
from cmmm_pipeline.simulation.simulate import Scenario, simulate  # noqa: E402

SETTINGS = ("correct", "hidden", "hidden_null")
OLD_RV_PASS = 0.10
"""The former rule: REVIEW when RV_α < 10% (an absolute partial R²)."""


def _fourier(n: int, period: float = 52.18) -> dict[str, np.ndarray]:
    t = np.arange(n)
    out = {}
    for k in (1, 2):
        out[f"seasonality_sin{k}"] = np.sin(2 * np.pi * k * t / period)
        out[f"seasonality_cos{k}"] = np.cos(2 * np.pi * k * t / period)
    return out


SEASON = ("seasonality_sin1", "seasonality_cos1", "seasonality_sin2", "seasonality_cos2")


def project_table(setting: str, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Model table (true transforms) of the project's simulator and each channel's true coefficient."""
    from cmmm_pipeline.media.transforms import geometric_adstock
    from cmmm_pipeline.simulation.simulate import transformed

    scenario = Scenario()
    if setting != "correct":
        scenario = replace(scenario, hidden_confounding=scenario.confounding)
    if setting == "hidden_null":
        scenario = scenario.with_beta("tv", 0.0)
    data = simulate(scenario, seed).data
    table = pd.DataFrame(_fourier(len(data)))
    table["trend"] = np.arange(len(data)) / len(data)
    table["price"] = data["price"].to_numpy()
    truth = {}
    for name, ch in scenario.channels.items():
        spend = data[ch.spend_column].to_numpy(dtype=float)
        table[name] = transformed(spend, ch, geometric_adstock(spend, ch.decay).mean())
        truth[name] = ch.beta
    table["sales"] = data["sales"].to_numpy()
    return table, truth


def heldout_table(setting: str, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    world = WORLDS["seed_graph"]
    if setting != "correct":
        world = replace(world, hidden_loading=world.channels["tv"].season_loading)
    if setting == "hidden_null":
        world = replace(world, channels={**world.channels, "tv": replace(world.channels["tv"], effect=0.0)})
    draw = simulate_world(world, seed)
    n = world.n_weeks
    table = pd.DataFrame(_fourier(n))
    table["trend"] = np.arange(n) / n
    truth = {}
    for name, ch in world.channels.items():
        table[name] = ch.response(carry(draw.data[f"{name}_spend"].to_numpy(dtype=float), ch.carryover))
        truth[name] = ch.effect
    table["sales"] = draw.data["sales"].to_numpy()
    assert len(season_curve(n)) == n
    return table, truth


def _row(table: pd.DataFrame, spec: EffectSpec, confounders: list[str]) -> dict[str, object]:
    thresholds = ref.RefutationThresholds()
    summary = ref.regression_summary(table, spec, "sales")
    benchmarks = ref.confounder_benchmarks(table, spec, "sales", summary, 1.0, ["seasonality"], confounders)
    row = ref.benchmark_confounder(spec, summary, thresholds, benchmarks)
    rv_alpha = ref.robustness_value(summary.estimate / summary.inference_se, summary.df, thresholds.significance)
    return {"review": row.status.value != "PASS", "old_review": rv_alpha < OLD_RV_PASS, "case": row.case.name,
            "estimate": summary.estimate, "se": summary.inference_se, "low": row.new_effect_low,
            "high": row.new_effect_high, "df": summary.df}


def study(family: str, seeds: range) -> pd.DataFrame:
    rows = []
    build = project_table if family == "project" else heldout_table
    for setting in SETTINGS:
        for seed in seeds:
            table, truth = build(setting, seed)
            channels = [c for c in truth if c in table.columns]
            controls = [*SEASON, "trend", *(["price"] if "price" in table.columns else [])]
            # TV's direct effect: adjusted for search and everything not caused by TV; truth = its coefficient.
            others = [c for c in channels if c != "tv"]
            tv = EffectSpec("tv", EffectType.DIRECT, tuple(controls + others), ("search",))
            r = _row(table, tv, list(SEASON))
            crit = 1.97
            r.update(family=family, setting=setting, seed=seed, channel="tv", truth=truth["tv"],
                     naive_covers=abs(r["estimate"] - truth["tv"]) <= crit * r["se"],
                     adjusted_covers=(r["low"] <= truth["tv"] <= r["high"]) if np.isfinite(r["low"]) else np.nan)
            rows.append(r)
            if setting != "correct":
                continue
            for c in others:  # total effects; search's total adjusts for TV (its confounder), not the reverse
                adj = tuple(controls + [o for o in channels if o not in (c, "search") or (c == "search" and o != c)])
                adj = tuple(a for a in adj if a != c)
                # The pipeline's benchmarks: observed controls among the channel's ancestors (seasonality for
                # digital and, through TV, for search), never another channel.
                conf = list(SEASON) if c in ("digital", "search") else []
                spec = EffectSpec(c, EffectType.TOTAL, adj, ())
                r = _row(table, spec, conf)
                r.update(family=family, setting=setting, seed=seed, channel=c, truth=truth[c],
                         naive_covers=np.nan, adjusted_covers=np.nan)
                rows.append(r)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=100)
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    frames = [study(family, seeds) for family in ("project", "heldout")]
    rows = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    print(f"seeds {seeds.start}..{seeds.stop - 1}; benchmark rule k = 1 (REVIEW when a confounder as strong as the "
          f"strongest observed one removes significance) vs the former RV_alpha < {OLD_RV_PASS:.0%} rule\n")
    print("Every world, TV's direct effect:")
    tv = rows[rows["channel"] == "tv"]
    print(tv[["family", "setting", "seed", "case", "old_review", "estimate", "low", "high", "truth"]]
          .to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    summary = (rows.groupby(["family", "setting", "channel"])
               .agg(worlds=("review", "size"), review=("review", "mean"), old_review=("old_review", "mean"),
                    naive_coverage=("naive_covers", "mean"), adjusted_coverage=("adjusted_covers", "mean"))
               .reset_index())
    print("\nSummary (review = share of worlds flagged REVIEW):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    # Why the hidden-confounder worlds are flagged when they are: with a hidden confounder exactly as
    # strong as the benchmark, the bias-adjusted estimate is about the truth, so the rule flags a world
    # when the true effect itself would not be significant at the estimate's standard error.
    tv = tv.assign(truth_significant=np.abs(tv["truth"]) >= 1.97 * tv["se"])
    split = (tv[tv["setting"] != "correct"].groupby(["family", "setting", "truth_significant"])
             .agg(worlds=("review", "size"), review=("review", "mean")).reset_index())
    print("\nTV with a hidden confounder, by whether its true effect would be significant at the estimate's SE:")
    print(split.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()

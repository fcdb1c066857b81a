"""Effects by year, quarter, campaign and condition, and declared synergies, against known truth.

Worlds:
- `null` (the project simulator's default scenario): TV's spring campaign, the price terciles of TV's
  effect (no modification in truth) and the declared pair TV × digital (no synergy in truth).
- `synergy`: digital and email paused in 30% of weeks, the KPI gains γ·x_digital·x_email (about a
  quarter of email's effect); the pair is declared.
- `modification`: TV's effect per unit of media falls with the price (× 1 + m·(price − 10)/0.4, m = −0.5).
- `heldout`: the held-out family's seed graph (benchmarks/heldout/worlds.py: Weibull-PDF carryover,
  Hill on currency, search linear in TV's carryover; two years), every transform selected from the
  data as a new user would leave it; a TV campaign and the pair digital × email, which that
  additive simulator cannot make interact (truth 0).

Every estimate is computed as the robustness step computes it (estimation, the block bootstrap with
re-selection, `effects_by_period`, `synergies_table`); refuters and the null test are left out (they do
not touch these numbers). Truths are by intervention with every noise term held fixed. Prints every
world it ran, then per world family: coverage (share of 95% intervals holding the truth) and median
relative error of yearly, quarterly and campaign truths; coverage of 0 for null synergies; power
(p < 0.05) and coverage for the real synergy; effect modification's null coverage, false rejections and
power.

    nice .venv/bin/python -m benchmarks.effects_by_period --seeds 2 --samples 200
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cmmm_pipeline.core.config import EffectType, PipelineConfig
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import parse_config
from cmmm_pipeline.data.ingest import spend_totals
from cmmm_pipeline.effects.bootstrap import BootstrapSettings, bootstrap, effect_problem, intervals
from cmmm_pipeline.effects.estimation import estimate_channels
from cmmm_pipeline.effects.periods import effects_by_period
from cmmm_pipeline.effects.robustness import in_table_order, published_gcomputation
from cmmm_pipeline.effects.synergies import synergies_table
from cmmm_pipeline.media.features import build_features
from cmmm_pipeline.media.selection import SelectionSettings, channel_candidates, select_transforms
from cmmm_pipeline.simulation.simulate import Scenario, campaign_truth, simulate, synergy_truth, weekly_truth

SAMPLE = Path(__file__).resolve().parents[1] / "cmmm_pipeline" / "sample" / "config.yaml"
SPRING = {"name": "spring", "channel": "tv", "start": "2024-03-04", "end": "2024-05-27"}
HELDOUT_CAMPAIGN = {"name": "spring", "channel": "tv", "start": "2022-03-07", "end": "2022-05-30"}
GAMMA = 350.0
MODIFICATION = -0.5


def _estimate(raw: pd.DataFrame, config: PipelineConfig, samples: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(whole-history intervals table, effects_by_period, synergies) as the robustness step computes them."""
    selection = SelectionSettings.from_config(config.estimation)
    chosen = select_transforms(raw, config, selection)
    features = build_features(raw, config, chosen.transforms)
    est = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    specs = in_table_order(est.table, est.specs)
    candidates = {c.name: channel_candidates(c, selection.grid) for c in config.channels}
    problem = effect_problem(raw, config, candidates, chosen.selected_index, specs, spend_totals(raw, config),
                             published_gcomputation(est.table, features, est.expanded, specs, config))
    settings = BootstrapSettings(samples=samples, level=config.estimation.ci_level)
    draws = bootstrap(problem, settings, selection, np.random.default_rng(seed))
    estimated = est.table[np.isfinite(est.table["ate"].to_numpy(dtype=float))]
    points = {(r.channel, EffectType(r.effect)): float(r.incremental_kpi) for r in estimated.itertuples(index=False)}
    whole = pd.DataFrame([{"channel": i.channel, "effect": i.effect.value, "incremental_kpi": i.incremental_kpi}
                          for i in intervals(problem, draws, points, settings)])
    periods = effects_by_period(problem, draws, est.table, features, raw, settings, config.campaigns,
                                config.effect_modifiers)
    totals = {r.channel: float(r.incremental_kpi) for r in estimated.itertuples(index=False) if r.effect == "total"}
    synergies = synergies_table(problem, draws, est.expanded, specs, config.interactions, config.kpi, settings,
                                config.checks.overlap_min_residual_share, totals)
    return whole, periods, synergies


def _sample_config(pairs: list[list[str]], modifiers: dict[str, list[str]], campaigns: list[dict]) -> PipelineConfig:
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    raw["experiments"] = []
    raw["campaigns"] = campaigns
    raw["effect_modifiers"] = modifiers
    raw["graph"]["interactions"] = pairs
    return parse_config(raw, SAMPLE)


def _period_truths(weekly: pd.DataFrame) -> dict[tuple[str, str, str, str], float]:
    weekly = weekly.assign(year=weekly["week"].dt.year.astype(str),
                           quarter=weekly["week"].dt.year.astype(str) + "-Q" + weekly["week"].dt.quarter.astype(str))
    out = {}
    for kind in ("year", "quarter"):
        for (c, e, p), v in weekly.groupby(["channel", "effect", kind])["weekly"].sum().items():
            out[(c, e, kind, p)] = float(v)
    return out


def _score_periods(world: str, seed: int, periods: pd.DataFrame, truths: dict) -> list[dict]:
    rows = []
    for r in periods.itertuples(index=False):
        truth = truths.get((r.channel, r.effect, r.period_type, r.period))
        if truth is None:
            continue
        rows.append({"world": world, "seed": seed, "kind": r.period_type, "channel": r.channel, "effect": r.effect,
                     "period": r.period, "truth": truth, "estimate": r.incremental_kpi,
                     "covered": bool(r.incremental_ci_low <= truth <= r.incremental_ci_high),
                     "rel_error": abs(r.incremental_kpi - truth) / abs(truth) if truth else np.nan,
                     "p_value": r.p_value})
    return rows


def project_world(kind: str, seed: int, samples: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(period rows, synergy rows, condition rows) of one world of the project simulator."""
    if kind == "null":
        scenario, pair = Scenario(), ["tv", "digital"]
    elif kind == "synergy":
        scenario, pair = replace(Scenario(dark_weeks=0.3), synergy=("digital", "email", GAMMA)), ["digital", "email"]
    else:
        scenario, pair = replace(Scenario(), modification=MODIFICATION), ["tv", "digital"]
    config = _sample_config([pair], {"tv": ["price"]}, [SPRING])
    sim = simulate(scenario, seed)
    _, periods, synergies = _estimate(sim.data, config, samples, seed)
    truths = _period_truths(weekly_truth(scenario, seed))
    truths[("tv", "total", "campaign", "spring")] = campaign_truth("tv", SPRING["start"], SPRING["end"], scenario, seed)
    period_rows = _score_periods(kind, seed, periods, truths)
    syn = synergies.iloc[0]
    true_syn = synergy_truth(pair[0], pair[1], scenario, seed)
    smaller = float(sim.truth[sim.truth["effect"] == "total"].set_index("channel").loc[pair, "incremental_kpi"].min())
    synergy_rows = [{"world": kind, "seed": seed, "pair": "×".join(pair), "truth": true_syn,
                     "truth_share_of_smaller": true_syn / smaller, "estimate": syn["incremental_kpi"],
                     "low": syn["incremental_ci_low"], "high": syn["incremental_ci_high"], "p_value": syn["p_value"],
                     "withheld": syn["withheld_reason"],
                     "covered": bool(syn["incremental_ci_low"] <= true_syn <= syn["incremental_ci_high"])}]
    weekly = weekly_truth(scenario, seed)
    tv = weekly[(weekly["channel"] == "tv") & (weekly["effect"] == "total")]["weekly"].to_numpy()
    condition_rows = []
    conditions = periods[periods["period_type"] == "condition"]
    price = sim.data["price"].to_numpy(dtype=float)
    cuts = np.quantile(price, [1 / 3, 2 / 3])
    level = np.digitize(price, cuts, right=True)
    for i, r in enumerate(conditions.itertuples(index=False)):
        truth = float(tv[level == i].sum())
        condition_rows.append({"world": kind, "seed": seed, "level": r.period, "truth": truth,
                               "estimate": r.incremental_kpi,
                               "covered": bool(r.incremental_ci_low <= truth <= r.incremental_ci_high),
                               "equal_effect_p_value": r.equal_effect_p_value})
    return period_rows, synergy_rows, condition_rows


def heldout_world(seed: int, samples: int) -> tuple[list[dict], list[dict]]:
    """The held-out seed graph with every transform selected; years, quarters, a TV campaign and the
    pair digital × email (truth 0: that simulator is additive in its channels)."""
    from benchmarks.heldout.run import world_edges
    from benchmarks.heldout.worlds import WORLDS, _draw_noise, _Equations, simulate_world

    world = WORLDS["seed_graph"]
    draw = simulate_world(world, seed)
    raw_config = {"data": {"path": "weekly.csv", "date_column": "week", "kpi": "sales"},
                  "channels": {c: {"spend_column": f"{c}_spend"} for c in world.channels},
                  "controls": ["seasonality", "trend"],
                  "graph": {"edges": [list(e) for e in world_edges(world)], "interactions": [["digital", "email"]]},
                  "campaigns": [HELDOUT_CAMPAIGN]}
    config = parse_config(raw_config, SAMPLE)
    data = draw.data.copy()
    _, periods, synergies = _estimate(data, config, samples, seed)
    eq = _Equations(world, _draw_noise(world, np.random.default_rng(seed)))
    factual = eq.spends()
    y = eq.kpi(factual)
    weeks = draw.data["week"]
    frames = []
    for name in world.channels:
        off = eq.kpi(eq.spends({name: 0.0}))
        frames.append(pd.DataFrame({"week": weeks, "channel": name, "effect": "total", "weekly": y - off}))
    truths = _period_truths(pd.concat(frames, ignore_index=True))
    keep = ~((weeks >= HELDOUT_CAMPAIGN["start"]) & (weeks <= HELDOUT_CAMPAIGN["end"])).to_numpy()
    changed = dict(factual, tv=factual["tv"] * keep)
    changed["search"] = eq.search(changed["tv"])
    truths[("tv", "total", "campaign", "spring")] = float((y - eq.kpi(changed)).sum())
    syn = synergies.iloc[0]
    synergy_rows = [{"world": "heldout", "seed": seed, "pair": "digital×email", "truth": 0.0,
                     "truth_share_of_smaller": 0.0, "estimate": syn["incremental_kpi"],
                     "low": syn["incremental_ci_low"], "high": syn["incremental_ci_high"], "p_value": syn["p_value"],
                     "withheld": syn["withheld_reason"],
                     "covered": bool(syn["incremental_ci_low"] <= 0.0 <= syn["incremental_ci_high"])}]
    return _score_periods("heldout", seed, periods, truths), synergy_rows


def _summary(periods: pd.DataFrame, synergies: pd.DataFrame, conditions: pd.DataFrame) -> None:
    print("\n== periods: coverage of 95% intervals and median relative error (total, direct, indirect) ==")
    if len(periods):
        table = periods.groupby(["world", "kind"]).agg(n=("covered", "size"), coverage=("covered", "mean"),
                                                       median_rel_error=("rel_error", "median"))
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        total = periods[periods["effect"] == "total"].groupby(["world", "kind"]).agg(
            n=("covered", "size"), coverage=("covered", "mean"), median_rel_error=("rel_error", "median"))
        print("-- total effects only --")
        print(total.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\n== synergies ==")
    if len(synergies):
        for world, g in synergies.groupby("world"):
            real = world == "synergy"
            estimated = g[g["withheld"] == ""]
            line = (f"{world}: {len(g)} worlds, {len(estimated)} estimated; coverage {estimated['covered'].mean():.3f}; "
                    f"{'power' if real else 'false detections'} (p < 0.05) {(estimated['p_value'] < 0.05).mean():.3f}")
            if real:
                line += f"; truth / smaller channel's effect, median {g['truth_share_of_smaller'].median():.3f}"
            print(line)
    print("\n== effect modification (tv by price tercile) ==")
    if len(conditions):
        for world, g in conditions.groupby("world"):
            tests = g.drop_duplicates(["seed"])["equal_effect_p_value"]
            label = "power" if world == "modification" else "false rejections"
            print(f"{world}: {len(g)} level estimates, coverage {g['covered'].mean():.3f}; {label} of the equal-effect "
                  f"test (p < 0.05) {(tests < 0.05).mean():.3f} over {len(tests)} worlds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="worlds per family")
    parser.add_argument("--samples", type=int, default=200, help="bootstrap resamples per world")
    parser.add_argument("--families", default="null,synergy,modification,heldout")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    period_rows, synergy_rows, condition_rows = [], [], []
    pd.set_option("display.width", 200)
    for family in families:
        for seed in range(args.seeds):
            started = time.perf_counter()
            if family == "heldout":
                p, s = heldout_world(seed, args.samples)
                c: list[dict] = []
            else:
                p, s, c = project_world(family, seed, args.samples)
            period_rows += p
            synergy_rows += s
            condition_rows += c
            frame = pd.DataFrame(p)
            cover = frame.groupby("kind")["covered"].mean().to_dict() if len(frame) else {}
            syn = s[0]
            print(f"world {family} seed {seed} ({time.perf_counter() - started:.1f} s): coverage "
                  + ", ".join(f"{k} {v:.2f}" for k, v in cover.items())
                  + f"; synergy {syn['pair']} truth {syn['truth']:.0f} estimate {syn['estimate']:.0f} "
                  f"[{syn['low']:.0f}, {syn['high']:.0f}] p {syn['p_value']:.3g}"
                  + (f" withheld: {syn['withheld']}" if syn["withheld"] else "")
                  + ("; modifier p " + f"{c[0]['equal_effect_p_value']:.3g}" if c else ""), flush=True)
    _summary(pd.DataFrame(period_rows), pd.DataFrame(synergy_rows), pd.DataFrame(condition_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

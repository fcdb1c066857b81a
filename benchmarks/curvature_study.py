"""Transform selection against the oracle, fast: point estimates at one selection, no bootstrap.

Issue 21's ablation bench. For every world (held-out families with their true transforms where our
families express them; pysimmmulator's worlds with their OLS oracle on the true response), every
channel's transform is selected as a new user's run selects it, under each selection variant (the
grid and the criterion), and the DAG's total-effect ROI and marginal ROI at that selection are
compared with the truth. The held-out oracle is the same estimator with the true transforms given.

Printed per world and channel, then pooled per family: ROI and mROI relative error per variant and the
oracle's, the ratio of medians, and the transform chosen. The published estimate (smoothed over the
bootstrap's re-selections, benchmarks/heldout/run.py) differs from this single selection; this bench
ranks the variants cheaply, the full one confirms the chosen one. `lift15` and `lift30` give the
selection one lift test per channel with an effect, made from the world's own equations.

    python -m benchmarks.curvature_study --heldout seed_graph,always_on --seeds 1-3 --external 1-4
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.heldout.run import WORLDS, Case, oracle_case, relative_error, world_case, write_inputs
from cmmm_pipeline.core.config import CvScheme, PipelineConfig, SelectionCriterion
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.effects.estimation import ChannelEstimates, estimate_channels
from cmmm_pipeline.media.features import ChannelTransform, build_features
from cmmm_pipeline.media.selection import ParameterGrid, SelectionResult, SelectionSettings, select_transforms


@dataclass(frozen=True)
class Variant:
    name: str
    grid: ParameterGrid
    criterion: SelectionCriterion
    passes: int = 3
    folds: int = 4
    initial_fraction: float = 0.5
    scheme: CvScheme = CvScheme.FORWARD
    modal_adstock: bool = False
    """Choose each channel's carryover as the one its bootstrap re-selections pick most often, then
    select (and smooth over) the saturation with that carryover held."""
    lift_se: float = 0.0
    """With lift tests (their standard error this share of the true lift): each tested channel's
    transform chosen by the cross validation's Gaussian likelihood and the test's together
    (`calibrated_selection`). 0: no tests."""
    lift_channels: int = 0
    """How many channels are tested: the largest by spend (0: every channel with an effect)."""
    lift_weeks_after: bool = True
    """Whether the test measures the weeks after its window too (its carryover) or its window only."""


BASE = ParameterGrid()
VARIANTS = {
    "base": Variant("base", BASE, SelectionCriterion.CV_MIN),
    "in_sample": Variant("in_sample", BASE, SelectionCriterion.IN_SAMPLE),
    "slopes3": Variant("slopes3", replace(BASE, slopes=(1.0, 1.5, 2.0, 3.0)), SelectionCriterion.CV_MIN),
    "wide": Variant("wide", replace(BASE, half_saturations=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
                                    slopes=(1.0, 1.5, 2.0, 3.0)), SelectionCriterion.CV_MIN),
    "wide_in_sample": Variant("wide_in_sample", replace(BASE, half_saturations=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
                                                        slopes=(1.0, 1.5, 2.0, 3.0)), SelectionCriterion.IN_SAMPLE),
    "in_sample_p8": Variant("in_sample_p8", BASE, SelectionCriterion.IN_SAMPLE, 8),
    "fine_in_sample": Variant("fine_in_sample", replace(
        BASE, decays=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        half_saturations=(0.4, 0.5, 0.6, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
        slopes=(1.0, 1.25, 1.5, 2.0, 2.5, 3.0)), SelectionCriterion.IN_SAMPLE, 8),
    "mid_in_sample": Variant("mid_in_sample", replace(
        BASE, half_saturations=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0), slopes=(1.0, 1.5, 2.0, 2.5)),
        SelectionCriterion.IN_SAMPLE),
    "cv_folds8": Variant("cv_folds8", BASE, SelectionCriterion.CV_MIN, folds=8),
    "cv_early": Variant("cv_early", BASE, SelectionCriterion.CV_MIN, folds=6, initial_fraction=0.3),
    "modal_adstock": Variant("modal_adstock", BASE, SelectionCriterion.CV_MIN, modal_adstock=True),
    "blocked": Variant("blocked", BASE, SelectionCriterion.CV_MIN, scheme=CvScheme.BLOCKED),
    "blocked5": Variant("blocked5", BASE, SelectionCriterion.CV_MIN, folds=5, scheme=CvScheme.BLOCKED),
    "blocked6": Variant("blocked6", BASE, SelectionCriterion.CV_MIN, folds=6, scheme=CvScheme.BLOCKED),
    "blocked8": Variant("blocked8", BASE, SelectionCriterion.CV_MIN, folds=8, scheme=CvScheme.BLOCKED),
    "lift15": Variant("lift15", BASE, SelectionCriterion.CV_MIN, lift_se=0.15),
    "lift30": Variant("lift30", BASE, SelectionCriterion.CV_MIN, lift_se=0.30),
    "lift15_window": Variant("lift15_window", BASE, SelectionCriterion.CV_MIN, lift_se=0.15, lift_weeks_after=False),
    "lift15_top1": Variant("lift15_top1", BASE, SelectionCriterion.CV_MIN, lift_se=0.15, lift_channels=1),
    "lift15_top2": Variant("lift15_top2", BASE, SelectionCriterion.CV_MIN, lift_se=0.15, lift_channels=2),
}


def _describe(t: ChannelTransform) -> str:
    carry = (f"geo {t.decay:g}" if t.adstock.value == "geometric"
             else f"{t.adstock.value} {t.weibull_shape:g}/{t.weibull_scale:g}")
    return f"{carry}, K {t.half_saturation:g} s {t.slope:g}"


BAGGED_SAMPLES = 0
"""Resamples of the bagged estimate (0: the estimate at one selection); set by --bagged."""


def point_estimates(case: Case, variant: Variant | None) -> pd.DataFrame:
    """channel, roi, mroi, transform: the total effect at one selection (variant None: as configured),
    or, with BAGGED_SAMPLES, the published estimate: smoothed over the bootstrap's re-selections."""
    with tempfile.TemporaryDirectory(prefix="curvature-") as tmp:
        config = load_config(write_inputs(case, Path(tmp)))
        raw = load_raw(config)
    settings = (SelectionSettings(folds=variant.folds, initial_fraction=variant.initial_fraction, grid=variant.grid,
                                  criterion=variant.criterion, max_passes=variant.passes, scheme=variant.scheme)
                if variant else SelectionSettings())
    if variant is not None and variant.lift_se > 0:
        tests = {t.channel: (t, _window_drops(raw, config, settings, t))
                 for t in lift_tests(case, raw, config, variant)}
        with calibrated_selection(tests):
            return _estimates(case, variant, raw, config, settings)
    return _estimates(case, variant, raw, config, settings)


def _estimates(case: Case, variant: Variant | None, raw: pd.DataFrame, config: PipelineConfig,
               settings: SelectionSettings) -> pd.DataFrame:
    chosen = select_transforms(raw, config, settings)
    features = build_features(raw, config, chosen.transforms)
    estimated = estimate_channels(raw, features, config, build_graph(config), chosen.transforms)
    table = estimated.table
    if variant is not None and variant.modal_adstock:
        return point_estimates(_with_modal_adstocks(case, raw, config, features, estimated, chosen, settings),
                               replace(variant, modal_adstock=False))
    if BAGGED_SAMPLES:
        table = _bagged(raw, config, features, estimated, chosen, settings)
    table = table[table["effect"] == "total"].set_index("channel")
    return pd.DataFrame([{"channel": c, "roi": float(table.loc[c, "roi"]) if c in table.index else math.nan,
                          "mroi": float(table.loc[c, "mroi"]) if c in table.index else math.nan,
                          "transform": _describe(chosen.transforms[c])} for c in config.channel_names])


def _with_modal_adstocks(case: Case, raw: pd.DataFrame, config: PipelineConfig, features: pd.DataFrame,
                         estimated: ChannelEstimates, chosen: SelectionResult, settings: SelectionSettings) -> Case:
    """The case with each selected channel's most often re-selected carryover written into its config."""
    from collections import Counter

    draws = _draws(raw, config, features, estimated, chosen, settings)[1]
    transforms = {c: dict(t) for c, t in (case.transforms or {}).items()}
    for k, name in enumerate(config.channel_names):
        candidates = chosen.candidates[name]
        if len(candidates) == 1:
            continue
        t = candidates[Counter(draws.selected[:, k].tolist()).most_common(1)[0][0]]
        adstock = ({"type": "geometric", "decay": t.decay} if t.adstock.value == "geometric" else
                   {"type": t.adstock.value, "shape": t.weibull_shape, "scale": t.weibull_scale, "max_lag": t.max_lag})
        transforms.setdefault(name, {})["adstock"] = adstock
    return replace(case, transforms=transforms)


def _draws(raw: pd.DataFrame, config: PipelineConfig, features: pd.DataFrame, estimated: ChannelEstimates,
           chosen: SelectionResult, settings: SelectionSettings) -> tuple[Any, Any]:
    """The effect problem and its bootstrap draws with re-selection, as the pipeline makes them."""
    from cmmm_pipeline.data.ingest import spend_totals
    from cmmm_pipeline.effects.bootstrap import BootstrapSettings, bootstrap, effect_problem
    from cmmm_pipeline.effects.robustness import in_table_order, published_gcomputation

    point = estimated.table
    specs = in_table_order(point, estimated.specs)
    problem = effect_problem(raw, config, dict(chosen.candidates), dict(chosen.selected_index), specs,
                             spend_totals(raw, config),
                             published_gcomputation(point, features, estimated.expanded, specs, config))
    boot = BootstrapSettings(samples=BAGGED_SAMPLES or 100, level=0.95)
    return problem, bootstrap(problem, boot, settings, np.random.default_rng(config.estimation.seed))


def _bagged(raw: pd.DataFrame, config: PipelineConfig, features: pd.DataFrame, estimated: ChannelEstimates,
            chosen: SelectionResult, settings: SelectionSettings) -> pd.DataFrame:
    """The estimates table with roi and mroi replaced by the published (smoothed) values."""
    from cmmm_pipeline.core.config import EffectType
    from cmmm_pipeline.effects.bootstrap import BootstrapSettings, intervals
    from cmmm_pipeline.effects.estimation import MARGINAL_STEP

    point = estimated.table
    rows = point[np.isfinite(point["ate"].to_numpy(dtype=float))]
    problem, draws = _draws(raw, config, features, estimated, chosen, settings)
    boot = BootstrapSettings(samples=BAGGED_SAMPLES, level=0.95)
    points = {(r.channel, EffectType(r.effect)): float(r.incremental_kpi) for r in rows.itertuples(index=False)}
    marginal = {(r.channel, EffectType(r.effect)): float(r.mroi) * MARGINAL_STEP * float(r.spend)
                for r in rows.itertuples(index=False)}
    out = point.copy()
    for i in intervals(problem, draws, points, boot, marginal):
        at = (out["channel"] == i.channel) & (out["effect"] == i.effect.value)
        out.loc[at, "roi"] = i.incremental_kpi / float(out.loc[at, "spend"].iloc[0])
        out.loc[at, "mroi"] = i.mroi
    return out


LIFT_WEEKS = 6
"""A lift test's window: the 6 weeks of the second half with the channel's largest spend."""


@dataclass(frozen=True)
class LiftTest:
    channel: str
    start: int
    """First week of the window (row index)."""
    measured_weeks: int
    """Weeks from `start` over which the lift is summed: the window's, or every week to the end."""
    measured: float
    """The test's incremental KPI: the true lift (the KPI summed over the measured weeks minus the same
    with the channel's spend off in the window, every other channel's spend held) plus a normal error
    of standard deviation `se`."""
    se: float
    truth: float


def _window_off(spend: np.ndarray, start: int) -> np.ndarray:
    """The spend with the test window's weeks at zero."""
    off = spend.copy()
    off[start:start + LIFT_WEEKS] = 0.0
    return off


EXTERNAL_WORLDS: dict[int, Any] = {}
"""pysimmmulator's worlds by seed, kept by `external_cases` for their lift tests."""


def true_lift(case: Case, raw: pd.DataFrame, config: PipelineConfig, channel: str, start: int,
              measured_weeks: int) -> float:
    """The lift of the channel's spend in the window over the measured weeks, from the world's own
    equations."""
    if case.world == "simmmulator":
        from benchmarks.external.simmmulator import window_lift

        return window_lift(EXTERNAL_WORLDS[case.seed], channel, start, LIFT_WEEKS, measured_weeks)
    from benchmarks.heldout.worlds import planned_kpi

    world = WORLDS[case.world]
    spend = raw[config.channel(channel).spend_column].to_numpy(dtype=float)
    on = planned_kpi(world, case.seed, {channel: spend})
    lost = on - planned_kpi(world, case.seed, {channel: _window_off(spend, start)})
    return float(lost[start:start + measured_weeks].sum())


def lift_tests(case: Case, raw: pd.DataFrame, config: PipelineConfig, variant: Variant) -> list[LiftTest]:
    """One seeded lift test per tested channel (every channel with an effect, or the largest by
    spend), from the world's own equations."""
    rng = np.random.default_rng(1000 + case.seed)
    n = len(raw)
    half = n // 2
    tests = []
    nulls = set(case.truth.loc[case.truth["null"], "channel"])
    effective = [c for c in config.channel_names if c not in nulls]
    if variant.lift_channels:
        spend_of = {c: float(raw[config.channel(c).spend_column].sum()) for c in effective}
        effective = sorted(effective, key=spend_of.__getitem__, reverse=True)[:variant.lift_channels]
    for name in effective:
        spend = raw[config.channel(name).spend_column].to_numpy(dtype=float)
        totals = np.convolve(spend[half:], np.ones(LIFT_WEEKS), mode="valid")
        start = half + int(np.argmax(totals))
        measured = n - start if variant.lift_weeks_after else LIFT_WEEKS
        truth = true_lift(case, raw, config, name, start, measured)
        se = variant.lift_se * abs(truth)
        tests.append(LiftTest(name, start, measured, truth + se * float(rng.standard_normal()), se, truth))
    return tests


def _window_drops(raw: pd.DataFrame, config: PipelineConfig, settings: SelectionSettings,
                  test: LiftTest) -> np.ndarray:
    """(grid,) how much each candidate's transformed media falls over the test's measured weeks with
    the window's spend off: times the channel's coefficient, the lift the candidate predicts."""
    from cmmm_pipeline.media.selection import channel_candidates

    spend = raw[config.channel(test.channel).spend_column].to_numpy(dtype=float)
    off = _window_off(spend, test.start)
    measured = slice(test.start, test.start + test.measured_weeks)
    drops = []
    for candidate in channel_candidates(config.channel(test.channel), settings.grid):
        reference = candidate.reference(spend)
        drops.append(float((candidate.apply(spend, reference) - candidate.apply(off, reference))[measured].sum()))
    return np.array(drops)


@contextmanager
def calibrated_selection(tests: dict[str, tuple[LiftTest, np.ndarray]]) -> Iterator[None]:
    """While active, every selection (the point one and each bootstrap re-selection) chooses a tested
    channel's grid point by the cross validation's Gaussian likelihood of its test weeks times the lift
    test's likelihood of the lift the candidate predicts (its in-sample coefficient on the rows at hand,
    the other channels held, times its window drop): no weight to tune. The test's own error is not
    resampled (its value is the same in every re-selection), so intervals are not measured here."""
    from cmmm_pipeline.media import selection

    original = selection._channel_choice

    def choice(inputs: Any, rows: np.ndarray, selected: np.ndarray, k: int, folds: Any,
               criterion: SelectionCriterion, y: np.ndarray | None = None) -> np.ndarray:
        name = inputs.channels[k]
        if name not in tests or criterion is not SelectionCriterion.CV_MIN:
            return original(inputs, rows, selected, k, folds, criterion, y)
        test, drops = tests[name]
        fixed, candidates, kpi = selection._channel_design(inputs, rows, selected, k, y)
        mse = selection.cv_fold_sse(fixed, candidates, kpi, folds).sum(axis=2) / folds.test_weeks
        lift = selection.in_sample_coefficients(fixed, candidates, kpi) * drops[None, :]
        score = folds.test_weeks * np.log(mse) + ((lift - test.measured) / test.se) ** 2
        return np.where(np.isfinite(score), score, np.inf).argmin(axis=1)

    selection._channel_choice = choice
    try:
        yield
    finally:
        selection._channel_choice = original


def external_cases(seeds: list[int]) -> list[tuple[Case, pd.DataFrame]]:
    from benchmarks.external.simmmulator import case, generate, oracle

    out = []
    for seed in seeds:
        world = EXTERNAL_WORLDS[seed] = generate(seed)
        orc = oracle(world)
        out.append((case(world), pd.DataFrame({"channel": orc.index, "roi": orc[("est", "roi")].to_numpy(),
                                               "mroi": orc[("est", "mroi")].to_numpy(), "transform": "true response"})))
    return out


def half_oracle_case(case: Case, given: str) -> Case:
    """The oracle with only one half of the true transforms given (`given`: "adstock" or
    "saturation"); the other half is left to selection."""
    truth = oracle_case(case).transforms or {}
    return replace(case, transforms={c: {given: t[given]} for c, t in truth.items()})


HALF_ORACLES = ("adstock", "saturation")
"""With --half-oracles: which half of the selection costs (held-out worlds; external ones get no value)."""


def study(cases: list[tuple[Case, pd.DataFrame | None]], variants: list[Variant],
          half_oracles: bool = False) -> pd.DataFrame:
    rows = []
    for case, oracle in cases:
        started = time.perf_counter()
        held_out = oracle is None  # our own oracle: the true transforms written into the config
        if held_out:
            oracle = point_estimates(oracle_case(case), None)
        results = {"oracle": oracle.set_index("channel")}
        for v in variants:
            results[v.name] = point_estimates(case, v).set_index("channel")
        for h in HALF_ORACLES if half_oracles else ():
            half = (point_estimates(half_oracle_case(case, h), VARIANTS["base"]) if held_out
                    else oracle.assign(roi=math.nan, mroi=math.nan))
            results[f"true_{h}"] = half.set_index("channel")
        truth = case.truth.set_index("channel")
        effective = truth[~truth["null"].astype(bool)].sort_values("spend", ascending=False).index.tolist()
        for rank, channel in enumerate(effective, start=1):
            row = {"family": "external" if case.world == "simmmulator" else "heldout", "world": case.world,
                   "seed": case.seed, "channel": channel,
                   "zero_in_support": bool(truth.loc[channel, "zero_in_support"]),
                   "spend_rank": rank}
            for name, r in results.items():
                for what in ("roi", "mroi"):
                    row[f"{name}_{what}"] = relative_error(float(r.loc[channel, what]), float(truth.loc[channel, what]))
                row[f"{name}_transform"] = r.loc[channel, "transform"]
            rows.append(row)
        print(f"--- {case.world} seed {case.seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, names: list[str]) -> None:
    cols = ["oracle", *names]
    print("\nper world and channel: ROI | mROI relative error per variant; transforms of the first and last variant")
    for r in table.itertuples(index=False):
        d = r._asdict()
        roi = " ".join(f"{d[f'{n}_roi']:6.3f}" for n in cols)
        mroi = " ".join(f"{d[f'{n}_mroi']:6.3f}" for n in cols)
        print(f"  {r.world:16s} {r.seed:2d} {r.channel:16s} ROI {roi} | mROI {mroi} | {d[f'{names[0]}_transform']} -> "
              f"{d[f'{names[-1]}_transform']} (true: {d['oracle_transform']})")
    print(f"\nmedian relative error (ratio to the oracle's); columns: {', '.join(cols)}; "
          "'zero seen': only channels whose zero-spend weeks the data show (ROI within support)")
    seen = table[table["zero_in_support"]]
    for key, part in [*table.groupby(["family", "world"]), (("ALL", ""), table), (("ALL", "zero seen"), seen)]:
        _summary(key if isinstance(key, str) else " ".join(k for k in key if k), part, names)
    withheld = " ".join(f"{n} {int(table[f'{n}_roi'].isna().sum())}" for n in cols)
    print(f"  withheld or not estimated (no ROI), of {len(table)} rows: {withheld}")
    if "spend_rank" in table:  # which channels a variant helps: `lift15_top1` tests the largest only
        print("\nby family and the channel's rank by spend among those with an effect")
        for family, part in table.groupby("family"):
            for label, rows in (("every channel", part["spend_rank"] > 0), ("largest", part["spend_rank"] == 1),
                                ("second largest", part["spend_rank"] == 2), ("the others", part["spend_rank"] > 2)):
                _summary(f"{family} {label}", part[rows], names)


def _summary(label: str, part: pd.DataFrame, names: list[str]) -> None:
    for what in ("roi", "mroi"):
        o = part[f"oracle_{what}"].median()
        cells = " ".join(f"{part[f'{n}_{what}'].median():6.3f} ({part[f'{n}_{what}'].median() / o:5.2f})"
                         for n in names)
        print(f"  {label:28s} {what:4s} n={len(part):3d} oracle {o:6.3f} | {cells}")


def _seeds(text: str) -> list[int]:
    if not text:
        return []
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", default="seed_graph,always_on")
    parser.add_argument("--seeds", default="1-3")
    parser.add_argument("--external", default="1-4", help="pysimmmulator seeds ('' for none)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--bagged", type=int, default=0, help="bootstrap resamples of the published estimate")
    parser.add_argument("--half-oracles", action="store_true",
                        help="also the base variant with only the true adstock, or only the true saturation, given")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--summarize", type=Path, help="print the summary of a CSV this study wrote, and stop")
    args = parser.parse_args(argv)
    global BAGGED_SAMPLES
    BAGGED_SAMPLES = args.bagged
    variants = [VARIANTS[v] for v in args.variants.split(",")]
    if args.summarize:
        saved = pd.read_csv(args.summarize)
        names = [v.name for v in variants] + [f"true_{h}" for h in HALF_ORACLES]
        report(saved, [n for n in names if f"{n}_roi" in saved.columns])
        return 0
    cases: list[tuple[Case, pd.DataFrame | None]] = [
        (world_case(w, s), None) for w in args.heldout.split(",") if w for s in _seeds(args.seeds)]
    if args.external:
        cases += external_cases(_seeds(args.external))
    table = study(cases, variants, args.half_oracles)
    report(table, [v.name for v in variants] + ([f"true_{h}" for h in HALF_ORACLES] if args.half_oracles else []))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Held-out validation: the pipeline, run as a new user runs it, on worlds it was not designed for.

For every world of `benchmarks.heldout.worlds` (and the public dataset of `benchmarks.heldout.public`)
and every seed: write the weekly CSV and a config that leaves every transform to selection (channels
with only `spend_column`; controls `seasonality` and `trend`; the world's graph), run `cmmm run` in a
subprocess at default settings, read `estimates.csv` and compare each channel's total effect with the
truth by intervention. A refused run counts as a refusal with its rule.

Printed per world and seed: refused (rule); per channel: truth ROI, estimate, relative error, covered,
the same for the marginal ROI, the naive ROI's error, `roi_support` and a withheld reason. Per world:
refusal rate, median relative ROI error and 95% coverage (ROI over channels whose zero-spend level
the data show; mROI over every channel), share of always-on channels flagged `extrapolated`, and the
share of null channels significant at 5%. Columns the pipeline does not write yet print as "n/a".

    python -m benchmarks.heldout.run --seeds 3 --jobs 2
    python -m benchmarks.heldout.run --worlds seed_graph,always_on --seeds 10
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.heldout import public
from benchmarks.heldout.worlds import SHARED_BUDGET, WORLDS, World, simulate_world



def _venv_bin(name: str) -> Path:
    """The tree's `.venv` program, or else the one beside the running interpreter (a benchmark venv)."""
    local = ROOT / ".venv" / "bin" / name
    return local if local.exists() else Path(sys.executable).with_name(name)


CMMM = _venv_bin("cmmm")
RUN_TIMEOUT_S = 900
RULE = re.compile(r"\[([a-z0-9][a-z0-9-]*)\]")
MAX_JOBS = 2


@dataclass(frozen=True)
class Case:
    """One pipeline input: the data, the truth, the graph and the controls a user would declare."""

    world: str
    seed: int
    data: pd.DataFrame
    truth: pd.DataFrame
    """channel, roi, mroi (NaN when unknown), zero_in_support, always_on, null."""
    edges: tuple[tuple[str, str], ...]
    controls: tuple[str, ...]
    latent: tuple[str, ...] = ()
    date_column: str = "week"
    kpi: str = "sales"
    transforms: dict[str, dict[str, object]] | None = None
    """The oracle: channel → its true `adstock` and `saturation` config, where our families express
    them (None: every transform left to selection)."""


@dataclass(frozen=True)
class Outcome:
    case: Case
    refused: bool
    """The pipeline declined with a rule (a check or a user-facing error)."""
    crashed: bool
    """It failed without a rule (a traceback): a defect, not a refusal."""
    rules: tuple[str, ...]
    estimates: pd.DataFrame | None
    seconds: float
    message: str


def world_edges(world: World) -> tuple[tuple[str, str], ...]:
    """The world's true graph as a user would draw it: season → seasonal channels and sales; TV → search;
    every channel and the trend → sales."""
    edges = [("seasonality", name) for name, ch in world.channels.items() if ch.season_loading > 0]
    edges += [("seasonality", "sales"), ("trend", "sales")]
    if "search" in world.channels:
        edges.append(("tv", "search"))
    edges += [(name, "sales") for name in world.channels]
    if world.shared_budget > 0:
        edges += [("budget", name) for name in SHARED_BUDGET]
    return tuple(edges)


def world_case(name: str, seed: int) -> Case:
    world = WORLDS[name]
    draw = simulate_world(world, seed)
    latent = ("budget",) if world.shared_budget > 0 else ()
    return Case(name, seed, draw.data, draw.truth, world_edges(world), ("seasonality", "trend"), latent)


def true_transforms(world: World, data: pd.DataFrame) -> dict[str, dict[str, object]]:
    """The world's true transforms as config, for the channels our families express: the carryover
    is a Weibull-PDF kernel (ours weights lag l by the Weibull probability of [l, l+1), the world by
    its density at l + ½: nearly the same weights), a Hill curve on carried-over spend in currency
    is ours with half-saturation midpoint / (mean carried-over spend). A logistic response has no
    Hill equivalent: that channel is left to selection."""
    from cmmm_pipeline.core.config import AdstockConfig, AdstockType, ChannelConfig, SaturationConfig
    from cmmm_pipeline.media.features import configured_transform
    from benchmarks.heldout.worlds import Curve

    out: dict[str, dict[str, object]] = {}
    for name, ch in world.channels.items():
        if ch.response.curve is not Curve.HILL:
            continue
        c = ch.carryover
        adstock = {"type": "weibull_pdf", "shape": c.shape, "scale": c.scale, "max_lag": c.max_lag - 1}
        probe = configured_transform(ChannelConfig(name, f"{name}_spend", AdstockConfig(
            AdstockType.WEIBULL_PDF, shape=c.shape, scale=c.scale, max_lag=c.max_lag - 1), SaturationConfig(
            half_saturation=1.0, slope=1.0)))
        reference = probe.reference(data[f"{name}_spend"].to_numpy(dtype=float))
        saturation = {"type": "hill", "half_saturation": ch.response.midpoint / reference,
                      "slope": ch.response.steepness}
        out[name] = {"adstock": adstock, "saturation": saturation}
    return out


def oracle_case(case: Case) -> Case:
    """The same data with the true transforms written into the config (where expressible)."""
    from dataclasses import replace as _replace

    return _replace(case, transforms=true_transforms(WORLDS[case.world], case.data))


def public_cases() -> list[Case]:
    cases = []
    for dataset in public.load_all():
        cases.append(Case(dataset.name, 0, dataset.data, dataset.truth, dataset.edges, dataset.controls,
                          (), dataset.date_column, dataset.kpi))
    return cases


RELAXED_OVERLAP = {"overlap_bins": 1, "overlap_min_weeks": 2, "overlap_min_spread": 0.0}
"""The ablation `--relax-overlap`: the overlap gate's thresholds (as of the commit that introduced this
benchmark) at their loosest, to measure accuracy where the default gate refuses. Not a default setting."""


def write_inputs(case: Case, folder: Path, relax_overlap: bool = False,
                 estimation: dict[str, object] | None = None) -> Path:
    """The CSV and a config that a new user would write: spend columns only, no transforms
    (`estimation`: settings an ablation changes; none by default)."""
    case.data.to_csv(folder / "weekly.csv", index=False)
    channels = {c: {"spend_column": f"{c}_spend", **((case.transforms or {}).get(c, {}))}
                for c in case.truth["channel"]}
    graph: dict[str, object] = {"edges": [list(e) for e in case.edges]}
    if case.latent:
        graph["latent"] = list(case.latent)
    config = {"data": {"path": "weekly.csv", "date_column": case.date_column, "kpi": case.kpi},
              "channels": channels, "controls": list(case.controls), "graph": graph}
    if relax_overlap:
        config["checks"] = dict(RELAXED_OVERLAP)
    if estimation:
        config["estimation"] = dict(estimation)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


_FROM_TREE = "import sys; sys.path.insert(0, sys.argv.pop(1)); from cmmm_pipeline.cli import main; sys.exit(main())"


def cmmm_command(tree: Path | None) -> list[str]:
    """`cmmm` of the working tree, or the same CLI imported from another copy of the tree (e.g. an
    export of a commit), so a run is not disturbed by files being edited."""
    if tree is None:
        return [str(CMMM)]
    return [str(_venv_bin("python")), "-c", _FROM_TREE, str(tree.resolve())]


def run_case(case: Case, keep: Path | None, tree: Path | None = None, relax_overlap: bool = False,
             estimation: dict[str, object] | None = None) -> Outcome:
    """Run `cmmm run` in a subprocess, as a user does, and read what it published."""
    with tempfile.TemporaryDirectory(prefix=f"heldout-{case.world}-") as tmp:
        folder = Path(tmp) if keep is None else keep / f"{case.world}-{case.seed}{'-oracle' if case.transforms else ''}"
        folder.mkdir(parents=True, exist_ok=True)
        config = write_inputs(case, folder, relax_overlap, estimation)
        output = folder / "out"
        started = time.perf_counter()
        proc = subprocess.run([*cmmm_command(tree), "run", "--config", str(config), "--output", str(output),
                               "--warehouse", str(folder / "warehouse.duckdb")],
                              check=False, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=folder)
        seconds = time.perf_counter() - started
        estimates_path = output / "estimates.csv"
        if proc.returncode != 0 or not estimates_path.exists():
            text = f"{proc.stdout}\n{proc.stderr}"
            rules = tuple(dict.fromkeys(m for m in RULE.findall(text) if "-" in m))
            crashed = "Traceback (most recent call last)" in text or not rules
            last = text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"
            return Outcome(case, not crashed, crashed, rules or ("error",), None, seconds,
                           last if crashed else text.strip()[-2000:])
        return Outcome(case, False, False, (), pd.read_csv(estimates_path), seconds, "")


# --- scoring ----------------------------------------------------------------------------------------

def _get(row: pd.Series | None, column: str) -> float:
    if row is None or column not in row.index or pd.isna(row[column]):
        return math.nan
    try:
        return float(row[column])
    except (TypeError, ValueError):
        return math.nan


def _text(row: pd.Series | None, column: str) -> str:
    if row is None or column not in row.index or pd.isna(row[column]):
        return ""
    return str(row[column])


def relative_error(estimate: float, truth: float) -> float:
    """|estimate − truth| / |truth|; absolute error when the truth is 0 (a null channel)."""
    if math.isnan(estimate) or math.isnan(truth):
        return math.nan
    return abs(estimate - truth) / abs(truth) if truth != 0 else abs(estimate)


def covered(low: float, high: float, truth: float) -> float:
    if math.isnan(low) or math.isnan(high) or math.isnan(truth):
        return math.nan
    return float(low <= truth <= high)


def score(outcome: Outcome) -> pd.DataFrame:
    """One row per channel: truth, estimate, error and coverage of ROI and mROI, naive error, support."""
    rows = []
    est = outcome.estimates
    for t in outcome.case.truth.itertuples(index=False):
        row = None
        if est is not None:
            hit = est[(est["channel"] == t.channel) & (est["effect"] == "total")]
            row = hit.iloc[0] if len(hit) else None
        withheld = _text(row, "withheld_reason") or ("" if row is not None or est is None else "no row")
        roi, mroi = _get(row, "roi"), _get(row, "mroi")
        rows.append({
            "world": outcome.case.world, "seed": outcome.case.seed, "channel": t.channel,
            "refused": outcome.refused or outcome.crashed, "withheld": withheld,
            "zero_in_support": bool(t.zero_in_support), "always_on": bool(t.always_on), "null": bool(t.null),
            "roi_truth": t.roi, "roi": roi, "roi_err": relative_error(roi, t.roi),
            "roi_ci_low": _get(row, "roi_ci_low"), "roi_ci_high": _get(row, "roi_ci_high"),
            "roi_cover": covered(_get(row, "roi_ci_low"), _get(row, "roi_ci_high"), t.roi),
            "mroi_truth": t.mroi, "mroi": mroi, "mroi_err": relative_error(mroi, t.mroi),
            "mroi_ci_low": _get(row, "mroi_ci_low"), "mroi_ci_high": _get(row, "mroi_ci_high"),
            "mroi_cover": covered(_get(row, "mroi_ci_low"), _get(row, "mroi_ci_high"), t.mroi),
            "naive_err": relative_error(_get(row, "naive_roi"), t.roi),
            "p_value": _get(row, "p_value"), "roi_support": _text(row, "roi_support"),
            "extrapolated_share": _get(row, "extrapolated_share"),
        })
    return pd.DataFrame(rows)


def _fmt(value: float, spec: str = ".3f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _median(series: pd.Series) -> float:
    s = series.dropna()
    return float(s.median()) if len(s) else math.nan


def _mean(series: pd.Series) -> float:
    s = series.dropna()
    return float(s.mean()) if len(s) else math.nan


def print_run(outcome: Outcome, scored: pd.DataFrame) -> None:
    case = outcome.case
    head = f"--- {case.world} seed {case.seed}: "
    if outcome.crashed:
        print(head + f"CRASHED in {outcome.seconds:.0f} s: {outcome.message}")
        return
    if outcome.refused:
        print(head + f"REFUSED ({', '.join(outcome.rules)}) in {outcome.seconds:.0f} s")
        return
    print(head + f"published in {outcome.seconds:.0f} s")
    print(f"  {'channel':<10} {'ROI truth':>9} {'est':>7} {'err':>6} {'cov':>4} | {'mROI truth':>10} {'est':>7} "
          f"{'err':>6} {'cov':>4} | {'naive err':>9} {'p':>7} {'support':>12} {'zero obs':>8}  withheld")
    for r in scored.itertuples(index=False):
        print(f"  {r.channel:<10} {r.roi_truth:>9.3f} {_fmt(r.roi):>7} {_fmt(r.roi_err):>6} {_fmt(r.roi_cover, '.0f'):>4}"
              f" | {r.mroi_truth:>10.3f} {_fmt(r.mroi):>7} {_fmt(r.mroi_err):>6} {_fmt(r.mroi_cover, '.0f'):>4}"
              f" | {_fmt(r.naive_err):>9} {_fmt(r.p_value, '.2g'):>7} {r.roi_support or 'n/a':>12}"
              f" {'yes' if r.zero_in_support else 'no':>8}  {r.withheld}")


def world_summary(scored: pd.DataFrame, outcomes: list[Outcome]) -> dict[str, object]:
    """The issue's targets for one world (or for all runs pooled)."""
    runs = len(outcomes)
    refused = [o for o in outcomes if o.refused]
    crashed = [o for o in outcomes if o.crashed]
    rules = sorted({r for o in refused for r in o.rules})
    ok = scored[~scored["refused"]]
    effect = ok[~ok["null"]]
    in_support = effect[effect["zero_in_support"]]
    always_on = ok[ok["always_on"]]
    has_support = always_on["roi_support"].astype(str).str.len() > 0
    nulls = ok[ok["null"]]
    return {
        "runs": runs, "refused": len(refused), "crashed": len(crashed), "rules": ",".join(rules),
        "withheld": int((ok["withheld"] != "").sum()), "channels": len(ok),
        "roi_err": _median(in_support["roi_err"]), "roi_cover": _mean(in_support["roi_cover"]),
        "roi_err_all": _median(effect["roi_err"]),
        "mroi_err": _median(effect["mroi_err"]), "mroi_cover": _mean(ok["mroi_cover"]),
        "naive_err": _median(in_support["naive_err"]),
        "flagged": (float((always_on.loc[has_support, "roi_support"] == "extrapolated").mean())
                    if has_support.any() else math.nan),
        "null_sig": float((nulls["p_value"] < 0.05).mean()) if len(nulls) else math.nan,
        "nulls": len(nulls),
    }


def print_summary(summaries: dict[str, dict[str, object]]) -> None:
    print("\n=== per world (ROI: channels whose zero-spend level the data show; mROI: every channel)")
    print(f"{'world':<24} {'runs':>4} {'refused':>7} {'crashed':>7} {'withheld':>8} | {'ROI err':>7} {'cover':>5} {'all err':>7} | "
          f"{'mROI err':>8} {'cover':>5} | {'naive':>5} | {'always-on extrap.':>17} | {'null p<.05':>10} | rules")
    for name, s in summaries.items():
        print(f"{name:<24} {s['runs']:>4} {s['refused']:>7} {s['crashed']:>7} {s['withheld']:>4}/{s['channels']:<3} | "
              f"{_fmt(s['roi_err']):>7} {_fmt(s['roi_cover'], '.2f'):>5} {_fmt(s['roi_err_all']):>7} | "
              f"{_fmt(s['mroi_err']):>8} {_fmt(s['mroi_cover'], '.2f'):>5} | {_fmt(s['naive_err'], '.2f'):>5} | "
              f"{_fmt(s['flagged'], '.2f'):>17} | "
              f"{(_fmt(s['null_sig'], '.2f') + ' of ' + str(s['nulls'])) if s['nulls'] else '—':>10} | {s['rules']}")


def print_channels(table: pd.DataFrame) -> None:
    """Per channel, pooled over the published runs of the simulated worlds: where the error comes from."""
    ok = table[~table["refused"] & table["world"].isin(list(WORLDS))]
    if ok.empty:
        return
    print("\n=== per channel, pooled over the published runs of the simulated worlds")
    print(f"{'channel':<10} {'runs':>4} {'truth':>6} {'est/truth-1':>11} {'ROI err':>7} {'cover':>5} {'naive err':>9} "
          f"{'p<.05':>5} | {'mROI truth':>10} {'est/truth-1':>11} {'err':>6} {'cover':>5}")
    for channel, g in ok.groupby("channel", sort=False):
        ratio = _median(g["roi"] / g["roi_truth"] - 1) if (g["roi_truth"] != 0).all() else math.nan
        marginal = _median(g["mroi"] / g["mroi_truth"] - 1) if (g["mroi_truth"] != 0).all() else math.nan
        print(f"{channel:<10} {len(g):>4} {_median(g['roi_truth']):>6.2f} {_fmt(ratio, '+.2f'):>11} "
              f"{_fmt(_median(g['roi_err'])):>7} {_fmt(_mean(g['roi_cover']), '.2f'):>5} "
              f"{_fmt(_median(g['naive_err'])):>9} {float((g['p_value'] < 0.05).mean()):>5.2f} | "
              f"{_median(g['mroi_truth']):>10.2f} {_fmt(marginal, '+.2f'):>11} {_fmt(_median(g['mroi_err'])):>6} "
              f"{_fmt(_mean(g['mroi_cover']), '.2f'):>5}")


def print_oracle(selected: pd.DataFrame, oracle: pd.DataFrame, cases: list[Case]) -> None:
    """Per world, seed and channel: error, coverage and interval width with the selected transforms
    and with the true ones written into the config (the oracle), and the ratio of the errors; then
    per world the medians and the ratio of the medians (the issue's target: ≤ 1.3)."""
    keys = ["world", "seed", "channel"]
    both = selected.merge(oracle, on=keys, suffixes=("", "_o"))
    for t in ("roi", "mroi"):
        both[f"{t}_width"] = both[f"{t}_ci_high"] - both[f"{t}_ci_low"]
        both[f"{t}_width_o"] = both[f"{t}_ci_high_o"] - both[f"{t}_ci_low_o"]
    expressed = {(c.world, c.seed): set(c.transforms or {}) for c in cases}
    print("\n=== selected transforms vs the true ones in the config (oracle; '*' = not expressible, left to selection)")
    print(f"  {'world':<18} {'seed':>4} {'channel':<10} | {'ROI err':>7} {'cov':>3} {'width':>6} | {'oracle':>6} "
          f"{'cov':>3} {'width':>6} | {'ratio':>5} || {'mROI err':>8} {'cov':>3} {'width':>6} | {'oracle':>6} "
          f"{'cov':>3} {'width':>6} | {'ratio':>5} | withheld (sel / oracle)")
    for r in both.itertuples(index=False):
        star = "" if r.channel in expressed.get((r.world, r.seed), set()) else "*"
        ratio = r.roi_err / r.roi_err_o if r.roi_err_o else math.nan
        mratio = r.mroi_err / r.mroi_err_o if r.mroi_err_o else math.nan
        print(f"  {r.world:<18} {r.seed:>4} {r.channel + star:<10} | {_fmt(r.roi_err):>7} "
              f"{_fmt(r.roi_cover, '.0f'):>3} {_fmt(r.roi_width, '.2f'):>6} | {_fmt(r.roi_err_o):>6} "
              f"{_fmt(r.roi_cover_o, '.0f'):>3} "
              f"{_fmt(r.roi_width_o, '.2f'):>6} | {_fmt(ratio, '.2f'):>5} || {_fmt(r.mroi_err):>8} "
              f"{_fmt(r.mroi_cover, '.0f'):>3} {_fmt(r.mroi_width, '.2f'):>6} | {_fmt(r.mroi_err_o):>6} "
              f"{_fmt(r.mroi_cover_o, '.0f'):>3} {_fmt(r.mroi_width_o, '.2f'):>6} | {_fmt(mratio, '.2f'):>5} | "
              f"{r.withheld or '-'} / {r.withheld_o or '-'}")
    effect = both[~both["null"] & ~both["refused"] & ~both["refused_o"]]
    print(f"\n  {'world':<18} {'rows':>4} | {'ROI err':>7} {'oracle':>6} {'ratio':>5} {'cov':>4} {'cov o':>5} "
          f"{'width':>6} {'w o':>6} || {'mROI err':>8} {'oracle':>6} {'ratio':>5} {'cov':>4} {'cov o':>5} "
          f"{'width':>6} {'w o':>6}")
    groups = [(w, g) for w, g in effect.groupby("world", sort=False)] + [("ALL", effect)]
    for world, g in groups:
        cells = []
        for t in ("roi", "mroi"):
            sel, orc = _median(g[f"{t}_err"]), _median(g[f"{t}_err_o"])
            ratio = sel / orc if orc else math.nan
            cells.append(f"{_fmt(sel):>{8 if t == 'mroi' else 7}} {_fmt(orc):>6} {_fmt(ratio, '.2f'):>5} "
                         f"{_fmt(_mean(g[f'{t}_cover']), '.2f'):>4} {_fmt(_mean(g[f'{t}_cover_o']), '.2f'):>5} "
                         f"{_fmt(_median(g[f'{t}_width']), '.2f'):>6} {_fmt(_median(g[f'{t}_width_o']), '.2f'):>6}")
        print(f"  {world:<18} {len(g):>4} | {cells[0]} || {cells[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", default="all", help="comma-separated world names, 'all', or 'none'")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per simulated world (1..seeds)")
    parser.add_argument("--public", choices=("yes", "no"), default="yes", help="include the public dataset(s)")
    parser.add_argument("--jobs", type=int, default=1, help=f"pipeline runs at once (at most {MAX_JOBS})")
    parser.add_argument("--keep", type=Path, default=None, help="keep every run's inputs and outputs here")
    parser.add_argument("--tree", type=Path, default=None,
                        help="import cmmm_pipeline from this copy of the tree (default: the working tree's cmmm)")
    parser.add_argument("--relax-overlap", action="store_true",
                        help="ablation, not a default: loosen the overlap gate to its minimum thresholds")
    parser.add_argument("--estimation", action="append", default=[], metavar="KEY=VALUE",
                        help="ablation, not a default: set an `estimation` key of every config (repeatable)")
    parser.add_argument("--oracle", action="store_true",
                        help="also run every simulated world with its true transforms in the config and print "
                             "selected vs oracle (error, coverage, widths, ratio)")
    parser.add_argument("--csv", type=Path, default=None, help="write the per-channel rows to this CSV")
    parser.add_argument("--summarize", type=Path, default=None,
                        help="reprint the per-channel table from a CSV written by --csv, without running")
    args = parser.parse_args(argv)
    if args.summarize:
        print_channels(pd.read_csv(args.summarize, keep_default_na=True).fillna({"withheld": ""}))
        return 0
    names = list(WORLDS) if args.worlds == "all" else [] if args.worlds == "none" else args.worlds.split(",")
    unknown = [n for n in names if n not in WORLDS]
    if unknown:
        parser.error(f"unknown world(s) {unknown}; known: {', '.join(WORLDS)}")
    cases = [world_case(n, s) for n in names for s in range(1, args.seeds + 1)]
    if args.public == "yes":
        for reason in public.missing():
            print(f"public dataset skipped: {reason}")
        cases += public_cases()
    if not cases:
        print("nothing to run")
        return 0
    jobs = max(1, min(args.jobs, MAX_JOBS))
    estimation = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.estimation)}
    settings = "overlap gate relaxed (ablation)" if args.relax_overlap else "default settings"
    if estimation:
        settings += f", estimation {estimation} (ablation)"
    print(f"{len(cases)} runs, {jobs} at a time; cmmm at {settings}, every transform left to selection")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(lambda c: run_case(c, args.keep, args.tree, args.relax_overlap, estimation), cases))
    scored_all = []
    by_world: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        scored = score(outcome)
        print_run(outcome, scored)
        scored_all.append(scored)
        by_world.setdefault(outcome.case.world, []).append(outcome)
    table = pd.concat(scored_all, ignore_index=True)
    summaries = {w: world_summary(table[table["world"] == w], o) for w, o in by_world.items()}
    simulated = [w for w in by_world if w in WORLDS]
    if simulated:
        summaries["ALL SIMULATED"] = world_summary(table[table["world"].isin(simulated)],
                                                   [o for w in simulated for o in by_world[w]])
    print_summary(summaries)
    print_channels(table)
    if args.oracle:
        oracles = [oracle_case(c) for c in cases if c.world in WORLDS]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            oracle_outcomes = list(pool.map(lambda c: run_case(c, args.keep, args.tree, args.relax_overlap, estimation),
                                            oracles))
        oracle_table = pd.concat([score(o) for o in oracle_outcomes], ignore_index=True)
        print_oracle(table[table["world"].isin(list(WORLDS))], oracle_table, oracles)
        if args.csv:
            oracle_table.to_csv(args.csv.with_suffix(".oracle.csv"), index=False)
    print(f"\n{len(cases)} runs in {time.perf_counter() - started:.0f} s; "
          f"columns absent from estimates.csv print as n/a")
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pooling across markets on simulated markets with known truths (`cmmm_pipeline/markets/pooling.py`).

(a) Fast layer, the model's own assumptions: per replication, k markets' true ROIs theta_i ~ N(mu, tau^2),
    observed y_i ~ N(theta_i, se_i^2) with se_i known (equal, or spread 10-fold), and a new market's
    theta_new ~ N(mu, tau^2). Printed per (k, tau, se) setting: coverage and mean width of the pooled mean's
    interval (against mu), of the shrunken per-market intervals (against each market's theta_i, beside the
    market's own interval) and of the prediction interval (against theta_new). `--ablation` prints the
    pooled mean's coverage for every tau^2 estimator and mean interval.

(b) End-to-end layer (`--pipeline N`): N markets drawn with the project's simulator, each channel's effect
    (beta) scaled by a market factor 1 + 0.25 z, so the true ROIs differ by market; each market is run
    through `cmmm run` in its own process and folder (the bundled sample's config with the true
    transforms), its estimates.csv read back and all markets pooled. Printed per channel and effect: the
    pooled ROI against the mean of the markets' true ROIs, whether the pooled interval covers it, and the
    shrunken intervals' coverage of each market's true ROI. About 20-40 s per market on this machine.

    python benchmarks/market_pooling.py --reps 1000 --ablation
    python benchmarks/market_pooling.py --pipeline 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmmm_pipeline.markets.pooling import (  # noqa: E402
    MeanInterval,
    Metric,
    PoolingSettings,
    TauEstimator,
    TauUncertainty,
    pool_markets,
    random_effects,
)

MU = 1.5
"""The mean ROI across markets in the fast layer."""
BASE_SE = 0.2
"""A market's standard error (equal setting) or the geometric middle of their spread (unequal)."""
SPREAD = 10.0
"""Unequal setting: standard errors log-uniform over [BASE_SE / sqrt(SPREAD), BASE_SE * sqrt(SPREAD)]."""


@dataclass(frozen=True)
class Setting:
    k: int
    tau: float
    unequal: bool


def settings_grid(ks: list[int], taus: list[float]) -> list[Setting]:
    return [Setting(k, tau, unequal) for k in ks for tau in taus for unequal in (False, True)]


def draw_se(rng: np.random.Generator, k: int, unequal: bool) -> np.ndarray:
    if not unequal:
        return np.full(k, BASE_SE)
    half = np.log(SPREAD) / 2
    return BASE_SE * np.exp(rng.uniform(-half, half, k))


def _coverage(low: np.ndarray | float, high: np.ndarray | float, truth: np.ndarray | float) -> float:
    return float(np.mean((np.asarray(low) <= truth) & (truth <= np.asarray(high))))


def simulate_setting(setting: Setting, reps: int, seed: int, estimator: TauEstimator = TauEstimator.REML,
                     interval: MeanInterval = MeanInterval.HKSJ, both_uncertainties: bool = True) -> dict[str, object]:
    """Coverage and mean width of the intervals over `reps` replications of one setting: the pooled mean's,
    and the shrunken and prediction intervals with tau integrated (default) and, if asked, plugged in."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        acc.setdefault(name, []).append(value)

    for _ in range(reps):
        se = draw_se(rng, setting.k, setting.unequal)
        theta = rng.normal(MU, setting.tau, setting.k)
        y = rng.normal(theta, se)
        theta_new = rng.normal(MU, setting.tau)
        variants = (("", TauUncertainty.INTEGRATED), ("plug_", TauUncertainty.PLUG_IN))
        for tag, uncertainty in variants if both_uncertainties else variants[1:]:
            r = random_effects(y, se, 0.95, estimator, interval, uncertainty)
            low, high = np.array(r.shrunken_ci_low), np.array(r.shrunken_ci_high)
            add(f"{tag}shrunk_cov", _coverage(low, high, theta))
            add(f"{tag}shrunk_width", float(np.mean(high - low)))
            if setting.k >= 3:
                add(f"{tag}pred_cov", _coverage(r.prediction_low, r.prediction_high, theta_new))
                add(f"{tag}pred_width", r.prediction_high - r.prediction_low)
        add("mean_cov", _coverage(r.ci_low, r.ci_high, MU))
        add("mean_width", r.ci_high - r.ci_low)
        add("own_cov", _coverage(y - 1.959964 * se, y + 1.959964 * se, theta))
        add("own_width", float(np.mean(2 * 1.959964 * se)))
    row: dict[str, object] = {"k": setting.k, "tau": setting.tau, "se": "unequal" if setting.unequal else "equal"}
    for name in ("mean_cov", "mean_width", "shrunk_cov", "shrunk_width", "plug_shrunk_cov", "plug_shrunk_width",
                 "own_cov", "own_width", "pred_cov", "pred_width", "plug_pred_cov", "plug_pred_width"):
        row[name] = float(np.mean(acc[name])) if name in acc else float("nan")
    return row


def fast_layer(reps: int, seed: int, ks: list[int], taus: list[float]) -> pd.DataFrame:
    rows = [simulate_setting(s, reps, seed + i) for i, s in enumerate(settings_grid(ks, taus))]
    return pd.DataFrame(rows)


def print_fast(table: pd.DataFrame, reps: int) -> None:
    print(f"(a) simulated markets: mu = {MU}, se = {BASE_SE} (equal) or log-uniform over a {SPREAD:.0f}-fold "
          f"range (unequal), {reps} replications per row; REML tau^2; 95% intervals; coverage / mean width")
    print("    mean: HKSJ interval of the pooled mean vs mu; shrunken: each market's partially pooled interval vs its")
    print("    true ROI, tau integrated (default) and plugged in; own: the market's own interval; prediction: vs a new")
    print("    market's true ROI, tau integrated (default) and plugged in (Higgins-Thompson-Spiegelhalter)")
    print(f"{'k':>3} {'tau':>5} {'se':<7} | {'mean':>11} | {'shrunken':>11} {'plug-in':>11} {'own':>11} | "
          f"{'prediction':>11} {'plug-in':>11}")

    def cell(r: dict, name: str) -> str:
        cov, width = r[f"{name}_cov"], r[f"{name}_width"]
        return f"{'n/a':>11}" if np.isnan(cov) else f"{cov:.3f}/{width:5.2f}"

    for r in table.to_dict("records"):
        print(f"{r['k']:>3} {r['tau']:>5.2f} {r['se']:<7} | {cell(r, 'mean')} | {cell(r, 'shrunk')} "
              f"{cell(r, 'plug_shrunk')} {cell(r, 'own')} | {cell(r, 'pred')} {cell(r, 'plug_pred')}")


def print_ablation(reps: int, seed: int, ks: list[int], taus: list[float]) -> None:
    print(f"\nablation: pooled mean coverage by tau^2 estimator and mean interval ({reps} replications)")
    combos = [(e, i) for e in TauEstimator for i in MeanInterval if i is not MeanInterval.TAU_INTEGRATED]
    print(f"{'k':>3} {'tau':>5} {'se':<7} | " + " ".join(f"{e.value[:5]}/{i.value:<10}" for e, i in combos))
    for k in ks:
        for tau in taus:
            for unequal in (False, True):
                cells = [simulate_setting(Setting(k, tau, unequal), reps, seed, e, i, both_uncertainties=False)
                         for e, i in combos]
                print(f"{k:>3} {tau:>5.2f} {'unequal' if unequal else 'equal':<7} | "
                      + " ".join(f"{c['mean_cov']:>16.3f}" for c in cells))


# --- (b) end to end: the project's simulator and `cmmm run`, one process per market -----------------------

MARKET_SPREAD = 0.25
"""Relative spread of a channel's effect across markets in the end-to-end layer (1 + MARKET_SPREAD z)."""


def run_market(index: int, seed: int, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate market `index`, run the pipeline on it; return its estimates.csv and its true ROI and mROI."""
    from cmmm_pipeline.simulation.simulate import (
        Scenario,
        marginal_truth,
        sample_config_text,
        sample_experiment,
        simulate,
    )

    rng = np.random.default_rng(seed * 1000 + index)
    scenario = Scenario()
    for name, channel in scenario.channels.items():
        scenario = scenario.with_beta(name, channel.beta * max(0.2, 1.0 + MARKET_SPREAD * rng.normal()))
    result = simulate(scenario, seed=seed * 1000 + index)
    truth = result.truth.merge(marginal_truth(scenario, seed=seed * 1000 + index), on=["channel", "effect"])
    market = folder / f"market_{index}"
    market.mkdir(parents=True)
    data = result.data
    data.assign(week=data["week"].dt.strftime("%Y-%m-%d")).to_csv(market / "weekly.csv", index=False)
    (market / "config.yaml").write_text(sample_config_text(sample_experiment(result)), encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), GX_ANALYTICS_ENABLED="False")
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-m", "cmmm_pipeline.cli", "run", "--config", str(market / "config.yaml"),
                           "--output", str(market / "out"), "--warehouse", str(market / "mmm.duckdb")],
                          env=env, cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"market {index}: cmmm run failed\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    estimates = pd.read_csv(market / "out" / "estimates.csv").assign(market=f"market_{index}")
    return estimates, truth.assign(market=f"market_{index}")[["market", "channel", "effect", "roi", "mroi"]]


def _inside(low: pd.Series, high: pd.Series, truth: pd.Series) -> pd.Series:
    return (low <= truth) & (truth <= high)


def pipeline_layer(n: int, seed: int) -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cmmm-pooling-") as tmp:
        runs = [run_market(i, seed, Path(tmp)) for i in range(n)]
    elapsed = time.perf_counter() - start
    estimates = pd.concat([e for e, _ in runs], ignore_index=True)
    truth = pd.concat([t for _, t in runs], ignore_index=True).melt(
        id_vars=["market", "channel", "effect"], value_vars=[m.value for m in Metric], var_name="metric",
        value_name="truth")
    pooling = pool_markets(estimates, PoolingSettings())
    keys = ["channel", "effect", "metric"]
    mean_truth = truth.groupby(keys)["truth"].mean().rename("true_mean").reset_index()
    table = pooling.pooled.merge(mean_truth, on=keys)
    table["covers"] = _inside(table["ci_low"], table["ci_high"], table["true_mean"])
    shrunken = pooling.shrunken.merge(truth, on=["market", *keys])
    shrunken["covered"] = _inside(shrunken["shrunken_ci_low"], shrunken["shrunken_ci_high"], shrunken["truth"])
    shrunken["own_covered"] = _inside(shrunken["ci_low"], shrunken["ci_high"], shrunken["truth"])
    shrunken["error"] = (shrunken["shrunken"] - shrunken["truth"]).abs()
    shrunken["own_error"] = (shrunken["estimate"] - shrunken["truth"]).abs()
    per = shrunken.groupby(keys).agg(shrunk_cov=("covered", "mean"), own_cov=("own_covered", "mean"))
    table = table.merge(per.reset_index(), on=keys)
    print(f"\n(b) end to end: {n} markets from cmmm_pipeline.simulation (beta x (1 + {MARKET_SPREAD} z) per market, "
          f"seed {seed}), each through `cmmm run`; {elapsed:.0f} s in all ({elapsed / n:.0f} s per market)")
    print(f"{'channel':<9} {'effect':<9} {'metric':<5} {'k':>2} {'pooled':>7} {'95% interval':>18} {'true mean':>9} "
          f"{'covers':>6} {'tau':>6} {'I2':>5} | {'shrunk cov':>10} {'own cov':>7}")
    for r in table.to_dict("records"):
        print(f"{r['channel']:<9} {r['effect']:<9} {r['metric']:<5} {r['k_markets']:>2} {r['pooled']:>7.3f} "
              f"[{r['ci_low']:>7.3f}, {r['ci_high']:>7.3f}] {r['true_mean']:>9.3f} {'yes' if r['covers'] else 'NO':>6} "
              f"{r['tau']:>6.3f} {r['i2']:>5.2f} | {r['shrunk_cov']:>10.2f} {r['own_cov']:>7.2f}")
    print(f"pooled intervals cover the markets' mean truth in {int(table['covers'].sum())} of {len(table)} rows; "
          f"shrunken intervals cover the market's truth in {shrunken['covered'].mean():.2f} of {len(shrunken)} "
          f"(the markets' own intervals: {shrunken['own_covered'].mean():.2f}); mean absolute error shrunken "
          f"{shrunken['error'].mean():.3f} vs own {shrunken['own_error'].mean():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1000, help="replications per setting of the fast layer")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 5, 10, 20], help="numbers of markets")
    parser.add_argument("--tau", type=float, nargs="+", default=[0.0, 0.15, 0.4], help="between-market sd")
    parser.add_argument("--ablation", action="store_true", help="pooled coverage by estimator and interval")
    parser.add_argument("--pipeline", type=int, default=0, metavar="N", help="also run N simulated markets end to end")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_fast(fast_layer(args.reps, args.seed, args.k, args.tau), args.reps)
    print(f"fast layer: {time.perf_counter() - start:.0f} s")
    if args.ablation:
        print_ablation(max(args.reps // 2, 200), args.seed, [k for k in args.k if k >= 3], args.tau)
    if args.pipeline:
        pipeline_layer(args.pipeline, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

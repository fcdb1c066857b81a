"""How the many-markets job scales: N simulated markets (each 156 weeks, the sample's four channels, or
more with `--channels`: independent ones of known transform and effect; each market its own true ROIs)
through `cmmm_markets`, on the multiprocess executor or a local Dask cluster.

Prints the CPU seconds of each of three markets run in turn in one process (after the first: the compute
of one more market) and that process's peak memory; then, per market count: wall time, wall time per
market, the marginal wall time of one more market (against the 1-market row), the markets published, the
pooled TV ROI against the markets' mean true ROI, and per channel the median relative error and the
coverage of the published per-market ROIs (the estimand `benchmarks/external/pymc_markets.py` prints).
Wall time is the figure that counts for a run of many markets: their CPU is spent in forked and cluster
processes that are not this process's children.

    python benchmarks/markets_scaling.py --markets 1 5 20                 # multiprocess, default settings
    python benchmarks/markets_scaling.py --markets 20 --executor dask     # a LocalCluster, 2 workers
    python benchmarks/markets_scaling.py --markets 2 10 --fast            # B = 50, 2 refuter runs
    python benchmarks/markets_scaling.py --markets 200 --channels 20      # the 200 × 20-channel target
    python benchmarks/markets_scaling.py --markets --before ../old --rounds 3   # one market's CPU, old vs new
    python benchmarks/markets_scaling.py --markets --parallel             # what two cores give over one
    python benchmarks/markets_scaling.py --markets --instance all --rounds 3    # what recording a run costs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
FAST = "estimation: {bootstrap_samples: 50, refuter_simulations: 2, null_test_samples: 0}\n"
COMPUTE_MARKETS = 3


def write_world(folder: Path, n_markets: int, channels: int, fast: bool) -> None:
    """The markets export, with `channels` − 4 independent channels added to every market: one
    transform per channel (the config's), each market its own spend and effect size (a log-normal
    market factor of spread 0.25, as the sample's channels have), their true ROIs in truth.csv."""
    import numpy as np
    import pandas as pd
    import yaml

    from benchmarks.refresh_speed import extra_channel, extra_channel_config, extra_channel_effect
    from cmmm_pipeline.simulation.markets import MARKET_COLUMN, write_markets

    write_markets(folder, n_markets, estimation=FAST if fast else "")
    if channels <= 4:
        return
    data, truth = pd.read_csv(folder / "weekly.csv"), pd.read_csv(folder / "truth.csv")
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    rng = np.random.default_rng([17, n_markets, channels])
    markets = list(dict.fromkeys(data[MARKET_COLUMN]))
    rows = data.groupby(MARKET_COLUMN, sort=False).indices
    added = []
    for j in range(channels - 4):
        name = f"ch{j:02d}"
        size = rng.uniform(200.0, 800.0)
        column = np.zeros(len(data))
        transform = None
        for market in markets:
            index = rows[market]
            spend, drawn = extra_channel(rng, len(index))
            transform = transform or drawn  # the first market's; later draws only keep the quoted runs' stream
            effect = extra_channel_effect(spend, transform, size * float(np.exp(rng.normal(0.0, 0.25))))
            column[index] = spend
            data.loc[index, "sales"] += effect
            added.append({MARKET_COLUMN: market, "channel": name, "effect": "total",
                          "incremental_kpi": float(effect.sum()), "spend": float(spend.sum()),
                          "roi": float(effect.sum() / spend.sum())})
        data[f"{name}_spend"] = column
        config["channels"][name] = extra_channel_config(name, transform)
        config["graph"]["edges"].append([name, "sales"])
    data["sales"] = data["sales"].round(2)
    data.to_csv(folder / "weekly.csv", index=False)
    pd.concat([truth, pd.DataFrame(added)], ignore_index=True).to_csv(folder / "truth.csv", index=False)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


INSTANCES = {
    "memory": "instance = DagsterInstance.ephemeral()\n",
    "sqlite": "import tempfile\nfrom cmmm_pipeline.run import NO_CAPTURE\n"
              "instance = DagsterInstance.local_temp(tempfile.mkdtemp(dir=sys.argv[2]), overrides=NO_CAPTURE)\n",
    "postgres": "instance = DagsterInstance.get()\n",
}
"""Where the one-process compute records its runs: in memory; in a SQLite instance on disk, as
`run_markets` records every market's run when DAGSTER_HOME is unset (its temporary instance); or in
PostgreSQL, as production does (`deploy/dagster.yaml`, a local server started for the benchmark)."""


@contextmanager
def postgres_home(folder: Path) -> Iterator[dict[str, str] | None]:
    """The environment of a DAGSTER_HOME whose instance is `deploy/dagster.yaml`'s PostgreSQL one on a
    local server (`tests/postgres_server.py`), output capture off as `run_markets` sets it; None, with
    the reason printed, where no server can start here."""
    import yaml

    from cmmm_pipeline.run import NO_CAPTURE
    from tests.postgres_server import PostgresUnavailable, local_postgres

    try:
        with local_postgres() as server:
            home = folder / "pg_home"
            home.mkdir()
            settings = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
            (home / "dagster.yaml").write_text(yaml.safe_dump({**settings, **NO_CAPTURE}), encoding="utf-8")
            yield {**server.env(), "DAGSTER_HOME": str(home)}
    except PostgresUnavailable as why:
        print(f"no PostgreSQL instance: {why}", flush=True)
        yield None


def one_process_compute(folder: Path, tree: Path = ROOT, instance: str = "memory",
                        env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """The three markets of the export in `folder` (`write_world`), their partitions run one after
    the other in one child process of the checkout `tree`, recorded in an `INSTANCES` instance: its
    peak RSS in GB, and the CPU seconds of each market (the first pays for the imports and the caches;
    the others are the compute of one more market)."""
    from benchmarks.refresh_speed import child
    from cmmm_pipeline.simulation.markets import market_names

    out = Path(tempfile.mkdtemp(prefix="out-", dir=folder))  # unique: two may run at once (--parallel)
    script = ("import sys, time\n"
              "from dagster import DagsterInstance\n"
              "from cmmm_pipeline.run import run_market\n"
              + INSTANCES[instance] +
              "for market in sys.argv[3:]:\n"
              "    start = time.process_time()\n"
              "    o = run_market(sys.argv[1], sys.argv[2], sys.argv[2] + '/cmmm.duckdb', market, instance)\n"
              "    assert o.success, o.error\n"
              "    print('cpu', time.process_time() - start, flush=True)\n")
    cost, text = child(["-c", script, str(folder / "config.yaml"), str(out), *market_names(COMPUTE_MARKETS)], tree,
                       env)
    return cost.peak_mb / 1024, [float(line.split()[1]) for line in text.splitlines() if line.startswith("cpu ")]


def parallel_throughput(folder: Path) -> None:
    """The one-process compute alone, then two of it at once: the wall time of each and the throughput
    two processes give over one (2 on two free cores; less where the cores are shared or throttled)."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    one_process_compute(folder)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: one_process_compute(folder), range(2)))
    both = time.perf_counter() - start
    print(f"one-process compute alone: wall {alone:.1f} s; two at once: wall {both:.1f} s; throughput of two "
          f"processes over one: {2 * alone / both:.2f}", flush=True)


def run(n_markets: int, executor: str, fast: bool, folder: Path, channels: int) -> dict[str, float]:
    import pandas as pd

    from cmmm_pipeline.run import run_markets

    write_world(folder, n_markets, channels, fast)
    output = folder / "out"
    os.environ["CMMM_EXECUTOR"] = executor
    start = time.perf_counter()
    if executor == "dask":
        import distributed

        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            os.environ["CMMM_DASK_SCHEDULER"] = cluster.scheduler_address
            outcome = run_markets(str(folder / "config.yaml"), str(output), str(output / "cmmm.duckdb"))
    else:
        outcome = run_markets(str(folder / "config.yaml"), str(output), str(output / "cmmm.duckdb"))
    wall = time.perf_counter() - start
    for market in outcome.markets:
        if not market.success:
            print(f"  market {market.market} failed: {market.error[:600]}", flush=True)
    if outcome.error:
        print(f"  {outcome.error[:600]}", flush=True)
    truth = pd.read_csv(folder / "truth.csv")
    true_tv = truth[(truth["channel"] == "tv") & (truth["effect"] == "total")]["roi"].mean()
    pooled = outcome.pooled
    tv = pooled[(pooled["channel"] == "tv") & (pooled["effect"] == "total") & (pooled["metric"] == "roi")] \
        if not pooled.empty else pooled
    return {"markets": n_markets, "published": sum(m.success for m in outcome.markets), "wall": wall,
            "pooled_tv": float(tv["pooled"].iloc[0]) if len(tv) else float("nan"), "true_tv": true_tv,
            "accuracy": direct_accuracy(output, truth)}


def direct_truth(truth: "pd.DataFrame") -> "pd.DataFrame":
    """Per market and channel, the simulator's ROI of the direct effect where it splits one (TV, through
    search), else of the total: what a model holding the other channels fixed estimates."""
    return (truth[truth["effect"].isin(["direct", "total"])].sort_values("effect")
            .drop_duplicates(["market", "channel"])[["market", "channel", "effect", "roi"]])


def channel_accuracy(rows: "pd.DataFrame") -> dict[str, tuple[float, float]]:
    """Channel → (median relative error of `roi` against `roi_true`, share of [`roi_ci_low`,
    `roi_ci_high`] that cover it)."""
    out = {}
    for channel, r in rows.groupby("channel", sort=False):
        error = (r["roi"] / r["roi_true"] - 1.0).abs()
        covered = (r["roi_ci_low"] <= r["roi_true"]) & (r["roi_true"] <= r["roi_ci_high"])
        out[str(channel)] = (float(error.median()), float(covered.mean()))
    return out


def direct_accuracy(output: Path, truth: "pd.DataFrame") -> dict[str, tuple[float, float]]:
    """`channel_accuracy` of the published per-market ROIs against `direct_truth`: the estimand
    `benchmarks/external/pymc_markets.py` prints."""
    from cmmm_pipeline.data.markets import published_estimates

    estimates, _ = published_estimates(output / "cmmm.duckdb", sorted(truth["market"].unique()))
    return channel_accuracy(estimates.merge(direct_truth(truth), on=["market", "channel", "effect"],
                                            suffixes=("", "_true")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markets", type=int, nargs="*", default=[1, 5, 20], help="market counts (none: only "
                        "the one-process compute)")
    parser.add_argument("--before", type=Path, help="another checkout: its one-process compute, interleaved")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the one-process compute")
    parser.add_argument("--executor", choices=["multiprocess", "dask"], default="multiprocess")
    parser.add_argument("--channels", type=int, default=4, help="channels per market (4: the sample's)")
    parser.add_argument("--fast", action="store_true", help="B = 50 and 2 refuter runs instead of the defaults")
    parser.add_argument("--instance", choices=[*INSTANCES, "all"], default="memory",
                        help="where the one-process compute records its runs (all: each in turn, per round)")
    parser.add_argument("--parallel", action="store_true", help="also the one-process compute alone, then two "
                        "at once: what two cores give over one")
    args = parser.parse_args()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    print(f"executor {args.executor}, {args.channels} channels, "
          f"{'fast' if args.fast else 'default'} estimation settings, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="cmmm-markets-") as tmp, ExitStack() as stack:
        write_world(Path(tmp) / "one", COMPUTE_MARKETS, args.channels, args.fast)
        kinds = list(INSTANCES) if args.instance == "all" else [args.instance]
        postgres_env = stack.enter_context(postgres_home(Path(tmp))) if "postgres" in kinds else None
        kinds = [k for k in kinds if k != "postgres" or postgres_env is not None]
        trees = [("this", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
        for _ in range(args.rounds):  # interleaved: this machine's speed drifts by tens of percent
            for (label, tree), kind in ((t, k) for t in trees for k in kinds):
                peak, cpu = one_process_compute(Path(tmp) / "one", tree, kind,
                                                postgres_env if kind == "postgres" else None)
                print(f"[{label}, {kind} instance] one process, {COMPUTE_MARKETS} markets in turn: CPU s per market "
                      + ", ".join(f"{c:.2f}" for c in cpu) + f" (after the first: {sum(cpu[1:]) / len(cpu[1:]):.2f} s);"
                      f" peak memory {peak:.2f} GB", flush=True)
        if args.parallel:
            parallel_throughput(Path(tmp) / "one")
        if args.markets:
            print(f"{'markets':>7} {'published':>9} {'wall s':>8} {'wall/market':>11} "
                  f"{'marginal s':>10} {'pooled TV ROI':>13} {'true mean':>9}")
        first_wall = None
        for n in args.markets:
            row = run(n, args.executor, args.fast, Path(tmp) / f"m{n}", args.channels)
            first_wall = row["wall"] if first_wall is None and n == 1 else first_wall
            marginal = (row["wall"] - first_wall) / (n - 1) if first_wall is not None and n > 1 else float("nan")
            print(f"{n:>7} {row['published']:>9} {row['wall']:>8.1f} {row['wall'] / n:>11.1f} "
                  f"{marginal:>10.1f} {row['pooled_tv']:>13.3f} {row['true_tv']:>9.3f}", flush=True)
            print("        ROI per channel (direct where split), median relative error / coverage: "
                  + "  ".join(f"{c} {e:.3f} / {v:.2f}" for c, (e, v) in row["accuracy"].items()), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

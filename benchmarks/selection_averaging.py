"""Ablation: the selected transforms (the CV minimum) against averaging the estimates over the
near-equivalent transforms (`estimation.selection_average: true`, weights from each model's
out-of-sample predictive likelihood), each against the oracle, on the same worlds.

It reads the per-channel CSVs the two families' benchmarks write, run once at default settings and
once with the candidate:

    python -m benchmarks.heldout.run --worlds seed_graph,always_on --seeds 2 --public no --oracle \\
        --csv /tmp/ho/default.csv
    python -m benchmarks.heldout.run --worlds seed_graph,always_on --seeds 2 --public no \\
        --estimation selection_average=true --csv /tmp/ho/avg.csv
    python -m benchmarks.external.simmmulator --seeds 1-4 --csv /tmp/sim/default.csv
    python -m benchmarks.external.simmmulator --seeds 1-4 --estimation selection_average=true \\
        --csv /tmp/sim/avg.csv
    python -m benchmarks.selection_averaging --heldout /tmp/ho/default.csv /tmp/ho/avg.csv \\
        --simmmulator /tmp/sim/default.csv /tmp/sim/avg.csv

Any other candidate run the same way is compared by the same call (`--candidate` names it), e.g. a
larger saturation grid run from a variant tree (`--tree`).

Printed per world and pooled: ROI and mROI median relative error of the minimum, of the average and of
the oracle, the ratios to the oracle (the issue's target: ≤ 1.3) and the coverage of each, over
channels with an effect (a null channel's truth is 0: its error is absolute and it is left out).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

KEYS = ["world", "seed", "channel"]


def _median(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.median()) if len(s) else math.nan


def _mean(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.mean()) if len(s) else math.nan


def _f(v: float, spec: str = ".3f") -> str:
    return "n/a" if isinstance(v, float) and math.isnan(v) else format(v, spec)


def heldout_rows(default: Path, candidate: Path) -> pd.DataFrame:
    """One row per world, seed and channel: the errors and coverage of the minimum, the average and
    the oracle (`<default>.oracle.csv`, written by `run.py --oracle --csv`)."""
    base = pd.read_csv(default)
    oracle = pd.read_csv(default.with_suffix(".oracle.csv"))
    avg = pd.read_csv(candidate)
    cols = KEYS + ["roi_err", "mroi_err", "roi_cover", "mroi_cover"]
    out = base[cols + ["null", "refused"]].merge(avg[cols], on=KEYS, suffixes=("", "_avg"))
    return out.merge(oracle[cols].rename(columns={c: f"{c}_o" for c in cols if c not in KEYS}), on=KEYS)


def simmmulator_rows(default: Path, candidate: Path) -> pd.DataFrame:
    base, avg = pd.read_csv(default), pd.read_csv(candidate)
    base["world"] = avg["world"] = "simmmulator"
    cols = KEYS + ["roi_err", "mroi_err", "roi_cover", "mroi_cover"]
    out = base[cols + ["roi_oracle_err", "mroi_oracle_err", "roi_oracle_cover", "mroi_oracle_cover", "roi_truth"]]
    out = out.rename(columns={"roi_oracle_err": "roi_err_o", "mroi_oracle_err": "mroi_err_o",
                              "roi_oracle_cover": "roi_cover_o", "mroi_oracle_cover": "mroi_cover_o"})
    out = out.assign(null=out["roi_truth"] == 0, refused=False).drop(columns="roi_truth")
    return out.merge(avg[cols], on=KEYS, suffixes=("", "_avg"))


def print_ablation(rows: pd.DataFrame) -> None:
    effect = rows[~rows["null"].astype(bool) & ~rows["refused"].astype(bool)]
    print(f"{'world':<18} {'rows':>4} | {'ROI min':>7} {'avg':>6} {'oracle':>6} {'min/o':>5} {'avg/o':>5} "
          f"{'cov min':>7} {'avg':>5} {'o':>5} || {'mROI min':>8} {'avg':>6} {'oracle':>6} {'min/o':>5} {'avg/o':>5} "
          f"{'cov min':>7} {'avg':>5} {'o':>5}")
    for world, g in [*effect.groupby("world", sort=False), ("ALL", effect)]:
        cells = []
        for t in ("roi", "mroi"):
            m, a, o = _median(g[f"{t}_err"]), _median(g[f"{t}_err_avg"]), _median(g[f"{t}_err_o"])
            cells.append(f"{_f(m):>{8 if t == 'mroi' else 7}} {_f(a):>6} {_f(o):>6} "
                         f"{_f(m / o if o else math.nan, '.2f'):>5} {_f(a / o if o else math.nan, '.2f'):>5} "
                         f"{_f(_mean(g[f'{t}_cover']), '.2f'):>7} {_f(_mean(g[f'{t}_cover_avg']), '.2f'):>5} "
                         f"{_f(_mean(g[f'{t}_cover_o']), '.2f'):>5}")
        print(f"{world:<18} {len(g):>4} | {cells[0]} || {cells[1]}")
    print("\nper channel (error: minimum -> average, oracle)")
    for r in effect.itertuples(index=False):
        print(f"  {r.world:<18} {r.seed:>3} {r.channel:<16} ROI {_f(r.roi_err)} -> {_f(r.roi_err_avg)} "
              f"({_f(r.roi_err_o)})   mROI {_f(r.mroi_err)} -> {_f(r.mroi_err_avg)} ({_f(r.mroi_err_o)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", nargs=2, type=Path, metavar=("DEFAULT_CSV", "CANDIDATE_CSV"))
    parser.add_argument("--simmmulator", nargs=2, type=Path, metavar=("DEFAULT_CSV", "CANDIDATE_CSV"))
    parser.add_argument("--candidate", default="averaged over the near-equivalent transforms",
                        help="what the candidate runs changed (printed; the column stays 'avg')")
    args = parser.parse_args(argv)
    if args.heldout:
        print(f"=== held-out family: selected minimum vs {args.candidate} ('avg') vs oracle")
        print_ablation(heldout_rows(*args.heldout))
    if args.simmmulator:
        print("\n=== pysimmmulator family (oracle: OLS on the true response, outside the pipeline)")
        print_ablation(simmmulator_rows(*args.simmmulator))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

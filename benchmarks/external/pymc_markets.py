"""PyMC-Marketing's multi-market MMM on the markets benchmark's export: wall time, as a ratio to ours.

Benchmark only, never a dependency of the pipeline: pymc-marketing 1.3.0 needs Python 3.12 or newer and
runs in its own environment. Three steps (the export is `benchmarks/markets_scaling.py`'s, seed 11):

    python3.12 -m venv /tmp/pymc && /tmp/pymc/bin/pip install pymc-marketing==1.3.0      # ~4 min
    .venv/bin/python -c "from cmmm_pipeline.simulation.markets import write_markets; \\
        write_markets('/tmp/m20', 20)"                                                    # the project's venv
    /tmp/pymc/bin/python benchmarks/external/pymc_markets.py /tmp/m20 --markets 1 20 --ours 23.2 102.3

`--ours` takes the wall seconds `benchmarks/markets_scaling.py --markets 1 20` printed for the same
market counts on this machine. For each count it fits PyMC-Marketing's MMM as a user of it would fit
markets (one model with `dims=("market",)`, whose parameters are partially pooled across markets;
geometric adstock up to 8 weeks, logistic saturation, yearly seasonality of order 2, price and a
linear trend as controls; NUTS, 2 chains of 400 draws after 400 tuning steps, on 2 cores) and prints
its wall time (model build and sampling), the ratio to ours, and per channel the median relative error
of its ROI (posterior mean of the channel's contribution over its spend) against the simulator's
direct-effect ROI, with how often the 95% posterior interval covers it. Its channel contribution holds
the other channels fixed, so the direct effect is its estimand (for every channel but TV, the total).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.markets_scaling import channel_accuracy, direct_truth  # noqa: E402  (numpy and pandas only)

CHANNELS = ("tv", "search", "digital", "email")
DRAWS = 400
TUNE = 400
L_MAX = 8
SEED = 11


def fit_markets(data: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """(per market and channel: ROI mean, 2.5% and 97.5% quantiles), wall seconds of build and sampling."""
    from pymc_marketing.mmm import MMM, GeometricAdstock, LogisticSaturation

    columns = [f"{c}_spend" for c in CHANNELS]
    x = data[["week", "market", *columns, "price"]].copy()
    x["week"] = pd.to_datetime(x["week"])
    index = x.groupby("market").cumcount().to_numpy(dtype=float)
    x["trend"] = index / max(index.max(), 1.0)
    x["price"] = x["price"] / x["price"].abs().max()  # controls are not scaled by the model (its docs)
    started = time.perf_counter()
    mmm = MMM(date_column="week", channel_columns=columns, target_column="sales", dims=("market",),
              control_columns=["price", "trend"], adstock=GeometricAdstock(l_max=L_MAX),
              saturation=LogisticSaturation(), yearly_seasonality=2)
    mmm.build_model(x, data["sales"])
    mmm.add_original_scale_contribution_variable(var=["channel_contribution"])
    mmm.fit(x, data["sales"], chains=2, cores=2, draws=DRAWS, tune=TUNE, random_seed=SEED, progressbar=False)
    seconds = time.perf_counter() - started
    contribution = mmm.idata.posterior["channel_contribution_original_scale"].sum("date")  # chain, draw, market, channel
    spend = data.groupby("market")[columns].sum()
    rows = []
    for market in spend.index:
        for channel, column in zip(CHANNELS, columns):
            roi = contribution.sel(market=market, channel=column).values.ravel() / float(spend.loc[market, column])
            rows.append({"market": market, "channel": channel, "roi": float(roi.mean()),
                         "roi_ci_low": float(np.quantile(roi, 0.025)), "roi_ci_high": float(np.quantile(roi, 0.975))})
    return pd.DataFrame(rows), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="a folder `write_markets` wrote (weekly.csv, truth.csv)")
    parser.add_argument("--markets", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--ours", type=float, nargs="*", default=[],
                        help="our wall seconds for the same market counts (markets_scaling.py)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    weekly = pd.read_csv(args.export / "weekly.csv")
    truth = direct_truth(pd.read_csv(args.export / "truth.csv")).drop(columns="effect")
    markets = list(dict.fromkeys(weekly["market"]))
    ours = dict(zip(args.markets, args.ours))
    print(f"{'markets':>7} {'pymc-marketing s':>16} {'ours s':>7} {'ratio':>6}   "
          + "  ".join(f"{c + ' err / cover':>18}" for c in CHANNELS))
    for n in args.markets:
        if n > len(markets):
            raise SystemExit(f"the export holds {len(markets)} markets, not {n}")
        estimates, seconds = fit_markets(weekly[weekly["market"].isin(markets[:n])])
        accuracy = channel_accuracy(estimates.merge(truth, on=["market", "channel"], suffixes=("", "_true")))
        mine = ours.get(n, float("nan"))
        cells = "  ".join(f"{accuracy[c][0]:>11.3f} / {accuracy[c][1]:4.2f}" for c in CHANNELS)
        print(f"{n:>7} {seconds:>16.1f} {mine:>7.1f} {seconds / mine:>6.1f}   {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

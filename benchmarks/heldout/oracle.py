"""The held-out worlds' difficulty: what an oracle that knows every true transform recovers.

Per world and seed: OLS of sales on each channel's true response (true carryover and saturation),
a linear trend and two Fourier harmonics, with a HAC (Newey–West, 3 lags) interval. The ROI of a
channel without a mediator is then its coefficient times its summed response over its spend, and
equals the truth by intervention up to noise. TV is left out (its total runs through search and
this regression holds search fixed). The printed median relative error and 95% coverage are the
floor the pipeline can approach on that world: it must select the transforms as well.

    python -m benchmarks.heldout.oracle --seeds 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import statsmodels.api as sm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.heldout.worlds import WEEKS_PER_YEAR, WORLDS, World, carry, simulate_world

Z95 = 1.959964


def oracle_rows(world: World, seed: int) -> list[tuple[str, float, float, bool]]:
    """(channel, truth, estimate, covered) for every channel except TV."""
    draw = simulate_world(world, seed)
    n = world.n_weeks
    media = {c: ch.response(carry(draw.data[f"{c}_spend"].to_numpy(), ch.carryover)) for c, ch in world.channels.items()}
    w = 2 * np.pi * np.arange(n) / WEEKS_PER_YEAR
    controls = [np.arange(n) / WEEKS_PER_YEAR, np.sin(w), np.cos(w), np.sin(2 * w), np.cos(2 * w)]
    design = sm.add_constant(np.column_stack([media[c] for c in world.channels] + controls))
    fit = sm.OLS(draw.data["sales"].to_numpy(), design).fit(cov_type="HAC", cov_kwds={"maxlags": 3})
    truth = draw.truth.set_index("channel")
    rows = []
    for i, channel in enumerate(world.channels, start=1):
        if channel == "tv":
            continue
        per_coef = media[channel].sum() / truth.loc[channel, "spend"]
        est, se = fit.params[i] * per_coef, fit.bse[i] * per_coef
        rows.append((channel, float(truth.loc[channel, "roi"]), float(est), bool(abs(est - truth.loc[channel, "roi"]) <= Z95 * se)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"oracle (true transforms, OLS + HAC), {args.seeds} seeds per world; channels with an effect, TV left out")
    print(f"{'world':<18} {'ROI err':>7} {'cover':>5}   per channel: median relative error")
    for name, world in WORLDS.items():
        rows = [r for s in range(1, args.seeds + 1) for r in oracle_rows(world, s)]
        effect = [r for r in rows if r[1] != 0]
        errs = [abs(e - t) / abs(t) for _, t, e, _ in effect]
        per = {c: np.median([abs(e - t) / abs(t) for ch, t, e, _ in effect if ch == c]) for c in dict.fromkeys(r[0] for r in effect)}
        print(f"{name:<18} {np.median(errs):>7.3f} {np.mean([r[3] for r in effect]):>5.2f}   "
              + ", ".join(f"{c} {v:.2f}" for c, v in per.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

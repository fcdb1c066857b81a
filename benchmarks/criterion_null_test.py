"""The selection-aware test of no effect under each selection criterion and CV scheme: false alarms, power and the
null dispersion on held-out worlds with every transform selected.

A criterion that picks, for a channel without effect, the curve that fits the noise best inflates the
channel's t-statistic; the test (effects/null_test.py) re-runs the selection on null datasets and
measures that inflation (`null_dispersion`), so its p-value stays calibrated, and what the inflation
costs shows as power. Printed per world and seed every channel's p-value and dispersion, then per
criterion the rejections at 5% of the channels with an effect and of the null ones.

    python -m benchmarks.criterion_null_test --world ten_channels --seeds 8 --criteria cv_min,in_sample
    python -m benchmarks.criterion_null_test --world ten_channels --seeds 8 --criteria cv_min --schemes forward,blocked
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from benchmarks.heldout.null_study import problem_for
from benchmarks.heldout.worlds import WORLDS
from cmmm_pipeline.core.config import CvScheme, EffectType, SelectionCriterion
from cmmm_pipeline.effects.null_test import null_test
from cmmm_pipeline.media.selection import SelectionSettings

LEVEL = 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="ten_channels")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--criteria", default="cv_min,in_sample")
    parser.add_argument("--schemes", default="forward", help="CV schemes (forward, blocked), each with every criterion")
    parser.add_argument("--samples", type=int, default=99, help="null datasets per test")
    args = parser.parse_args(argv)
    nulls = set(WORLDS[args.world].nulls)
    tally: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for criterion, scheme in [(c, s) for s in args.schemes.split(",") for c in args.criteria.split(",")]:
        selection = SelectionSettings(criterion=SelectionCriterion(criterion), scheme=CvScheme(scheme))
        name = criterion if scheme == CvScheme.FORWARD.value else f"{criterion}/{scheme}"
        for seed in range(1, args.seeds + 1):
            problem = problem_for(args.world, seed, selection)
            cells = []
            for spec in problem.specs:
                if spec.effect is not EffectType.TOTAL:
                    continue
                test = null_test(problem, spec, selection, block_length=4, samples=args.samples,
                                 rng=np.random.default_rng(seed))
                tally.setdefault((name, spec.channel in nulls), []).append((test.p_value, test.dispersion))
                cells.append(f"{spec.channel} p={test.p_value:.3f} d={test.dispersion:.2f}")
            print(f"{name:10s} {args.world} seed {seed}: {'; '.join(cells)}", flush=True)
    print(f"\nrejections at {LEVEL:.0%} and median null dispersion ({args.world}, seeds 1-{args.seeds}; "
          f"null channels: {', '.join(sorted(nulls))})")
    for (name, is_null), rows in sorted(tally.items()):
        rejected = sum(p < LEVEL for p, _ in rows)
        print(f"  {name:14s} {'null  ' if is_null else 'effect'} {rejected:3d}/{len(rows):3d} "
              f"median dispersion {statistics.median(d for _, d in rows):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

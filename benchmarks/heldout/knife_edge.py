"""The overlap knife edge on the held-out run that showed it: TV in `ten_always_on` seed 9 was withheld
by the hard cut at "spread 0.09 < 0.1" (docs/accuracy.md). Runs that world as a user would and prints
every channel's estimate against the truth and TV's overlap strata.

    python -m benchmarks.heldout.knife_edge [--world ten_always_on --seed 9]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.heldout.run import run_case, score, world_case  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="ten_always_on")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--channel", default="tv")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="knife-edge-") as tmp:
        keep = Path(tmp)
        outcome = run_case(world_case(args.world, args.seed), keep)
        print("refused" if outcome.refused else "crashed" if outcome.crashed else
              f"published in {outcome.seconds:.0f} s", outcome.rules)
        scored = score(outcome)
        print(scored[["channel", "withheld", "roi_truth", "roi", "roi_cover", "mroi_truth", "mroi",
                      "mroi_cover"]].to_string(index=False))
        overlap_csv = keep / f"{args.world}-{args.seed}" / "out" / "overlap.csv"
        if overlap_csv.exists():
            overlap = pd.read_csv(overlap_csv)
            print(overlap[overlap["channel"] == args.channel][["channel", "stratum", "weeks", "spread", "ok",
                                                              "reason"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

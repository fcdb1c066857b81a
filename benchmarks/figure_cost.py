"""What the report's small-multiple figures cost as channels grow: the response curves and the
quarterly chart of a real run's own inputs, on 4 and 20 channels (`refresh_speed.write_world`).

Prints, per figure, the Python calls cProfile counts while it is built and encoded (deterministic:
the figure's own work, whatever the machine's speed) and the CPU seconds of its fastest of three
draws. With `--before <checkout>`, the same inputs are drawn by that checkout's plotting code too.

    python benchmarks/figure_cost.py [--channels 4 20] [--before ../old]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

MEASURE = """
import cProfile, pickle, pstats, sys, time
import cmmm_pipeline.publish.plots as plots
inputs = pickle.load(open(sys.argv[1], "rb"))
def figure(name):  # SVG since the release that stopped rasterising them; PNG in checkouts before it
    return getattr(plots, name + "_svg", None) or getattr(plots, name + "_png")
for name, draw in (("response curves", figure("response_curves")), ("quarterly", figure("quarterly_effects"))):
    args = inputs[name]
    draw(*args)  # fonts and caches warm
    seconds = []
    for _ in range(3):
        start = time.process_time()
        draw(*args)
        seconds.append(time.process_time() - start)
    profile = cProfile.Profile()
    profile.enable()
    draw(*args)
    profile.disable()
    print(name, pstats.Stats(profile).total_calls, min(seconds), flush=True)
"""


def capture(channels: int, folder: Path) -> Path:
    """One refresh of a `channels`-channel world, in this process, keeping the figure inputs."""
    import cmmm_pipeline.publish.report as report
    from benchmarks.refresh_speed import refresh, write_world

    kept: dict[str, tuple] = {}
    response, quarterly = report.response_curves_svg, report.quarterly_effects_svg

    def keep_response(*args):  # noqa: ANN002, ANN202
        kept.setdefault("response curves", args)  # the section's, not a budget plan's
        return response(*args)

    def keep_quarterly(*args):  # noqa: ANN002, ANN202
        kept.setdefault("quarterly", args)
        return quarterly(*args)

    report.response_curves_svg, report.quarterly_effects_svg = keep_response, keep_quarterly
    try:
        refresh(write_world(folder / "in", 156, channels), folder / "out")
    finally:
        report.response_curves_svg, report.quarterly_effects_svg = response, quarterly
    path = folder / "inputs.pkl"
    path.write_bytes(pickle.dumps(kept))
    return path


def measure(inputs: Path, tree: Path) -> dict[str, tuple[int, float]]:
    """Per figure, (Python calls, fastest CPU seconds) as the plotting code of `tree` draws `inputs`."""
    from benchmarks.refresh_speed import child

    _, text = child(["-c", MEASURE, str(inputs)], tree)
    rows = {}
    for line in text.splitlines():
        *name, calls, seconds = line.split()
        rows[" ".join(name)] = (int(calls), float(seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 20])
    parser.add_argument("--before", type=Path, help="another checkout whose plotting code draws the same inputs")
    args = parser.parse_args()
    trees = [("this", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"{'channels':>8} {'figure':<16} " + " ".join(f"{label + ' calls':>13} {label + ' CPU s':>13}"
                                                      for label, _ in trees))
    with tempfile.TemporaryDirectory(prefix="cmmm-figures-") as tmp:
        for channels in args.channels:
            inputs = capture(channels, Path(tmp) / f"c{channels}")
            results = [measure(inputs, tree) for _, tree in trees]
            for name in results[0]:
                cells = " ".join(f"{r[name][0]:>13,} {r[name][1]:>13.3f}" for r in results)
                print(f"{channels:>8} {name:<16} {cells}", flush=True)


if __name__ == "__main__":
    main()

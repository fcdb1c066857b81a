"""How long `cmmm run` takes on the bundled sample, and how busy the machine was meanwhile.

Each repeat runs the CLI in a fresh process into a fresh output folder (a first run: no previous
publication) and prints its wall time, the peak memory of the process and the 1-minute load average
before and after. On a shared machine the load average says which README column a figure belongs to.

    python benchmarks/run_timing.py --repeats 4
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run() -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one `cmmm run` on the sample in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="cmmm-timing-") as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cmmm_pipeline.cli", "run", "--output", out], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024 ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    walls = []
    for i in range(args.repeats):
        load_before = os.getloadavg()[0]
        wall, peak = timed_run()
        walls.append(wall)
        print(f"run {i + 1}: {wall:5.1f} s, peak RSS {peak:.2f} GB, load average {load_before:.1f} -> "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    print(f"range {min(walls):.1f}-{max(walls):.1f} s over {len(walls)} runs")


if __name__ == "__main__":
    main()

"""The step libraries frozen out of the garbage collector's scans, once per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
from cmmm_pipeline.core.heap import freeze_step_libraries
first = freeze_step_libraries()
kept = [[i] for i in range(50_000)]  # a later market's objects, alive at the second call
second = freeze_step_libraries()
cycle = []
cycle.append(cycle)
del cycle
print(json.dumps({"first": first, "second": second, "dowhy": "dowhy" in sys.modules,
                  "great_expectations": "great_expectations" in sys.modules,
                  "collected": gc.collect(), "frozen_after": gc.get_freeze_count()}))
"""


def test_the_libraries_are_imported_and_frozen_once_and_garbage_is_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["dowhy"] and out["great_expectations"]
    assert out["first"] > 200_000  # the libraries' objects: hundreds of thousands
    assert out["second"] == out["first"] == out["frozen_after"]  # the later objects were not frozen
    assert out["collected"] >= 1  # a cycle made after the freeze is still found and freed

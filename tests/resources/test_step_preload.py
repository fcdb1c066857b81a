"""The markets' process server preloads what a market's step imports, and freezes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from assets.markets import PRELOADED_MODULES

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json, sys
import resources.step_preload as preload
missing = []
for name in preload.LIBRARY_MODULES:
    try:
        __import__(name)
    except ModuleNotFoundError:
        missing.append(name)
print(json.dumps({"found": preload.preload(), "missing": missing, "frozen": gc.get_freeze_count(),
                  "report": "cmmm_pipeline.publish.report" in sys.modules,
                  "sqlite_events": "dagster._core.storage.event_log.sqlite" in sys.modules,
                  "alembic": "alembic" in sys.modules}))
"""


MARKET_AFTER_PRELOAD = """
import json, os, sys, tempfile
from pathlib import Path
import resources.step_preload
from dagster import DagsterInstance
from cmmm_pipeline.run import NO_CAPTURE, run_market
from cmmm_pipeline.simulation.markets import write_markets
folder = Path(sys.argv[1])
write_markets(folder / "export", 1, estimation="estimation: {bootstrap_samples: 50, refuter_simulations: 2}\\n")
(folder / "home").mkdir()
before = set(sys.modules)
instance = DagsterInstance.local_temp(str(folder / "home"), overrides=NO_CAPTURE)  # what run_markets records in
outcome = run_market(str(folder / "export" / "config.yaml"), str(folder / "out"), str(folder / "out" / "cmmm.duckdb"),
                     "m001", instance)
print(json.dumps({"success": outcome.success, "new": sorted(set(sys.modules) - before)}))
"""


def test_a_market_run_after_the_preload_imports_next_to_nothing(tmp_path: Path) -> None:
    """What a forked step would still import: a new lazy import in a step shows here, to be added to
    LIBRARY_MODULES (the project's own modules are all preloaded)."""
    done = subprocess.run([sys.executable, "-c", MARKET_AFTER_PRELOAD, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, check=True, env={**os.environ, "GX_ANALYTICS_ENABLED": "False"})
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["success"]
    assert [m for m in out["new"] if m.split(".")[0] in ("cmmm_pipeline", "assets", "data_checks", "resources")] == []
    assert len(out["new"]) <= 10, out["new"]  # 1 here (without the preload: over 3,000)


def test_the_process_server_preloads_the_step_modules() -> None:
    assert "resources.step_preload" in PRELOADED_MODULES


def test_every_library_module_exists_and_the_imports_are_frozen() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # A Dagster release that moves one of these modules fails here, not silently in the markets' speed.
    assert out["missing"] == []
    from resources.step_preload import LIBRARY_MODULES
    assert out["found"] == len(LIBRARY_MODULES)
    assert out["report"] and out["sqlite_events"] and out["alembic"]  # lazy project and storage imports
    assert out["frozen"] > 300_000  # the libraries' and the preloaded modules' objects

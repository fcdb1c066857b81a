"""The markets' process server preloads what a market's step imports, and freezes it."""

from __future__ import annotations

import json
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

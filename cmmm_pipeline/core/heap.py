"""The libraries' objects and the garbage collector.

Importing the libraries a run's steps use (Dagster, Great Expectations, DoWhy, statsmodels, SciPy,
matplotlib) leaves about 600,000 objects that live as long as the process. Every full collection
of the cyclic garbage collector scans them all: 0.3–0.4 s of CPU each on this project's machine,
once or twice per run. `gc.freeze()` moves them to a permanent generation that collections skip
(0.03–0.05 s each then); objects are still freed as soon as their last reference goes. The code
location itself stays light: this runs only where a run is about to execute its steps.
"""

from __future__ import annotations

import gc
import importlib

STEP_LIBRARIES = ("dowhy", "great_expectations", "statsmodels.api", "scipy.optimize", "matplotlib.pyplot")
"""The heavy libraries a run's steps import (also what the markets' process server preloads)."""


def freeze_step_libraries(modules: tuple[str, ...] = STEP_LIBRARIES) -> int:
    """Import `modules` (a run would import them in its first steps) and freeze every object alive,
    so the collector never scans them again; returns the number of frozen objects.

    Once per process: a worker that runs market after market freezes the libraries with its first
    market, and no later market's leftovers are frozen with them (they are collected as usual)."""
    for module in modules:
        importlib.import_module(module)
    if gc.get_freeze_count() == 0:
        gc.freeze()
    return gc.get_freeze_count()

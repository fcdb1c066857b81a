"""Imported once by the markets' process server (the multiprocess executor's forkserver preload), so
that every market's step forks with what it imports already in memory.

Preloading the Definitions and the heavy libraries alone left hundreds of modules that each market's
step imported again: the project's own step modules, Dagster's storages, in-process execution and
instance factory, SQLAlchemy and Alembic behind the SQLite storages, Graphviz, rich. The imported
objects are then frozen (`freeze_step_libraries`): the garbage collector of every forked step skips
them, as a market run in one process does, instead of scanning them in each full collection (and
touching, hence copying, their memory pages). What it saves: docs/operations.md, "How long many
markets take" (`benchmarks/markets_scaling.py`). Nothing here runs or opens anything, so the forked
steps share no file, thread or connection with the server.
"""

from __future__ import annotations

import importlib
import pkgutil

from cmmm_pipeline.core.heap import freeze_step_libraries

PROJECT_PACKAGES = ("cmmm_pipeline", "assets", "data_checks", "resources")

LIBRARY_MODULES = (
    "dagster._core.execution.execute_in_process",
    "dagster._core.executor.in_process",
    "dagster._core.instance.factory",
    "dagster._core.instance.runs.run_domain",
    "dagster._core.storage.root",
    "dagster._core.storage.migration.utils",
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.event_log.sqlite",
    "dagster._core.storage.runs.sqlite",
    "dagster._core.storage.schedules.sqlite",
    "dagster._core.storage.noop_compute_log_manager",
    "dagster._core.secrets.env_file",
    "dagster._core.system_config.composite_descent",
    "dagster._core.utility_ops",
    "dagster._core.definitions.external_asset",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.workspace.autodiscovery",
    "dagster._core.workspace.context",
    "dagster._core.execution.backfill",
    "dagster._daemon.controller",
    "dagster._utils.test.definitions",
    "upath.core",
    "upath.implementations.local",
    "fsspec.implementations.local",
    "graphviz",
    "matplotlib.backends.backend_agg",
    "PIL.BmpImagePlugin",
    "PIL.GifImagePlugin",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.PpmImagePlugin",
    "rich.traceback",
    "pandas.core.methods.to_dict",
    "pandas.io.formats.csvs",
    "encodings.utf_8_sig",
    "statistics",
)
"""Library modules a market's step imports that the packages above import only inside functions.
Internal Dagster module names can move between releases: a name that is gone is skipped (the step
then imports what it needs itself, as before)."""


def _project_modules() -> list[str]:
    names = []
    for package_name in PROJECT_PACKAGES:
        package = importlib.import_module(package_name)
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")]
    return names


def preload() -> int:
    """Import every project module and `LIBRARY_MODULES`; returns how many library modules were found."""
    for name in _project_modules():
        importlib.import_module(name)
    found = 0
    for name in LIBRARY_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        found += 1
    return found


preload()
freeze_step_libraries()

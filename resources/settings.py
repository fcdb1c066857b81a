"""The run's resources: the parsed config (parsed and validated once per run) and the warehouse,
whose file lock is held and whose staging schema lives for exactly one run.

Both rely on the job's in-process executor: Dagster sets a resource up once per run there, so one
parse, one lock and one staging schema serve every step and check of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, Failure, InitResourceContext
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.data.markets import check_market_folders, market_folder, market_warehouse
from cmmm_pipeline.publish.preflight import (OutputError, check_disk_space, check_output_folder_usable,
                                             check_warehouse_file)
from resources.lock import WarehouseLock

CONNECTION_CONFIG = {"custom_user_agent": "dagster"}


PARTITION_TAG = "dagster/partition"


def run_market(context: InitResourceContext) -> str | None:
    """The market a partitioned run models (its partition key), or None for a single-market run."""
    tags = getattr(context.run, "tags", None) or {}  # no run (or a stand-in) outside an execution
    return tags.get(PARTITION_TAG)


def _is_file(database: str) -> bool:
    return database not in ("", ":memory:") and not database.startswith("md:")


@contextmanager
def connect(database: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse file; its folder is created on first use (a fresh checkout has
    no cmmm_output/)."""
    if _is_file(database):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # DuckDB shares one database instance per file within a process and refuses a second
    # configuration: connect exactly as DuckDBResource does.
    try:
        con = duckdb.connect(database, config=CONNECTION_CONFIG)
    except duckdb.IOException as exc:
        if _is_file(database) and "not a valid DuckDB database" in str(exc):
            raise OutputError("warehouse-invalid", database,
                              "is not a DuckDB database; the pipeline never overwrites a file it did not create.",
                              "point --warehouse (or CMMM_WAREHOUSE) at a new path, or move the file away.") from None
        raise
    try:
        yield con
    finally:
        con.close()


class CmmmSettings(ConfigurableResource):
    """The run's config file, parsed and validated once when the run starts, and the output folder
    (report.html, estimates.csv, ...)."""

    config_path: str
    output_dir: str
    warehouse: str = ""
    """The warehouse file (of the whole export; each market's own lies beside it). Empty: `output_dir/cmmm.duckdb`."""
    _parsed: PipelineConfig | None = PrivateAttr(default=None)
    _config_error: CmmmError | None = PrivateAttr(default=None)
    _market: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from cmmm_pipeline.core.loading import load_config

        self._market = run_market(context)
        # A bad config is kept, not raised: the first step that needs it fails with the rule
        # paragraph as its headline instead of a resource-initialisation stack trace.
        try:
            self._parsed = load_config(self.config_path)
        except CmmmError as error:
            self._config_error = error

    @property
    def config(self) -> PipelineConfig:
        """The parsed config (parsed on first use outside a run, e.g. a direct call in a test)."""
        if self._config_error is not None:
            raise Failure(description=str(self._config_error), metadata={"rule": self._config_error.rule}) from self._config_error
        if self._parsed is None:
            from cmmm_pipeline.core.loading import load_config

            self._parsed = load_config(self.config_path)
        return self._parsed

    @property
    def market(self) -> str | None:
        """The run's market (its partition key), or None when the export holds one market."""
        return self._market

    def output_folder(self) -> Path:
        """Where this run publishes: the output folder, or `<output>/markets/<market>`."""
        return market_folder(self.output_dir, self._market) if self._market else Path(self.output_dir)

    def warehouse_path(self) -> str:
        return self.warehouse or str(Path(self.output_dir) / "cmmm.duckdb")

    def output_path(self) -> Path:
        path = self.output_folder()
        path.mkdir(parents=True, exist_ok=True)
        return path


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse, locked for the whole run (one run at a time per warehouse file; a
    second run waits `lock_timeout_seconds`, then is refused with `[warehouse-locked]`), with the
    run's own staging schema, which is dropped when the run ends (published or failed) unless
    `keep_staging` asks to keep it for inspection. Staging schemas of runs that died are dropped by
    the next run that takes the lock."""

    lock_timeout_seconds: float = 0.0
    keep_staging: bool = False
    output_dir: str | None = None
    """The output folder whose files must show the warehouse's published run: a crash between the
    warehouse commit and the switch of `current` is repaired as soon as the next run holds the lock,
    whether or not that run gets as far as publishing."""
    _run_lock: WarehouseLock | None = PrivateAttr(default=None)
    _run_schema: str | None = PrivateAttr(default=None)
    _market: str | None = PrivateAttr(default=None)
    _keeper: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    """Held open for the run: DuckDB then keeps the file's database in memory, so the run's
    many short connections (IO manager, checks, publication) cost microseconds, not a reopen and a
    checkpoint each (54 per sample run, 0.8–2 s). Durability is unchanged: every commit is in the WAL."""

    @property
    def path(self) -> str:
        """The run's warehouse file: the configured one, or the market's own beside it."""
        return str(market_warehouse(self.database, self._market)) if self._market else self.database

    @property
    def output_folder(self) -> Path | None:
        if not self.output_dir:
            return None
        return market_folder(self.output_dir, self._market) if self._market else Path(self.output_dir)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        from cmmm_pipeline.data import warehouse
        from cmmm_pipeline.publish.outputs import RepairAction, repair_publication

        run_id = context.run.run_id if context.run is not None else None
        if not run_id or not _is_file(self.database):
            return
        self._market = run_market(context)
        if self._market:  # each market locks and publishes only its own folder: markets never contend
            check_market_folders(self.output_dir or Path(self.database).parent, self.database, self._market)
        output = self.output_folder
        if output is not None:  # refused with a rule before the lock or DuckDB touch anything
            check_output_folder_usable(output)
        check_warehouse_file(Path(self.path))
        check_disk_space(output or Path(self.path).parent, Path(self.path), None)
        lock = WarehouseLock(self.path, self.lock_timeout_seconds)
        lock.acquire(run_id)
        self._run_lock = lock
        self._run_schema = warehouse.staging_schema(run_id)
        try:
            with connect(self.path) as con:
                for stale in warehouse.run_staging_schemas(con):
                    if stale != self._run_schema:
                        warehouse.drop_schema(con, stale)
                if output is not None:
                    repair = repair_publication(con, output)
                    if repair.action is not RepairAction.NONE and repair.action is not RepairAction.NOT_PUBLISHED:
                        context.log.warning(f"output folder repaired at start ({repair.action.value}): current was "
                                            f"{repair.pointer_before}, the warehouse published {repair.warehouse_run}")
            self._keeper = duckdb.connect(self.path, config=CONNECTION_CONFIG)
        except BaseException:
            lock.release()
            raise

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        from cmmm_pipeline.data import warehouse

        try:
            if self._run_schema is not None and not self.keep_staging:
                with connect(self.path) as con:
                    warehouse.drop_schema(con, self._run_schema)
        finally:
            try:
                if self._keeper is not None:
                    self._keeper.close()  # the last connection: DuckDB checkpoints the run here
            except duckdb.Error as exc:  # e.g. a full disk: the WAL keeps every commit; the next open replays it
                context.log.warning(f"warehouse checkpoint deferred to the next run: {type(exc).__name__}")
            finally:
                if self._run_lock is not None:
                    self._run_lock.release()

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # Our own connect (dagster-duckdb's closes only on success: a failed step would keep the file
        # open) to the run's own file: the market's, for a partitioned run.
        with connect(self.path) as con:
            yield con

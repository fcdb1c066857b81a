"""The DuckDB warehouse. Each run writes its tables to its own staging schema
(`staging_<run id prefix>`, see `staging_schema`); only a run that passed every gate copies them to
`published` (and appends to the history) in one transaction. A run that fails therefore never
touches what the last good run published, and two runs never share staged tables.

Table names come from the fixed set below (identifiers cannot be bound parameters); every value
is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pandas as pd

STAGING = "staging"
PUBLISHED = "published"
HISTORY_TABLE = "estimates_history"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _name(schema: str, table: str) -> str:
    for part in (schema, table):
        if not _IDENTIFIER.match(part):
            raise ValueError(f"not a safe identifier: {part!r}")
    return f'"{schema}"."{table}"'


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{STAGING}"')
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{PUBLISHED}"')


def _replace_tables(con: duckdb.DuckDBPyConnection, schema: str, tables: Mapping[str, pd.DataFrame]) -> None:
    """Inside the caller's transaction: replace each table of `schema` with its DataFrame."""
    for table, frame in tables.items():
        view = f"_incoming_{table}"
        con.register(view, frame)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {_name(schema, table)} AS SELECT * FROM {view}")
        finally:
            con.unregister(view)


def write_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame], schema: str = STAGING) -> None:
    """Replace each table with its DataFrame, all or none (one transaction)."""
    ensure_schemas(con)
    create_schema(con, schema)
    con.execute("BEGIN TRANSACTION")
    try:
        _replace_tables(con, schema, tables)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def create_schema(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    if not _IDENTIFIER.match(schema):
        raise ValueError(f"not a safe identifier: {schema!r}")
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def read_table(con: duckdb.DuckDBPyConnection, table: str, schema: str = STAGING) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {_name(schema, table)}").df()


def table_names(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
                       [schema]).fetchall()
    return [r[0] for r in rows]


PUBLICATION_TABLE = "publication"
"""One row per publication: the run id, its run time, the run folder its files were written to
(relative to the output folder) and when it was recorded (just before its commit). The newest row
names the published run."""
KEPT_TABLES = frozenset({HISTORY_TABLE, PUBLICATION_TABLE})
"""Published tables a run never replaces wholesale (it appends to them)."""


@dataclass(frozen=True)
class PublishedRun:
    """The run the warehouse's `published` schema holds: the point of truth of a publication."""

    run_id: str
    run_time: dt.datetime
    folder: str
    """The run folder of its files, relative to the output folder (e.g. `runs/<run_id>`)."""


def publish(con: duckdb.DuckDBPyConnection, run_id: str, run_time: dt.datetime, estimates_table: str,
            staging: str = STAGING, folder: str = "") -> None:
    """Copy every staging table to `published`, append this run's estimates to the history and
    record the publication, in one transaction; re-publishing the same run id replaces its history
    rows."""
    with publishing(con, run_id, run_time, estimates_table, staging=staging, folder=folder):
        pass


@contextmanager
def publishing(con: duckdb.DuckDBPyConnection, run_id: str, run_time: dt.datetime, estimates_table: str,
               staging: str = STAGING, folder: str = "") -> Iterator[None]:
    """The publication as one open transaction: `published` holds this run's tables (a run that
    materialised part of the graph keeps the published tables it builds on), the history holds its
    estimates and `published.publication` names it. The body runs inside the transaction, sees the
    new state and writes the run's files from it; the transaction commits only when the body
    returns, and rolls back when it raises (or the process dies), leaving the warehouse as it was.

    Parameters
    ----------
    con : the warehouse connection (no transaction open).
    run_id, run_time : the run being published.
    estimates_table : the staged table appended to `estimates_history`.
    staging : the schema this run staged its tables in.
    folder : where the run's files live, relative to the output folder (recorded, not written here).
    """
    ensure_schemas(con)
    if not _IDENTIFIER.match(staging):
        raise ValueError(f"not a safe identifier: {staging!r}")
    staged = table_names(con, staging)
    if estimates_table not in staged:
        raise ValueError(f"{estimates_table!r} is not staged in schema {staging!r}")
    con.execute("BEGIN TRANSACTION")
    try:
        for table in staged:
            if table in KEPT_TABLES:
                raise ValueError(f"a staged table may not be named {table!r}")
            con.execute(f"CREATE OR REPLACE TABLE {_name(PUBLISHED, table)} AS "
                        f"SELECT * FROM {_name(staging, table)}")
        history = _name(PUBLISHED, HISTORY_TABLE)
        source = _name(staging, estimates_table)
        con.execute(f"CREATE TABLE IF NOT EXISTS {history} AS SELECT CAST(NULL AS VARCHAR) AS run_id, "
                    f"CAST(NULL AS TIMESTAMP) AS run_time, * FROM {source} WHERE false")
        _add_missing_history_columns(con, estimates_table, staging)
        con.execute(f"DELETE FROM {history} WHERE run_id = ?", [run_id])
        con.execute(f"INSERT INTO {history} BY NAME SELECT ? AS run_id, ? AS run_time, * FROM {source}",
                    [run_id, run_time])
        _record_publication(con, run_id, run_time, folder)
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")  # a failed commit aborts the transaction itself: nothing left to roll back


def _record_publication(con: duckdb.DuckDBPyConnection, run_id: str, run_time: dt.datetime, folder: str) -> None:
    table = _name(PUBLISHED, PUBLICATION_TABLE)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} (seq BIGINT, run_id VARCHAR, run_time TIMESTAMP, "
                "folder VARCHAR, published_at TIMESTAMP)")
    con.execute(f"INSERT INTO {table} SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ? FROM {table}",
                [run_id, run_time, folder, dt.datetime.now(dt.UTC).replace(tzinfo=None)])


def published_run(con: duckdb.DuckDBPyConnection) -> PublishedRun | None:
    """The run the warehouse last published (None before the first publication)."""
    if PUBLICATION_TABLE not in table_names(con, PUBLISHED):
        return None
    rows = con.execute(f"SELECT run_id, run_time, folder FROM {_name(PUBLISHED, PUBLICATION_TABLE)} "
                       "ORDER BY seq DESC LIMIT 1").fetchall()
    if not rows:
        return None
    run_id, run_time, folder = rows[0]
    return PublishedRun(str(run_id), pd.Timestamp(run_time).to_pydatetime(), str(folder))


def publication_log(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every publication, oldest first: seq, run_id, run_time, folder, published_at."""
    if PUBLICATION_TABLE not in table_names(con, PUBLISHED):
        return pd.DataFrame(columns=["seq", "run_id", "run_time", "folder", "published_at"])
    return con.execute(f"SELECT * FROM {_name(PUBLISHED, PUBLICATION_TABLE)} ORDER BY seq").df()


def _add_missing_history_columns(con: duckdb.DuckDBPyConnection, estimates_table: str, staging: str = STAGING) -> None:
    """Columns the estimates gained since the history was created (NULL for older runs)."""
    query = ("SELECT column_name, data_type FROM information_schema.columns "
             "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position")
    have = {name for name, _ in con.execute(query, [PUBLISHED, HISTORY_TABLE]).fetchall()}
    for name, data_type in con.execute(query, [staging, estimates_table]).fetchall():
        if name not in have:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a safe identifier: {name!r}")
            con.execute(f'ALTER TABLE {_name(PUBLISHED, HISTORY_TABLE)} ADD COLUMN "{name}" {data_type}')


def previous_estimates(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The newest published run's estimates other than `run_id` (empty before the second run)."""
    ensure_schemas(con)
    if HISTORY_TABLE not in table_names(con, PUBLISHED):
        return pd.DataFrame()
    history = _name(PUBLISHED, HISTORY_TABLE)
    return con.execute(
        f"SELECT * FROM {history} WHERE run_id = (SELECT run_id FROM {history} WHERE run_id <> ? "
        f"ORDER BY run_time DESC LIMIT 1)", [run_id]).df()


# --- one staging schema per run ---------------------------------------------------------------------

RUN_STAGING_PREFIX = "staging_"
STEP_VALUES_TABLE = "step_values"
"""Per staging schema: one row per step whose value is more than a table (its type and a typed JSON
document; its DataFrames are tables of the same schema). Published with the rest, so a later run that
materialises only part of the graph builds on the published run's values."""


def staging_schema(run_id: str) -> str:
    """The schema a run stages in (`staging_<first 12 hex digits of its id>`): two runs never share one."""
    if not re.fullmatch(r"[0-9a-fA-F-]{12,64}", run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    digits = run_id.replace("-", "").lower()[:12]
    return f"{RUN_STAGING_PREFIX}{digits}"


def drop_schema(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    if not _IDENTIFIER.match(schema) or schema == PUBLISHED:
        raise ValueError(f"refusing to drop schema {schema!r}")
    con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_staging_schemas(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every per-run staging schema in the warehouse (those of crashed runs included)."""
    rows = con.execute("SELECT DISTINCT schema_name FROM information_schema.schemata "
                       "WHERE starts_with(schema_name, ?) ORDER BY 1", [RUN_STAGING_PREFIX]).fetchall()
    return [r[0] for r in rows]


def write_step(con: duckdb.DuckDBPyConnection, schema: str, step: str, tables: Mapping[str, pd.DataFrame],
               value_type: str, document: str) -> None:
    """A step's tables and its typed document, all or none (one transaction)."""
    ensure_schemas(con)
    create_schema(con, schema)
    values = _name(schema, STEP_VALUES_TABLE)
    con.execute(f"CREATE TABLE IF NOT EXISTS {values} (step VARCHAR, value_type VARCHAR, document VARCHAR)")
    con.execute("BEGIN TRANSACTION")
    try:
        _replace_tables(con, schema, tables)
        con.execute(f"DELETE FROM {values} WHERE step = ?", [step])
        con.execute(f"INSERT INTO {values} VALUES (?, ?, ?)", [step, value_type, document])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def read_step(con: duckdb.DuckDBPyConnection, schema: str, step: str) -> tuple[str, str] | None:
    """The step's (value type, document) in `schema`, or None if the step wrote none there."""
    if STEP_VALUES_TABLE not in table_names(con, schema):
        return None
    rows = con.execute(f"SELECT value_type, document FROM {_name(schema, STEP_VALUES_TABLE)} WHERE step = ?",
                       [step]).fetchall()
    return (str(rows[0][0]), str(rows[0][1])) if rows else None

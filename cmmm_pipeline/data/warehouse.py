"""The DuckDB warehouse. Each step of a run writes its tables to the `staging` schema; only a run
that passed every gate copies them to `published` (and appends to the history) in one
transaction. A run that fails therefore never touches what the last good run published.

Table names come from the fixed set below (identifiers cannot be bound parameters); every value
is a bound parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

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


def write_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame], schema: str = STAGING) -> None:
    """Replace each table with its DataFrame, all or none (one transaction)."""
    ensure_schemas(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for table, frame in tables.items():
            view = f"_incoming_{table}"
            con.register(view, frame)
            try:
                con.execute(f"CREATE OR REPLACE TABLE {_name(schema, table)} AS SELECT * FROM {view}")
            finally:
                con.unregister(view)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def read_table(con: duckdb.DuckDBPyConnection, table: str, schema: str = STAGING) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {_name(schema, table)}").df()


def table_names(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
                       [schema]).fetchall()
    return [r[0] for r in rows]


def publish(con: duckdb.DuckDBPyConnection, run_id: str, run_time: dt.datetime, estimates_table: str) -> None:
    """Copy every staging table to `published` and append this run's estimates to the history,
    in one transaction; re-publishing the same run id replaces its history rows."""
    ensure_schemas(con)
    staged = table_names(con, STAGING)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in staged:
            con.execute(f"CREATE OR REPLACE TABLE {_name(PUBLISHED, table)} AS "
                        f"SELECT * FROM {_name(STAGING, table)}")
        history = _name(PUBLISHED, HISTORY_TABLE)
        source = _name(STAGING, estimates_table)
        con.execute(f"CREATE TABLE IF NOT EXISTS {history} AS SELECT CAST(NULL AS VARCHAR) AS run_id, "
                    f"CAST(NULL AS TIMESTAMP) AS run_time, * FROM {source} WHERE false")
        _add_missing_history_columns(con, estimates_table)
        con.execute(f"DELETE FROM {history} WHERE run_id = ?", [run_id])
        con.execute(f"INSERT INTO {history} BY NAME SELECT ? AS run_id, ? AS run_time, * FROM {source}",
                    [run_id, run_time])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _add_missing_history_columns(con: duckdb.DuckDBPyConnection, estimates_table: str) -> None:
    """Columns the estimates gained since the history was created (NULL for older runs)."""
    query = ("SELECT column_name, data_type FROM information_schema.columns "
             "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position")
    have = {name for name, _ in con.execute(query, [PUBLISHED, HISTORY_TABLE]).fetchall()}
    for name, data_type in con.execute(query, [STAGING, estimates_table]).fetchall():
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

"""Read the weekly table (CSV, Parquet or a DuckDB table) and normalise it: the date column
becomes `week` (a Monday-anchored date), used columns become floats. Problems that make the
table unreadable are refused here; value rules (nulls, negatives, gaps) are the GX suite's job,
so that they are reported with all failing rows at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.config import GENERATED_CONTROLS, PipelineConfig
from cmmm_pipeline.errors import DataError, format_rows
from cmmm_pipeline.features import WEEK


def read_table(config: PipelineConfig) -> pd.DataFrame:
    path: Path = config.data.path
    if not path.is_file():
        raise DataError("data-missing", str(path), "no such file.", "fix data.path in the config.")
    suffix = path.suffix.lower()
    try:
        if config.data.table:
            import duckdb

            with duckdb.connect(str(path), read_only=True) as con:
                return con.execute("SELECT * FROM query_table(?)", [config.data.table]).df()
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".csv", ".txt"}:
            return pd.read_csv(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear refusal
        raise DataError("data-unreadable", str(path), f"could not be read ({type(exc).__name__}: {exc}).",
                        "check that the file is a valid CSV/Parquet file or that the DuckDB table exists.") from None
    raise DataError("data-format", str(path), f"has the unsupported extension '{suffix}'.",
                    "use .csv or .parquet, or set data.table for a DuckDB file.")


def used_columns(config: PipelineConfig) -> list[str]:
    """Every data column the config relies on (generated controls excepted)."""
    controls = [c for c in config.controls if c not in GENERATED_CONTROLS]
    return [config.data.date_column, *(c.spend_column for c in config.channels), *controls, config.kpi]


def normalise(table: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Keep the used columns, rename the date to `week`, parse dates and numbers, sort by week."""
    columns = used_columns(config)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError("column-missing", f"{config.data.path} column '{missing[0]}'",
                        f"is named in the config but absent from the data (missing: {', '.join(missing)}; "
                        f"present: {', '.join(map(str, table.columns))}).",
                        "rename the column in the data or fix the config.")
    for control in config.controls:
        if control in GENERATED_CONTROLS and control in table.columns:
            columns.append(control)
    out = table[columns].copy()
    dates = pd.to_datetime(out[config.data.date_column], errors="coerce")
    bad = out.index[dates.isna()].tolist()
    if bad:
        raise DataError("date-parse", f"{config.data.path} column '{config.data.date_column}'",
                        f"has values that are not dates at rows {format_rows(bad)} "
                        f"(e.g. {out.loc[bad[0], config.data.date_column]!r}).", "write dates as YYYY-MM-DD.")
    out = out.drop(columns=[config.data.date_column])
    for column in out.columns:
        numbers = pd.to_numeric(out[column], errors="coerce")
        text = out.index[numbers.isna() & out[column].notna()].tolist()
        if text:
            raise DataError("numeric-type", f"{config.data.path} column '{column}'",
                            f"holds text that is not a number at rows {format_rows(text)} "
                            f"(e.g. {out.loc[text[0], column]!r}).",
                            "clean the export: numbers only, '.' as the decimal mark, no currency signs.")
        out[column] = numbers.astype(float)
    out.insert(0, WEEK, dates.dt.normalize())
    return out.sort_values(WEEK, kind="stable").reset_index(drop=True)


def load_raw(config: PipelineConfig) -> pd.DataFrame:
    return normalise(read_table(config), config)


def spend_totals(raw: pd.DataFrame, config: PipelineConfig) -> dict[str, float]:
    return {c.name: float(np.nansum(raw[c.spend_column].to_numpy())) for c in config.channels}

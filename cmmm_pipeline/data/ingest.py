"""Read the weekly table (CSV, Parquet or a DuckDB table) and normalise it: the date column
becomes `week` (a midnight date), used columns become floats. Problems that make the table
unreadable are refused here (no file, no rows, a missing column, text in a number column, a
value that is not a date); value rules (nulls, negatives, gaps, duplicates) are the GX suite's
job, so that they are reported with all failing rows at once."""

from __future__ import annotations

import difflib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import GENERATED_CONTROLS, PipelineConfig
from cmmm_pipeline.core.errors import DataError, format_rows
from cmmm_pipeline.data.validation import check_experiment_dates
from cmmm_pipeline.media.features import WEEK


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
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear refusal
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError("data-unreadable", str(path), f"could not be read ({type(exc).__name__}: {reason}).",
                        "check that the file is a valid CSV/Parquet file or that the DuckDB table exists.") from None
    raise DataError("data-format", str(path), f"has the unsupported extension '{suffix}'.",
                    "use .csv or .parquet, or set data.table for a DuckDB file.")


def used_columns(config: PipelineConfig) -> list[str]:
    """Every data column the config relies on (generated controls excepted)."""
    controls = [c for c in config.controls if c not in GENERATED_CONTROLS]
    return [config.data.date_column, *(c.spend_column for c in config.channels), *controls, config.kpi]


def _where(config: PipelineConfig, column: object) -> str:
    return f"{config.data.path} column '{column}'"


def _check_columns(table: pd.DataFrame, columns: list[str], config: PipelineConfig) -> None:
    present = [str(c) for c in table.columns]
    missing = [c for c in columns if c not in present]
    if missing:
        unclaimed = [c for c in present if c not in columns]  # a renamed column is one the config does not use
        close = {m: difflib.get_close_matches(m, unclaimed, n=1, cutoff=0.4) for m in missing}
        hints = [f"'{m}' is now '{c[0]}'?" for m, c in close.items() if c]
        hint = f" Possibly renamed: {', '.join(hints)}" if hints else ""
        raise DataError("column-missing", _where(config, missing[0]),
                        f"is named in the config but absent from the data (missing: {', '.join(missing)}; "
                        f"present: {', '.join(present)}).{hint}",
                        "rename the column in the data or fix the config (spend_column, controls, data.kpi, "
                        "data.date_column).")
    duplicated = sorted({c for c in present if present.count(c) > 1} & set(columns))
    if duplicated:
        raise DataError("column-duplicated", _where(config, duplicated[0]),
                        "appears more than once in the table header.", "keep one column of each name.")


def _parse_dates(values: pd.Series, config: PipelineConfig) -> pd.Series:
    where = _where(config, config.data.date_column)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise DataError("date-parse", where, f"holds numbers (e.g. {values.iloc[0]!r}), not dates; spreadsheet "
                        "serial numbers are the usual cause.", "write every date as YYYY-MM-DD.")
    try:
        with warnings.catch_warnings():
            # Inconsistent formats are reported below, row by row; pandas' own notice adds nothing.
            warnings.filterwarnings("ignore", message="Could not infer format", category=UserWarning)
            dates = pd.to_datetime(values, errors="coerce")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError("date-parse", where, f"holds dates that cannot be read together ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); mixed time zones or formats are the "
                        "usual cause.", "write every date as YYYY-MM-DD.") from None
    if not pd.api.types.is_datetime64_any_dtype(dates):
        raise DataError("date-parse", where, "could not be read as dates.", "write every date as YYYY-MM-DD.")
    bad = [i for i, missing in enumerate(dates.isna().to_numpy()) if missing]
    if bad:
        raise DataError("date-parse", where,
                        f"has {len(bad)} value(s) that are not dates, at data row(s) {format_rows([i + 1 for i in bad])} "
                        f"(e.g. {values.iloc[bad[0]]!r}).", "write every date as YYYY-MM-DD; no empty dates.")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)  # keep the local calendar day the export meant
    return dates.dt.normalize()


def _to_numbers(values: pd.Series) -> tuple[pd.Series, list[int]]:
    """Floats, and the positions of cells that hold something other than a number."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float), []
    try:
        numbers = pd.to_numeric(values, errors="coerce")
    except (TypeError, ValueError):
        numbers = pd.Series([_to_float(v) for v in values], index=values.index, dtype=float)
    text = (numbers.isna() & values.notna()).to_numpy()
    return numbers.astype(float), [i for i, t in enumerate(text) if t]


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def normalise(table: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Keep the used columns, rename the date to `week`, parse dates and numbers, sort by week."""
    if len(table) == 0:
        raise DataError("data-empty", str(config.data.path), "has no data rows.",
                        "export the weekly table with its rows, not only the header.")
    table = table.rename(columns=str)
    columns = used_columns(config)
    _check_columns(table, columns, config)
    for control in config.controls:
        if control in GENERATED_CONTROLS and control in table.columns:
            columns.append(control)
    out = table[columns].reset_index(drop=True)
    dates = _parse_dates(out[config.data.date_column], config)
    out = out.drop(columns=[config.data.date_column])
    problems: list[tuple[str, list[int], object]] = []
    for column in out.columns:
        numbers, text = _to_numbers(out[column])
        if text:
            problems.append((column, text, out[column].iloc[text[0]]))
        out[column] = numbers
    if problems:
        column, rows, example = problems[0]
        weeks = [str(dates.iloc[i].date()) for i in rows]
        others = f" Other columns with text: {', '.join(c for c, _, _ in problems[1:])}." if problems[1:] else ""
        raise DataError("numeric-type", _where(config, column),
                        f"holds {len(rows)} value(s) that are not numbers, in week(s) {format_rows(weeks)} "
                        f"(e.g. {example!r}).{others}",
                        "clean the export: numbers only, '.' as the decimal mark, no currency signs, thousands "
                        "separators or text such as 'n/a'.")
    out.insert(0, WEEK, dates.to_numpy())
    return out.sort_values(WEEK, kind="stable").reset_index(drop=True)


def load_raw(config: PipelineConfig) -> pd.DataFrame:
    """Read, normalise, and refuse experiments that fall outside the data's weeks."""
    raw = normalise(read_table(config), config)
    check_experiment_dates(raw, WEEK, config)
    return raw


def spend_totals(raw: pd.DataFrame, config: PipelineConfig) -> dict[str, float]:
    return {c.name: float(np.nansum(raw[c.spend_column].to_numpy())) for c in config.channels}

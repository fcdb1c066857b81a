"""Read the weekly table (CSV, Parquet or a DuckDB table) and normalise it: the date column
becomes `week` (a midnight date), used columns become floats. Problems that make the table
unreadable are refused here (no file, no rows, a missing column, text in a number column, a
value that is not a date); value rules (nulls, negatives, gaps, duplicates) are the GX suite's
job, so that they are reported with all failing rows at once."""

from __future__ import annotations

import csv
import difflib
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig, is_generated_control
from cmmm_pipeline.core.config import RESERVED_COLUMN as WEEK  # media.features.WEEK, without importing scipy
from cmmm_pipeline.core.errors import CmmmError, DataError, brief, clip, format_rows
from cmmm_pipeline.data.validation import campaign_problems, check_campaigns, check_experiment_dates

MAX_ABS_VALUE = 1e12
"""The largest magnitude a spend, control or KPI value may take. Beyond it the fit's sums of squares
lose all precision (a KPI of 1e300 overflows them to inf and yields NaN intervals); no weekly
business figure comes near it, so a larger value is a unit or export error."""

CSV_SUFFIXES = {".csv", ".txt"}


def raw_header(path: Path) -> list[str]:
    """The CSV header line as written, before pandas renames a repeated name (`tv_spend.1`)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        return [name.strip() for name in next(csv.reader([handle.readline()]), [])]


def _check_raw_header(path: Path, used: list[str]) -> None:
    """Refuse a used column (any column when none is named yet) that appears twice in the header:
    pandas would keep the first and silently rename the second, so a re-exported column would be
    ignored (or the wrong one read)."""
    header = raw_header(path)
    duplicated = [c for c in dict.fromkeys(header) if header.count(c) > 1 and (not used or c in used)]
    if duplicated:
        positions = "; ".join(f"'{clip(c)}' at positions "
                              f"{', '.join(str(i + 1) for i, h in enumerate(header) if h == c)}" for c in duplicated)
        raise DataError("column-duplicated", f"{path} column '{clip(duplicated[0])}'",
                        f"appears more than once in the header line ({positions}); only one can be read.",
                        "keep one column of each name in the export.")


def read_table(config: PipelineConfig, market: str | None = None) -> pd.DataFrame:
    """The export as stored; with `data.market_column`, only `market`'s rows (without that column)."""
    column = config.data.market_column
    used = used_columns(config) + ([column] if column else [])
    table = read_data_file(config.data.path, config.data.table, used)
    if column is None:
        return table
    if market is None:
        raise DataError("market-required", f"{config.data.path} column '{column}'",
                        "holds several markets (data.market_column) and this run names none.",
                        "name it: `cmmm run` runs every market (the UI one per partition); `cmmm plan` and "
                        "`cmmm suggest` take --market.")
    from cmmm_pipeline.data.markets import select_market

    return select_market(table, column, market, str(config.data.path))


def _file_kind(path: Path) -> str:
    """'file', 'missing', or what else the path is (its target's kind, for a link)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"not readable ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or another special file"


def read_data_file(path: Path, table: str | None = None, used: list[str] | None = None) -> pd.DataFrame:
    """The weekly table as stored (CSV, Parquet or a DuckDB table); any failure is one refusal.
    For a CSV, the used columns' names are first checked in the raw header line."""
    kind = _file_kind(path)
    if kind == "missing":
        raise DataError("data-missing", str(path), "no such file.", "fix data.path in the config.")
    if kind != "file":
        raise DataError("data-not-a-file", str(path),
                        f"is {kind}, not a regular file; the pipeline reads only regular files (a device or a "
                        "pipe could be endless or block forever).",
                        "export the weekly table to a CSV or Parquet file and point data.path at it.")
    suffix = path.suffix.lower()
    if not table and suffix in CSV_SUFFIXES:
        try:
            _check_raw_header(path, used or [])
        except OSError as exc:
            raise DataError("data-unreadable", str(path), f"could not be read ({type(exc).__name__}).",
                            "check that the file is a valid CSV/Parquet file or that the DuckDB table exists.") from None
    try:
        if table:
            import duckdb

            with duckdb.connect(str(path), read_only=True) as con:
                return con.execute("SELECT * FROM query_table(?)", [table]).df()
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in CSV_SUFFIXES:
            return pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure becomes one clear refusal
        reason = clip(str(exc).strip().splitlines()[0], 200) if str(exc).strip() else ""
        raise DataError("data-unreadable", str(path), f"could not be read ({type(exc).__name__}: {reason}).",
                        "check that the file is a valid CSV/Parquet file or that the DuckDB table exists.") from None
    raise DataError("data-format", str(path), f"has the unsupported extension '{suffix}'.",
                    "use .csv or .parquet, or set data.table for a DuckDB file.")


def used_columns(config: PipelineConfig) -> list[str]:
    """Every data column the config relies on (generated controls excepted)."""
    controls = [c for c in config.controls if not is_generated_control(c, config.kpi)]
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
        raise DataError("date-parse", where, f"holds numbers (e.g. {brief(values.iloc[0])}), not dates; spreadsheet "
                        "serial numbers are the usual cause.", "write every date as YYYY-MM-DD.")
    try:
        with warnings.catch_warnings():
            # Inconsistent formats are reported below, row by row; pandas' own notice adds nothing.
            warnings.filterwarnings("ignore", message="Could not infer format", category=UserWarning)
            dates = pd.to_datetime(values, errors="coerce")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError("date-parse", where, f"holds dates that cannot be read together ({type(exc).__name__}: "
                        f"{clip(str(exc).splitlines()[0]) if str(exc) else ''}); mixed time zones or formats are the "
                        "usual cause.", "write every date as YYYY-MM-DD.") from None
    if not pd.api.types.is_datetime64_any_dtype(dates):
        raise DataError("date-parse", where, "could not be read as dates.", "write every date as YYYY-MM-DD.")
    bad = [i for i, missing in enumerate(dates.isna().to_numpy()) if missing]
    if bad:
        raise DataError("date-parse", where,
                        f"has {len(bad)} value(s) that are not dates, at data row(s) {format_rows([i + 1 for i in bad])} "
                        f"(e.g. {brief(values.iloc[bad[0]])}).", "write every date as YYYY-MM-DD; no empty dates.")
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


def _selected(table: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """The used columns (generated controls included when the data provides them)."""
    if len(table) == 0:
        raise DataError("data-empty", str(config.data.path), "has no data rows.",
                        "export the weekly table with its rows, not only the header.")
    table = table.rename(columns=str)
    columns = used_columns(config)
    _check_columns(table, columns, config)
    for control in config.controls:
        if is_generated_control(control, config.kpi) and control in table.columns:
            columns.append(control)
    return table[columns].reset_index(drop=True)


def _numeric_problems(out: pd.DataFrame, dates: pd.Series | None,
                      config: PipelineConfig) -> list[tuple[str, DataError]]:
    """Convert every non-date column to floats in place; one refusal per column holding text, then
    one per column holding a value beyond `MAX_ABS_VALUE` (in weeks when the dates are known)."""
    def label(rows: list[int]) -> str:
        return (f"week(s) {format_rows([str(dates.iloc[i].date()) for i in rows])}" if dates is not None
                else f"data row(s) {format_rows([i + 1 for i in rows])}")

    text_problems: list[tuple[str, DataError]] = []
    size_problems: list[tuple[str, DataError]] = []
    for column in out.columns:
        numbers, text = _to_numbers(out[column])
        if text:
            text_problems.append((column, DataError(
                "numeric-type", _where(config, column),
                f"holds {len(text)} value(s) that are not numbers, in {label(text)} "
                f"(e.g. {brief(out[column].iloc[text[0]])}).",
                "clean the export: numbers only, '.' as the decimal mark, no currency signs, thousands "
                "separators or text such as 'n/a'.")))
        values = numbers.to_numpy(dtype=float)
        huge = [i for i, v in enumerate(values) if math.isfinite(v) and abs(v) > MAX_ABS_VALUE]
        if huge:
            size_problems.append((column, DataError(
                "value-too-large", _where(config, column),
                f"holds {len(huge)} value(s) beyond +-{MAX_ABS_VALUE:.0e}, in {label(huge)} "
                f"(e.g. {values[huge[0]]:.3g}); the fit cannot be computed in floating point at that size.",
                "check the export's units (cents, a missing decimal point) or rescale the column, e.g. to "
                "thousands.")))
        out[column] = numbers
    return text_problems + size_problems


def normalise(table: pd.DataFrame, config: PipelineConfig) -> pd.DataFrame:
    """Keep the used columns, rename the date to `week`, parse dates and numbers, sort by week."""
    out = _selected(table, config)
    dates = _parse_dates(out[config.data.date_column], config)
    out = out.drop(columns=[config.data.date_column])
    problems = _numeric_problems(out, dates, config)
    if problems:
        _, first = problems[0]
        others = [column for column, p in problems[1:] if p.rule == first.rule]
        kind = "with text" if first.rule == "numeric-type" else "too large"
        more = f" Other columns {kind}: {', '.join(others)}." if others else ""
        raise DataError(first.rule, first.place, first.detail + more, first.fix)
    out.insert(0, WEEK, dates.to_numpy())
    return out.sort_values(WEEK, kind="stable").reset_index(drop=True)


def schema_problems(config: PipelineConfig) -> list[CmmmError]:
    """Every problem of the data file against the config that can be seen without running the
    pipeline: unreadable file, duplicated or missing columns, no rows, dates that are not dates,
    text in number columns, values beyond the fit's range, experiments outside the data's weeks.
    Value rules over rows (gaps, negatives, nulls) stay with the data-quality suite of the run."""
    try:
        column = config.data.market_column  # the schema of every market at once: their rows share it
        table = read_data_file(config.data.path, config.data.table, used_columns(config) + ([column] if column else []))
        if column is not None:
            from cmmm_pipeline.data.markets import markets_in, require_market_column

            require_market_column(table, column, str(config.data.path))
            markets_in(table[column], str(config.data.path))
            table = table.drop(columns=[column])
        out = _selected(table, config)
    except CmmmError as exc:
        return [exc]
    problems: list[CmmmError] = []
    try:
        dates: pd.Series | None = _parse_dates(out[config.data.date_column], config)
    except CmmmError as exc:
        problems.append(exc)
        dates = None
    out = out.drop(columns=[config.data.date_column])
    problems.extend(p for _, p in _numeric_problems(out, dates, config))
    if dates is not None:
        try:
            check_experiment_dates(pd.DataFrame({WEEK: dates}), WEEK, config)
        except CmmmError as exc:
            problems.append(exc)
        problems.extend(campaign_problems(out.assign(**{WEEK: dates.to_numpy()}), WEEK, config))
    return problems


def load_raw(config: PipelineConfig, market: str | None = None) -> pd.DataFrame:
    """Read (one market's rows when the export holds several), normalise, and refuse experiments
    that fall outside the data's weeks."""
    raw = normalise(read_table(config, market), config)
    check_experiment_dates(raw, WEEK, config)
    check_campaigns(raw, WEEK, config)
    return raw


def spend_totals(raw: pd.DataFrame, config: PipelineConfig) -> dict[str, float]:
    return {c.name: float(np.nansum(raw[c.spend_column].to_numpy())) for c in config.channels}


def export_markets(path: Path, table: str | None, column: str) -> list[str]:
    """The markets an export holds, reading only its market column (the sensor's cheap look)."""
    from cmmm_pipeline.data.markets import markets_in, require_market_column

    data = read_data_file(path, table, [column])
    require_market_column(data, column, str(path))
    return markets_in(data[column], str(path))

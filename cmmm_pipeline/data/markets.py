"""Markets: one model per value of `data.market_column`, each in its own folder and warehouse.

A market's name becomes a folder name and a Dagster partition key, so it is held to a safe
alphabet; each market's run reads only its own rows, locks only its own warehouse and publishes
only under `<output>/markets/<market>/`, so markets never contend and a bad one fails alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cmmm_pipeline.core.errors import DataError, clip

if TYPE_CHECKING:
    import pandas as pd

MARKETS_DIR = "markets"
MARKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Letters, digits, `_`, `.`, `-`; starts with a letter or digit (never `.`/`..`), at most 64."""
MAX_MARKETS = 2000
"""A bound on partitions per export: past it a column is more likely an id than a market."""


def is_market_name(name: str) -> bool:
    return bool(MARKET_NAME.fullmatch(name)) and name not in {".", ".."}


def market_folder(output_dir: str | Path, market: str) -> Path:
    """`<output>/markets/<market>`: the market's publication (runs/, current, report.html, ...)."""
    return Path(output_dir) / MARKETS_DIR / market


def market_warehouse(database: str | Path, market: str) -> Path:
    """The market's own DuckDB file, beside the configured one: `<dir>/markets/<market>/<file name>`."""
    database = Path(database)
    return database.parent / MARKETS_DIR / market / database.name


def check_market_folders(output_dir: str | Path, database: str | Path, market: str) -> None:
    """A market's folders are real folders: `markets/` or `markets/<market>` as a link would lead
    the run's writes (and its pruning) out of the output folder."""
    from cmmm_pipeline.publish.preflight import OutputError

    if not is_market_name(market):
        raise OutputError("market-name", f"partition '{clip(market, 80)}'",
                          "cannot be a folder name (letters, digits, '_', '.', '-'; at most 64).",
                          "delete the partition in the UI and correct the market's name in the export.")
    for folder in dict.fromkeys((Path(output_dir) / MARKETS_DIR, market_folder(output_dir, market),
                                 market_warehouse(database, market).parent)):
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise OutputError("output-not-ours", str(folder),
                              "is a link or a file where the market's folder belongs; the pipeline never writes "
                              "through a link.", "move it away; the run creates the folder.")


def markets_in(values: Iterable[object], where: str) -> list[str]:
    """The distinct markets of an export's market column, in first-seen order, each a valid name."""
    import pandas as pd

    names = pd.unique(pd.Series(list(values), dtype="object").dropna().astype(str).str.strip())
    bad = [n for n in names if not is_market_name(n)]
    if bad:
        raise DataError("market-name", where,
                        f"holds market names that cannot be folder names or partition keys: "
                        f"{clip(', '.join(repr(b) for b in bad[:5]), 200)}.",
                        "use letters, digits, '_', '.' or '-' (at most 64, starting with a letter or digit).")
    if len(names) > MAX_MARKETS:
        raise DataError("market-count", where, f"has {len(names)} distinct values (at most {MAX_MARKETS}).",
                        "check that data.market_column names the market, not a row id.")
    return [str(n) for n in names]


def require_market_column(table: pd.DataFrame, column: str, where: str) -> None:
    if column not in table.columns:
        raise DataError("column-missing", f"{where} column '{column}'",
                        "is named by data.market_column but absent from the data.",
                        "add the market column to the export or fix data.market_column.")


def select_market(table: pd.DataFrame, column: str, market: str, where: str) -> pd.DataFrame:
    """The rows of one market, without the market column: the table a single-market run reads."""
    require_market_column(table, column, where)
    labels = table[column].astype("string").str.strip()
    rows = table.loc[labels == market].drop(columns=[column])
    if rows.empty:
        present = markets_in(table[column], where)
        raise DataError("market-unknown", f"{where} column '{column}'",
                        f"has no rows for market '{clip(market, 64)}' (markets present: "
                        f"{clip(', '.join(present), 300)}).",
                        "remove the market from data.markets, or re-export the data with its rows.")
    return rows.reset_index(drop=True)


def market_of(estimates: pd.DataFrame) -> str | None:
    """The market a publication describes: its estimates carry it (None for a single market)."""
    if "market" not in estimates.columns or estimates.empty:
        return None
    return str(estimates["market"].iloc[0])


def with_market(table: pd.DataFrame, market: str | None) -> pd.DataFrame:
    """The table with the market as its first column (unchanged for a single-market run), so a
    market's CSVs and tables say which market they describe when they are gathered."""
    if market is None or "market" in table.columns:
        return table
    out = table.copy()
    out.insert(0, "market", market)
    return out


def published_estimates(database: str | Path, markets: Iterable[str]) -> tuple[pd.DataFrame, list[str]]:
    """Every market's published estimates, gathered (read-only, each warehouse in turn), and the
    markets that have no publication yet."""
    import duckdb
    import pandas as pd

    from cmmm_pipeline.data import warehouse

    frames, missing = [], []
    for market in markets:
        path = market_warehouse(database, market)
        if not path.is_file():
            missing.append(market)
            continue
        with duckdb.connect(str(path), read_only=True) as con:
            if warehouse.published_run(con) is None:
                missing.append(market)
                continue
            frames.append(with_market(warehouse.read_table(con, "estimates", warehouse.PUBLISHED), market))
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), missing

"""Small seeded tables with the exact headers of public MMM exports, for `cmmm init`: nothing is
downloaded, only the column names are real (each builder says where they come from) and the
values are plausible for their role (bursty spend with zero weeks, impressions proportional to
spend, 0/1 event dummies, a positive KPI driven by the media)."""

from __future__ import annotations

import numpy as np
import pandas as pd

WEEKS = 104


def _dates(n: int = WEEKS) -> pd.Series:
    return pd.Series(pd.date_range("2022-01-03", periods=n, freq="W-MON").strftime("%Y-%m-%d"))


def _bursty(rng: np.random.Generator, n: int, zero_share: float, scale: float) -> np.ndarray:
    """Flighted spend: zero in about `zero_share` of the weeks, gamma-distributed bursts otherwise."""
    return np.round(np.where(rng.random(n) < zero_share, 0.0, rng.gamma(2.0, scale / 2.0, n)), 2)


def _always_on(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return np.round(scale * rng.lognormal(0.0, 0.35, n), 2)


def _kpi(rng: np.random.Generator, base: float, *drivers: np.ndarray) -> np.ndarray:
    n = len(drivers[0])
    season = 1.0 + 0.15 * np.sin(2 * np.pi * np.arange(n) / 52.0)
    media = sum(np.sqrt(d / max(float(d.max()), 1e-9)) for d in drivers)
    return np.round(base * (season + 0.2 * media) * rng.lognormal(0.0, 0.05, n), 4)


def pymc_marketing(seed: int = 1) -> pd.DataFrame:
    """pymc-labs/pymc-marketing `data/mmm_example.csv`: max-scaled media x1, x2, two one-week events,
    and the day of the year and a time index as columns."""
    rng = np.random.default_rng(seed)
    dates = _dates()
    x1 = np.round(rng.uniform(0.0, 1.0, WEEKS) * (rng.random(WEEKS) > 0.03), 4)
    x2 = np.round(_bursty(rng, WEEKS, 0.6, 0.5) / 1.5, 4).clip(0, 1)
    event_1, event_2 = np.zeros(WEEKS), np.zeros(WEEKS)
    event_1[30], event_2[80] = 1.0, 1.0
    return pd.DataFrame({"date_week": dates, "y": _kpi(rng, 5000.0, x1, x2) + 800 * event_1 + 1200 * event_2,
                         "x1": x1, "x2": x2, "event_1": event_1, "event_2": event_2,
                         "dayofyear": pd.to_datetime(dates).dt.dayofyear, "t": np.arange(WEEKS)})


def param_recovery(seed: int = 2, spend_suffix: str = "") -> pd.DataFrame:
    """pymc-labs/mmm-param-recovery `input_data_RAW.csv` (date_week, y, x1..x4, c1..c3): max-scaled
    media (x3 starts in the second year, x4 is mostly off), two 0/1 controls and a continuous one in
    [0, 1]. `spend_suffix` renames the media columns (x1 -> x1_spend), as a user would."""
    rng = np.random.default_rng(seed)
    x1 = np.round(rng.uniform(0.0, 0.7, WEEKS) * (rng.random(WEEKS) > 0.03), 4)
    x2 = np.round(rng.uniform(0.0, 1.0, WEEKS) * (rng.random(WEEKS) > 0.1), 4)
    x3 = np.round(np.where(np.arange(WEEKS) < 52, 0.0, rng.uniform(0.1, 1.0, WEEKS)), 4)
    x4 = np.round(np.where(rng.random(WEEKS) < 0.8, 0.0, rng.uniform(0.2, 1.0, WEEKS)), 4)
    c1 = (rng.random(WEEKS) < 0.15).astype(float)
    c2 = (rng.random(WEEKS) < 0.03).astype(float)
    c3 = np.round(rng.uniform(0.0, 1.0, WEEKS) ** 2, 4)
    c3[10] = 0.0
    y = _kpi(rng, 4.0, x1, x2, x3, x4) + 0.5 * c1 + 1.5 * c2 + 0.3 * c3
    table = pd.DataFrame({"date_week": _dates(), "y": y, "x1": x1, "x2": x2, "x3": x3, "x4": x4,
                          "c1": c1, "c2": c2, "c3": c3})
    return table.rename(columns={f"x{i}": f"x{i}{spend_suffix}" for i in range(1, 5)})


def robyn(seed: int = 3) -> pd.DataFrame:
    """facebookexperimental/Robyn `dt_simulated_weekly`: `_S` spend, `_I` impressions, `_P` clicks,
    `_B` a baseline (context) variable, a text events column and an organic newsletter."""
    rng = np.random.default_rng(seed)
    tv, ooh = _bursty(rng, WEEKS, 0.5, 60000.0), _bursty(rng, WEEKS, 0.6, 300000.0)
    print_ = _bursty(rng, WEEKS, 0.5, 10000.0)
    facebook, search = _always_on(rng, WEEKS, 20000.0), _always_on(rng, WEEKS, 30000.0)
    newsletter = _bursty(rng, WEEKS, 0.3, 20000.0)
    competitor = np.round(6e6 * rng.lognormal(0.0, 0.2, WEEKS))
    events = np.where(rng.random(WEEKS) < 0.9, "na", np.where(rng.random(WEEKS) < 0.5, "event1", "event2"))
    revenue = _kpi(rng, 1.5e6, tv, ooh, print_, facebook, search, newsletter) + 0.05 * competitor
    return pd.DataFrame({
        "DATE": _dates(), "revenue": revenue, "tv_S": tv, "ooh_S": ooh, "print_S": print_,
        "facebook_I": np.round(facebook / 2.3 * 1000 * rng.lognormal(0.0, 0.1, WEEKS)),
        "search_clicks_P": np.round(search / 0.95 * rng.lognormal(0.0, 0.1, WEEKS)), "search_S": search,
        "competitor_sales_B": competitor, "facebook_S": facebook, "events": events, "newsletter": newsletter})


def meridian(seed: int = 4, geos: int = 0) -> pd.DataFrame:
    """google/meridian's simulated samples: `national_all_channels.csv` (time, five channels with
    `_impression` and `_spend`, an organic channel, two `_control` columns, Promo, conversions and
    revenue_per_conversion); with `geos`, `geo_all_channels.csv`: one row per geo and week, with
    `geo` first and `population` last."""
    rng = np.random.default_rng(seed)
    n_geo = max(geos, 1)
    rows = WEEKS * n_geo
    columns: dict[str, object] = {}
    if geos:
        columns["geo"] = np.tile([f"Geo{g}" for g in range(n_geo)], WEEKS)
    columns["time"] = np.repeat(_dates().to_numpy(), n_geo)
    spends = [_bursty(rng, rows, share, scale) for share, scale in
              [(0.15, 12000.0), (0.5, 6000.0), (0.4, 5000.0), (0.05, 20000.0), (0.2, 9000.0)]]
    for i, spend in enumerate(spends):
        columns[f"Channel{i}_impression"] = np.round(spend / 7.4 * 1000 * rng.lognormal(0.0, 0.05, rows), 2)
    for i, spend in enumerate(spends):
        columns[f"Channel{i}_spend"] = spend
    columns["Organic_channel0_impression"] = _bursty(rng, rows, 0.45, 800000.0)
    columns["competitor_sales_control"] = np.round(rng.normal(0.0, 1.2, rows), 4)
    columns["sentiment_score_control"] = np.round(rng.normal(0.0, 1.2, rows), 4)
    columns["Promo"] = np.round(np.where(rng.random(rows) < 0.5, 0.0, rng.uniform(0.05, 2.0, rows)), 4)
    columns["conversions"] = np.round(_kpi(rng, 1.0e7, *spends) + 3e5 * np.asarray(columns["Promo"]))
    columns["revenue_per_conversion"] = np.round(0.0242 + rng.normal(0.0, 0.0002, rows), 6)
    if geos:
        columns["population"] = np.tile(np.round(rng.uniform(1e5, 1e6, n_geo)), WEEKS)
    return pd.DataFrame(columns)


PYSIMMMULATOR_CHANNELS = ("Amazon", "TV", "Long-Form Video", "Search")


def pysimmmulator(seed: int = 5, channels: tuple[str, ...] = PYSIMMMULATOR_CHANNELS,
                  clicks: tuple[str, ...] = ("Search",)) -> pd.DataFrame:
    """pysimmmulator 0.6.2 (`pysimmm -i example_config.yaml`, weekly): the index `week_start`, then
    `<channel>_impressions` (or `_clicks`), `<channel>_reach` and `_frequency` (all zero unless
    reach and frequency are simulated), `<channel>_spend` (clicks channels first) and
    `total_revenue` — the header of its `mmm_input_df.csv` with the example config's channels."""
    rng = np.random.default_rng(seed)
    impressions = [c for c in channels if c not in clicks]
    ordered = [*clicks, *impressions]
    spend = {c: _always_on(rng, WEEKS, 700000.0 / (1 + i)) for i, c in enumerate(ordered)}
    table: dict[str, object] = {"week_start": _dates()}
    for c in impressions:
        table[f"{c}_impressions"] = np.round(spend[c] / 3.5 * 1000 * rng.lognormal(0.0, 0.05, WEEKS))
    for c in clicks:
        table[f"{c}_clicks"] = np.round(spend[c] / 2.6 * rng.lognormal(0.0, 0.05, WEEKS))
    for c in impressions:
        table[f"{c}_reach"] = 0.0
        table[f"{c}_frequency"] = 0.0
    for c in ordered:
        table[f"{c}_spend"] = spend[c]
    table["total_revenue"] = _kpi(rng, 2.5e7, *spend.values())
    return pd.DataFrame(table)


def generic(seed: int = 6) -> pd.DataFrame:
    """Anonymous columns: only the values can tell the KPI (positive every week), the spend (zero
    weeks and bursts), a price (steady, never zero) and a 0/1 dummy apart."""
    rng = np.random.default_rng(seed)
    b = _bursty(rng, WEEKS, 0.35, 5000.0)
    d = (rng.random(WEEKS) < 0.1).astype(float)
    return pd.DataFrame({"date": _dates(), "a": _kpi(rng, 20000.0, b) + 3000 * d, "b": b,
                         "c": np.round(9.99 * rng.lognormal(0.0, 0.04, WEEKS), 2), "d": d})

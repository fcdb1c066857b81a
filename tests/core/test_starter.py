"""`cmmm init` on the headers of public MMM exports (PyMC-Marketing, mmm-param-recovery, Robyn,
Meridian, PySiMMMulator) and on anonymous columns: the roles it assigns (KPI, one channel per
medium with its spend as the treatment, controls, what it leaves out), the DECIDE marks with their
reasons, the refusals, and that every written config loads and validates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cmmm_pipeline.cli import main
from cmmm_pipeline.core.errors import DataError
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.core.starter import Metric, Starter, guess_roles, read_name, read_values, time_feature
from tests.core import public_headers as headers

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Expected:
    kpi: str
    channels: list[tuple[str, str]]
    controls: list[str]
    left_out: set[str] = field(default_factory=set)
    decide: set[str] = field(default_factory=set)
    """Channels, controls, left-out columns and the KPI marked DECIDE (by channel name or column)."""
    beside: dict[str, tuple[str, ...]] = field(default_factory=dict)


GENERATED = ["seasonality", "trend"]
CASES = {
    "pymc_marketing": (headers.pymc_marketing(), Expected(
        "y", [("x1", "x1"), ("x2", "x2")], ["event_1", "event_2"], {"dayofyear", "t"}, {"x1", "x2"})),
    "param_recovery": (headers.param_recovery(), Expected(
        "y", [(f"x{i}", f"x{i}") for i in range(1, 5)], ["c1", "c2", "c3"], set(), {"x1", "x2", "x3", "x4", "c3"})),
    "param_recovery_renamed": (headers.param_recovery(spend_suffix="_spend"), Expected(
        "y", [(f"x{i}", f"x{i}_spend") for i in range(1, 5)], ["c1", "c2", "c3"], set(), {"c3"})),
    "robyn": (headers.robyn(), Expected(
        "revenue", [("tv", "tv_S"), ("ooh", "ooh_S"), ("print", "print_S"), ("facebook", "facebook_S"),
                    ("search", "search_S"), ("newsletter", "newsletter")],
        ["competitor_sales_B"], {"events"}, {"newsletter", "events"},
        {"facebook": ("facebook_I",), "search": ("search_clicks_P",)})),
    "meridian_national": (headers.meridian(), Expected(
        "conversions", [*((f"channel{i}", f"Channel{i}_spend") for i in range(5)),
                        ("organic_channel0", "Organic_channel0_impression")],
        ["competitor_sales_control", "sentiment_score_control", "Promo"], {"revenue_per_conversion"},
        {"organic_channel0", "Promo", "revenue_per_conversion"},
        {f"channel{i}": (f"Channel{i}_impression",) for i in range(5)})),
    "meridian_geo": (headers.meridian(geos=3), Expected(
        "conversions", [*((f"channel{i}", f"Channel{i}_spend") for i in range(5)),
                        ("organic_channel0", "Organic_channel0_impression")],
        ["competitor_sales_control", "sentiment_score_control", "Promo"],
        {"geo", "revenue_per_conversion", "population"},
        {"organic_channel0", "Promo", "geo", "revenue_per_conversion", "population"})),
    "pysimmmulator": (headers.pysimmmulator(), Expected(
        "total_revenue", [("amazon", "Amazon_spend"), ("tv", "TV_spend"), ("long_form_video", "Long-Form Video_spend"),
                          ("search", "Search_spend")], [],
        {f"{c}_{m}" for c in ("Amazon", "TV", "Long-Form Video") for m in ("reach", "frequency")}, set(),
        {"amazon": ("Amazon_impressions",), "long_form_video": ("Long-Form Video_impressions",),
         "search": ("Search_clicks",)})),
    "generic": (headers.generic(), Expected("a", [("b", "b")], ["c", "d"], set(), {"a", "b", "c"})),
}


def _init(tmp_path: Path, table: pd.DataFrame, name: str = "export.csv") -> tuple[int, Path]:
    table.to_csv(tmp_path / name, index=False)
    config = tmp_path / "config.yaml"
    return main(["init", str(tmp_path / name), "--output", str(config)]), config


def _decided(text: str) -> set[str]:
    """The names on the DECIDE lines of a written config (the KPI's column, channels, other columns)."""
    found = set(re.findall(r"# DECIDE KPI '([^']+)':", text))
    return found | set(re.findall(r"#\s+DECIDE ([^:\s]+):", text))


@pytest.mark.parametrize("case", list(CASES))
def test_init_assigns_the_roles_of_public_exports_and_the_config_validates(
        tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    table, expected = CASES[case]
    status, path = _init(tmp_path, table, f"{case}.csv")
    out, err = capsys.readouterr()
    assert status == 0 and err == "", err
    starter = guess_roles(table, tmp_path / f"{case}.csv")
    config = load_config(path)
    assert config.kpi == expected.kpi == starter.kpi.column
    assert [(c.name, c.spend_column) for c in config.channels] == expected.channels
    assert list(config.controls) == [*GENERATED, *expected.controls]
    assert {r.column for r in starter.left_out} >= expected.left_out
    assert not {r.column for r in starter.left_out} & {config.kpi, *(c.spend_column for c in config.channels)}
    marked = {c.name for c in starter.channels if c.decide} | {r.column for r in (*starter.controls,
                                                                                   *starter.left_out) if r.decide}
    marked |= {starter.kpi.column} if starter.kpi.decide else set()
    assert marked == expected.decide
    text = path.read_text(encoding="utf-8")
    assert _decided(text) == expected.decide
    for channel, beside in expected.beside.items():
        line = next(li for li in text.splitlines() if li.startswith(f"  {channel}: "))
        assert all(b in line.split("# beside it, not a channel:")[1] for b in beside), line
    decisions = len(expected.decide) + len(starter.notes)  # a note on the whole table is a decision too
    assert starter.decisions == decisions and f"KPI '{expected.kpi}'" in out
    assert (f"decide the {decisions} item(s) marked DECIDE" in out) == bool(decisions)
    assert main(["validate", "--config", str(path)]) == 0
    assert "valid (" in capsys.readouterr().out


def test_one_channel_per_medium_with_its_spend_never_its_impressions(tmp_path: Path) -> None:
    """The PySiMMMulator case of the issue: amazon_spend and amazon_impressions (and three more media)
    made 8 channels on main; now 4, each treated by its spend, the impressions or clicks beside it."""
    table = headers.pysimmmulator(channels=("amazon", "tv", "facebook", "search"), clicks=("search",))
    starter = guess_roles(table, tmp_path / "export.csv")
    assert [(c.name, c.spend_column, c.beside[:1]) for c in starter.channels] == [
        ("amazon", "amazon_spend", ("amazon_impressions",)), ("tv", "tv_spend", ("tv_impressions",)),
        ("facebook", "facebook_spend", ("facebook_impressions",)), ("search", "search_spend", ("search_clicks",))]
    assert starter.kpi.column == "total_revenue" and not starter.kpi.decide and starter.decisions == 0


def test_a_medium_with_impressions_only_is_a_channel_to_decide(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    table = headers.pysimmmulator(seed=11).drop(columns=["TV_spend"])
    table["tv_grps"] = np.round(rng.gamma(2.0, 50.0, len(table)), 1)
    starter = guess_roles(table, tmp_path / "export.csv")
    tv = next(c for c in starter.channels if c.name == "tv")
    assert tv.spend_column == "TV_impressions" and tv.beside == ("tv_grps",) and tv.decide
    assert "no spend column for medium 'tv'" in tv.reason and "per impression" in tv.reason


def test_the_kpi_is_found_by_its_values_when_no_name_says_so(tmp_path: Path) -> None:
    """Anonymous columns in another order: the KPI is the always-positive column that moves with the
    spend-like one, not the first column (a steady price is positive too)."""
    table = headers.generic()[["date", "c", "d", "b", "a"]]
    starter = guess_roles(table, tmp_path / "export.csv")
    assert starter.kpi.column == "a" and starter.kpi.decide
    assert "moves most with the spend-like columns" in starter.kpi.reason
    assert [(c.name, c.spend_column) for c in starter.channels] == [("b", "b")]
    assert [r.column for r in starter.controls] == ["c", "d"]


def test_two_kpi_like_columns_keep_the_first_and_leave_the_other_out_to_decide(tmp_path: Path) -> None:
    table = headers.pysimmmulator().assign(orders=lambda t: np.round(t["total_revenue"] / 14.0))
    starter = guess_roles(table, tmp_path / "export.csv")
    assert starter.kpi.column == "total_revenue" and starter.kpi.decide and "orders" in starter.kpi.reason
    orders = next(r for r in starter.left_out if r.column == "orders")
    assert orders.decide and "another outcome" in orders.reason


def test_no_channel_named_or_shaped_promotes_the_most_spend_like_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    n = headers.WEEKS
    table = pd.DataFrame({"week": pd.date_range("2023-01-02", periods=n, freq="W-MON"),
                          "sales": np.round(1000 + rng.normal(0, 50, n), 2),
                          "price": np.round(9.99 + rng.normal(0, 0.2, n), 2),
                          "footfall": np.round(300 * rng.lognormal(0, 0.3, n))})
    starter = guess_roles(table, tmp_path / "export.csv")
    assert [(c.name, c.spend_column, c.decide) for c in starter.channels] == [("footfall", "footfall", True)]
    assert [r.column for r in starter.controls] == ["price"]


def test_text_cells_in_a_used_column_are_a_decision_and_the_only_validate_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table = headers.pysimmmulator().astype({"TV_spend": object})
    table.loc[7, "TV_spend"] = "$99"
    status, path = _init(tmp_path, table)
    assert status == 0
    text = path.read_text(encoding="utf-8")
    assert re.search(r"# DECIDE tv: the spend of medium 'tv'; 1 cell\(s\) of 'TV_spend' are empty or text", text)
    capsys.readouterr()
    assert main(["validate", "--config", str(path)]) == 2
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cmmm: [")]
    assert len(problems) == 1 and problems[0].startswith("cmmm: [numeric-type]") and "TV_spend" in problems[0]


@pytest.mark.parametrize(("content", "rule", "named"), [
    ("Amazon_spend,total_revenue\n1,2\n3,4\n", "init-no-date-column", "Amazon_spend"),
    ("week,channel,comment\n2024-01-01,tv,good\n2024-01-08,tv,bad\n", "init-too-few-numeric-columns", "none"),
    ("week,sales\n2024-01-01,2\n2024-01-08,4\n", "init-too-few-numeric-columns", "sales"),
    ("week,sales,region\n2024-01-01,2,north\n2024-01-08,4,north\n", "init-too-few-numeric-columns", "region"),
])
def test_refusals_name_a_rule_documented_for_init(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  content: str, rule: str, named: str) -> None:
    (tmp_path / "export.csv").write_text(content, encoding="utf-8")
    assert main(["init", str(tmp_path / "export.csv"), "--output", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cmmm: [{rule}] ") and named in err and " Fix: " in err, err
    assert not (tmp_path / "config.yaml").exists()
    checks = (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    row = next(line for line in checks.splitlines() if line.startswith(f"| `{rule}`"))
    assert "cmmm init" in row


def test_a_pysimmmulator_export_without_its_date_index_is_refused_with_the_fix(tmp_path: Path) -> None:
    """pysimmmulator's own `to_csv(index=False)` (before 0.6) dropped the weekly dates."""
    with pytest.raises(DataError) as info:
        guess_roles(headers.pysimmmulator().drop(columns=["week_start"]), tmp_path / "mmm_input_df.csv")
    assert info.value.rule == "init-no-date-column" and "index=True" in info.value.fix


@pytest.mark.parametrize(("column", "metric", "medium"), [
    ("tv_S", Metric.SPEND, "tv"), ("facebook_I", Metric.ACTIVITY, "facebook"),
    ("search_clicks_P", Metric.ACTIVITY, "search"), ("Channel3_impression", Metric.ACTIVITY, "channel3"),
    ("Long-Form Video_spend", Metric.SPEND, "long_form_video"), ("TV Cost", Metric.SPEND, "tv"),
    ("spend_eur_facebook", Metric.SPEND, "facebook"), ("cost_per_click", Metric.NONE, "cost_per_click"),
    ("competitor_sales_B", Metric.NONE, "competitor_sales"), ("x1", Metric.NONE, "x1"),
    ("fb_spend", Metric.SPEND, "facebook"), ("TV_GRPs", Metric.ACTIVITY, "tv"),
])
def test_names_are_read_in_the_conventions_of_common_exports(column: str, metric: Metric, medium: str) -> None:
    name = read_name(column)
    assert (name.metric, name.medium) == (metric, medium)
    assert name.baseline == column.endswith("_B")


def test_values_tell_spend_from_prices_dummies_and_signed_columns() -> None:
    rng = np.random.default_rng(13)
    flighted = pd.Series(np.where(rng.random(200) < 0.3, 0.0, rng.gamma(2.0, 500.0, 200)))
    always_on = pd.Series(1000 * rng.lognormal(0.0, 0.6, 200))
    price = pd.Series(9.99 * rng.lognormal(0.0, 0.05, 200))
    dummy = pd.Series((rng.random(200) < 0.1).astype(float))
    signed = pd.Series(rng.normal(0.0, 1.0, 200))
    assert read_values(flighted).spend_like and read_values(always_on).spend_like
    assert not any(read_values(s).spend_like for s in (price, dummy, signed))
    assert read_values(flighted).zero_share == pytest.approx(float((flighted == 0).mean()))
    assert read_values(price).cv == pytest.approx(float(price.std(ddof=0) / price.mean()))


def test_time_indexes_and_calendar_fields_are_recognised() -> None:
    dates = pd.Series(pd.date_range("2022-01-03", periods=60, freq="W-MON"))
    assert "straight line" in time_feature(pd.Series(np.arange(60) + 100), dates)
    assert "day of the year" in time_feature(dates.dt.dayofyear, dates)
    assert "week of the year" in time_feature(dates.dt.isocalendar().week.astype(int) - 1, dates)
    assert time_feature(pd.Series(np.random.default_rng(14).random(60)), dates) is None


def test_the_panel_note_names_the_market_column_and_rows_per_week(tmp_path: Path) -> None:
    starter: Starter = guess_roles(headers.meridian(geos=3), tmp_path / "geo.csv")
    assert len(starter.notes) == 1 and "3 rows per date (one per value of 'geo')" in starter.notes[0]
    assert "one-row-per-week" in starter.notes[0]


def test_the_written_yaml_keeps_comments_within_the_line_limit(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    _, path = _init(tmp_path, headers.meridian(geos=3))
    capsys.readouterr()
    text = path.read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines() if line.lstrip().startswith("#")) <= 120
    assert yaml.safe_load(text)["data"]["kpi"] == "conversions"


@pytest.mark.slow
def test_init_validate_run_on_a_pysimmmulator_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The newcomer's path on a foreign export: spend columns with spaces and hyphens in their names
    run end to end under clean channel names."""
    status, path = _init(tmp_path, headers.pysimmmulator())
    assert status == 0 and main(["validate", "--config", str(path)]) == 0
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    estimates = pd.read_csv(tmp_path / "out" / "estimates.csv")
    assert set(estimates["channel"]) == {"amazon", "tv", "long_form_video", "search"}

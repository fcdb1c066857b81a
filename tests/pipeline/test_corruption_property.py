"""Property: random corruptions of a good data file and config only ever end in the project's own
error (CmmmError) or a failed suite, never in another exception; and whatever the checks let
through really is clean weekly data. Domain level (no Dagster runs), derandomised, so it is fast
and the same examples run every time."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import CmmmError, ConfigError
from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config, parse_config, read_yaml
from cmmm_pipeline.data.ingest import normalise, read_table
from cmmm_pipeline.data.validation import check_experiment_dates
from cmmm_pipeline.media.features import WEEK, build_features, configured_transform
from data_checks.suites import validate_raw_spend, validate_transformed_media

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SOURCE = SAMPLE_DIR / "config.yaml"
CONFIG = load_config(SOURCE)
BASE = pd.read_csv(SAMPLE_DIR / "weekly.csv", dtype=object)
COLUMNS = list(BASE.columns)
ROWS = len(BASE)
CSV_TEXT = (SAMPLE_DIR / "weekly.csv").read_text(encoding="utf-8")
YAML_TEXT = SOURCE.read_text(encoding="utf-8")
RAW_CONFIG = yaml.safe_load(YAML_TEXT)

PROPERTY = settings(max_examples=30, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

cell_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10 ** 20, 10 ** 20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    st.sampled_from(["", "n/a", "1,234.5", "$12", "-0", "1e400", "inf", "-inf", "NaN", "2023-02-30",
                     "2023-01-02", "2023-01-02T00:00:00+05:00", "2024-W05"]),
)

corruptions = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, ROWS - 1), st.sampled_from(COLUMNS), cell_values),
    st.tuples(st.just("fill"), st.sampled_from(COLUMNS), cell_values),
    st.tuples(st.just("drop_rows"), st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=6)),
    st.tuples(st.just("duplicate_row"), st.integers(0, ROWS - 1)),
    st.tuples(st.just("drop_column"), st.sampled_from(COLUMNS)),
    st.tuples(st.just("rename_column"), st.sampled_from(COLUMNS),
              st.sampled_from(["week", "sales", "tv", "Sales", "tv_spend ", "", "0"])),
    st.tuples(st.just("shift_date"), st.integers(0, ROWS - 1), st.integers(-10, 10)),
    st.tuples(st.just("truncate"), st.integers(0, ROWS)),
    st.tuples(st.just("shuffle"), st.integers(0, 2 ** 16)),
)


def corrupt(table: pd.DataFrame, corruption: tuple[Any, ...]) -> pd.DataFrame:
    kind, *args = corruption
    table = table.reset_index(drop=True)
    if kind == "cell":
        row, column, value = args
        if column in table.columns and row < len(table):
            table[column] = table[column].astype(object)
            table.loc[row, column] = value
    elif kind == "fill":
        column, value = args
        if column in table.columns:
            table[column] = pd.Series([value] * len(table), index=table.index, dtype=object)
    elif kind == "drop_rows":
        table = table.drop(index=[r for r in args[0] if r < len(table)])
    elif kind == "duplicate_row":
        if args[0] < len(table):
            table = pd.concat([table, table.iloc[[args[0]]]])
    elif kind == "drop_column":
        table = table.drop(columns=[c for c in [args[0]] if c in table.columns])
    elif kind == "rename_column":
        table = table.rename(columns={args[0]: args[1]})
    elif kind == "shift_date":
        row, days = args
        if "week" in table.columns and row < len(table):
            date = pd.to_datetime(table["week"].iloc[row], errors="coerce")
            if not pd.isna(date):
                table.loc[table.index[row], "week"] = str((date + pd.Timedelta(days=days)).date())
    elif kind == "truncate":
        table = table.head(args[0])
    elif kind == "shuffle":
        table = table.iloc[np.random.default_rng(args[0]).permutation(len(table))]
    return table


def assert_clean(raw: pd.DataFrame, config: PipelineConfig) -> None:
    """What a passing suite promises, checked independently with plain pandas."""
    weeks = pd.to_datetime(raw[WEEK])
    assert weeks.is_unique and weeks.is_monotonic_increasing
    assert (weeks.diff().dropna() == pd.Timedelta(days=7)).all()
    assert len(raw) >= config.checks.min_weeks
    numbers = raw.drop(columns=[WEEK]).to_numpy(dtype=float)
    assert np.isfinite(numbers).all()
    for channel in config.channels:
        spend = raw[channel.spend_column]
        assert (spend >= 0).all() and spend.max() > 0 and spend.nunique() > 1
    assert raw[config.kpi].nunique() > 1


def outcome(table: pd.DataFrame, config: PipelineConfig) -> str:
    """Run ingestion's normalisation and both suites; 'refused', 'failed' or 'passed'."""
    try:
        raw = normalise(table, config)
        check_experiment_dates(raw, WEEK, config)
    except CmmmError:
        return "refused"
    result = validate_raw_spend(raw, config)
    if not result.success:
        with pytest.raises(CmmmError):
            result.raise_for_failures()
        return "failed"
    assert_clean(raw, config)
    features = build_features(raw, config, {c.name: configured_transform(c) for c in config.channels})
    media = validate_transformed_media(features, config)
    if not media.success:
        with pytest.raises(CmmmError):
            media.raise_for_failures()
        return "failed"
    return "passed"


def test_the_uncorrupted_sample_passes() -> None:
    assert outcome(BASE.copy(), CONFIG) == "passed"


@PROPERTY
@given(st.lists(corruptions, min_size=1, max_size=3))
def test_corrupted_tables_end_in_our_error_or_pass_clean(steps: list[tuple[Any, ...]]) -> None:
    table = BASE.copy()
    for step in steps:
        table = corrupt(table, step)
    result = outcome(table, CONFIG)
    event(result)
    assert result in {"refused", "failed", "passed"}


@pytest.fixture(scope="module")
def csv_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrupt_csv")


@PROPERTY
@given(edits=st.lists(st.tuples(st.integers(0, len(CSV_TEXT)), st.integers(0, 40),
                                st.text(alphabet=st.sampled_from(list(',;"\n-.0123456789aeinx ')), max_size=8)),
                      min_size=1, max_size=4))
def test_corrupted_csv_bytes_end_in_our_error_or_pass_clean(csv_folder: Path,
                                                            edits: list[tuple[int, int, str]]) -> None:
    text = CSV_TEXT
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    (csv_folder / "weekly.csv").write_text(text, encoding="utf-8")
    config = parse_config(copy.deepcopy(RAW_CONFIG), csv_folder / "config.yaml")
    try:
        table = read_table(config)
    except CmmmError:
        event("unreadable")
        return
    result = outcome(table, config)
    event(result)
    assert result in {"refused", "failed", "passed"}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


CONFIG_PATHS = _paths(RAW_CONFIG)

yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), st.floats(allow_nan=True),
              st.text(max_size=8), st.dates(min_value=dt.date(1900, 1, 1)),
              st.sampled_from(["tv", "sales", "search", "price", "seasonality", "week", "geometric", "weibull"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _edit(raw: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> None:
    parent = raw
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "set":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[str(value)] = parent.pop(last)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(CONFIG_PATHS), st.sampled_from(["set", "delete", "rename"]), yaml_values),
                min_size=1, max_size=3))
def test_corrupted_configs_end_in_a_config_error_or_a_valid_config(edits: list[tuple[Any, ...]]) -> None:
    raw = copy.deepcopy(RAW_CONFIG)
    for path, action, value in edits:
        try:
            _edit(raw, path, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced this path
    try:
        config = parse_config(raw, SOURCE)
    except ConfigError as error:
        event(error.rule)
        return
    event("valid")
    assert isinstance(config, PipelineConfig)
    assert len(set(config.channel_names)) == len(config.channels)
    build_graph(config)


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, len(YAML_TEXT)), st.integers(0, 12),
                          st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"# \ntvsale0123")), max_size=6)),
                min_size=1, max_size=4))
def test_corrupted_yaml_text_ends_in_a_config_error_or_a_valid_config(edits: list[tuple[int, int, str]]) -> None:
    text = YAML_TEXT
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    try:
        config = parse_config(read_yaml(text, SOURCE), SOURCE)
    except ConfigError as error:
        event(error.rule)
        return
    event("valid")
    assert isinstance(config, PipelineConfig)

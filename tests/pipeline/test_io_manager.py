"""The IO manager and its codec: typed values stored in the run's staging schema come back as the
same types and values; what cannot be stored faithfully is refused."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, build_input_context, build_output_context

from cmmm_pipeline.core.config import AdstockType, EffectType
from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.effects.estimation import EffectSpec, NotEstimated
from cmmm_pipeline.media.features import ChannelTransform, ParameterSource, transforms_table
from resources import codec
from resources.io_manager import StagingIOManager, join_value, split_value
from resources.values import AteEstimates, TransformedMedia

RUN = "6b26cf52-12ab-40e8-a988-ab9c1ecab7dd"
OTHER_RUN = "0f000000-0000-4000-8000-000000000001"

TV = ChannelTransform(channel="tv", adstock=AdstockType.GEOMETRIC, decay=0.6000000000000001, weibull_shape=1.5,
                      weibull_scale=2.0, max_lag=12, half_saturation=1.0 / 3.0, slope=1.4,
                      source=ParameterSource.SELECTED)
SEARCH = ChannelTransform(channel="search", adstock=AdstockType.WEIBULL, decay=float("nan"), weibull_shape=0.7,
                          weibull_scale=3.25, max_lag=8, half_saturation=float("inf"), slope=2.0,
                          source=ParameterSource.CONFIG)


def graph() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(["tv", "search", "seasonality_sin1", "sales"])
    g.add_edges_from([("seasonality_sin1", "tv"), ("tv", "search"), ("tv", "sales"), ("search", "sales")])
    g.edges["tv", "sales"]["weight"] = 0.5
    return g


def test_typed_values_round_trip_exactly_with_their_types() -> None:
    specs = (EffectSpec("tv", EffectType.TOTAL, ("seasonality_sin1",), ()),
             EffectSpec("tv", EffectType.DIRECT, ("seasonality_sin1", "search"), ("search",)))
    value = {"transforms": {"tv": TV, "search": SEARCH}, "specs": specs,
             "failures": (NotEstimated("email", EffectType.TOTAL, "no path | to the KPI"),),
             "keys": {EffectType.TOTAL: 1, ("tv", "direct"): np.int64(2)}, "g": graph()}
    back = codec.loads(codec.dumps(value))
    assert back["transforms"]["tv"] == TV and list(back["transforms"]) == ["tv", "search"]
    assert type(back["transforms"]["tv"].adstock) is AdstockType and back["transforms"]["tv"].decay == 0.6000000000000001
    assert math.isnan(back["transforms"]["search"].decay) and back["transforms"]["search"].half_saturation == math.inf
    assert back["specs"] == specs and isinstance(back["specs"], tuple)
    assert back["failures"][0].reason == "no path | to the KPI"
    assert back["keys"] == {EffectType.TOTAL: 1, ("tv", "direct"): 2}
    assert list(back["g"].nodes) == list(graph().nodes) and list(back["g"].edges) == list(graph().edges)
    assert back["g"].edges["tv", "sales"] == {"weight": 0.5}


def test_what_cannot_be_stored_faithfully_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot store a ndarray"):
        codec.dumps({"x": np.zeros(3)})
    forged = '{"__type__": "dataclass", "class": "os:PathLike", "fields": {}}'
    with pytest.raises(TypeError, match="not a class of this project"):
        codec.loads(forged)


def test_a_step_value_is_its_warehouse_tables_plus_one_typed_document(tmp_path: Path) -> None:
    features = pd.DataFrame({"week": pd.date_range("2024-01-01", periods=3, freq="W-MON"),
                             "tv": [0.0, 0.25, 1.0], "sales": [10.0, 11.5, 12.0]})
    transforms = {"tv": TV}
    value = TransformedMedia(features, transforms_table(transforms), pd.DataFrame({"channel": pd.Series(dtype=str)}),
                             transforms, {"tv": (TV, replace(TV, decay=0.3))}, {"tv": 0})
    tables, value_type, document = split_value("transformed_media", value)
    assert set(tables) == {"transformed_media", "transform_parameters", "transform_selection"}
    assert value_type == "resources.values:TransformedMedia" and '"decay": 0.6000000000000001' in document
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        warehouse.write_step(con, "staging_abc", "transformed_media", tables, value_type, document)
        back = join_value(con, "staging_abc", "transformed_media", *warehouse.read_step(con, "staging_abc",
                                                                                        "transformed_media"))
        stored = con.execute("SELECT tv FROM staging_abc.transformed_media ORDER BY week").fetchall()
    assert isinstance(back, TransformedMedia) and back.transforms == transforms
    assert back.candidates == {"tv": (TV, replace(TV, decay=0.3))} and back.selected_index == {"tv": 0}
    pd.testing.assert_frame_equal(back.transformed_media, features, check_dtype=False)
    assert [r[0] for r in stored] == [0.0, 0.25, 1.0]


def test_the_io_manager_stages_per_run_and_falls_back_to_the_published_run(tmp_path: Path) -> None:
    database = str(tmp_path / "w.duckdb")
    manager = StagingIOManager(database=database)
    value = AteEstimates(pd.DataFrame({"channel": ["tv"], "effect": ["total"], "ate": [1.5]}),
                         (EffectSpec("tv", EffectType.TOTAL, ("price",), ()),), (), graph())
    manager.handle_output(build_output_context(asset_key=AssetKey("ate_estimates"), run_id=RUN), value)
    schema = warehouse.staging_schema(RUN)
    assert schema == "staging_6b26cf5212ab" and warehouse.staging_schema(OTHER_RUN) != schema

    upstream = build_output_context(asset_key=AssetKey("ate_estimates"), run_id=RUN)
    back = manager.load_input(build_input_context(asset_key=AssetKey("ate_estimates"), upstream_output=upstream))
    assert back.specs == value.specs and list(back.expanded.edges) == list(graph().edges)
    assert back.ate_estimates["ate"].tolist() == [1.5]

    # Another run that did not materialise the step reads the published one, or is told what to do.
    other = build_output_context(asset_key=AssetKey("ate_estimates"), run_id=OTHER_RUN)
    with pytest.raises(CmmmError, match=r"\[step-input-missing\].*materialise the whole job"):
        manager.load_input(build_input_context(asset_key=AssetKey("ate_estimates"), upstream_output=other))
    with duckdb.connect(database) as con:
        for table in ("ate_estimates", warehouse.STEP_VALUES_TABLE):
            warehouse.write_tables(con, {table: warehouse.read_table(con, table, schema)}, warehouse.PUBLISHED)
    back = manager.load_input(build_input_context(asset_key=AssetKey("ate_estimates"), upstream_output=other))
    assert back.specs == value.specs


def test_staging_schema_names_are_safe_identifiers() -> None:
    assert warehouse.staging_schema("ABCDEF12-3456-7890-abcd-ef1234567890") == "staging_abcdef123456"
    with pytest.raises(ValueError):
        warehouse.staging_schema("'; DROP SCHEMA published; --")


def test_a_published_value_written_by_an_older_version_is_refused_with_the_rule(tmp_path: Path) -> None:
    """A step value whose stored fields no longer fit its class (a field added since) is a
    `[step-input-missing]` refusal with its fix, not a bare TypeError from deep inside the loader."""
    database = str(tmp_path / "w.duckdb")
    with duckdb.connect(database) as con:
        warehouse.write_step(con, warehouse.PUBLISHED, "ate_estimates",
                             {"ate_estimates": pd.DataFrame({"channel": ["tv"]})},
                             "resources.values:AteEstimates", codec.dumps({"failures": ()}))
    manager = StagingIOManager(database=database)
    context = build_input_context(asset_key=AssetKey("ate_estimates"))
    with pytest.raises(CmmmError, match=r"\[step-input-missing\].*published step 'ate_estimates'.*cannot read"):
        manager.load_input(context)

"""Transformed media and the graph nodes they carry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.graph import build_graph
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.media.features import (
    DEFAULT_DECAY,
    DEFAULT_HALF_SATURATION,
    DEFAULT_SLOPE,
    ParameterSource,
    build_features,
    configured_transform,
    node_columns,
)
from cmmm_pipeline.media.transforms import geometric_adstock, hill_saturation

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"


def _config(tmp_path: Path, channels: str, controls: str = "[seasonality, trend, price]"):  # noqa: ANN202
    (tmp_path / "weekly.csv").write_bytes((SAMPLE / "weekly.csv").read_bytes())
    path = tmp_path / "config.yaml"
    path.write_text(f"data: {{path: weekly.csv, date_column: week, kpi: sales}}\nchannels: {channels}\n"
                    f"controls: {controls}\ngraph: {{edges: [[seasonality, tv], [tv, sales], [seasonality, sales],"
                    f" [trend, sales], [price, sales]]}}\n")
    return load_config(path)


def test_configured_transform_is_applied_exactly(tmp_path: Path) -> None:
    config = _config(tmp_path, "{tv: {spend_column: tv_spend, adstock: {decay: 0.6}, "
                               "saturation: {half_saturation: 1.0, slope: 1.4}}}")
    raw = load_raw(config)
    t = configured_transform(config.channel("tv"))
    assert t.source is ParameterSource.CONFIG
    features = build_features(raw, config, {"tv": t})
    spend = raw["tv_spend"].to_numpy()
    a = geometric_adstock(spend, 0.6)
    np.testing.assert_allclose(features["tv"], hill_saturation(a / a.mean(), 1.0, 1.4))
    assert features["tv"].iloc[np.argmin(spend)] <= features["tv"].max()


def test_omitted_parameters_take_the_documented_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path, "{tv: {spend_column: tv_spend}}")
    t = configured_transform(config.channel("tv"))
    assert (t.decay, t.half_saturation, t.slope) == (DEFAULT_DECAY, DEFAULT_HALF_SATURATION, DEFAULT_SLOPE)
    assert t.source is ParameterSource.DEFAULT


def test_generated_seasonality_is_one_node_over_fourier_columns(tmp_path: Path) -> None:
    config = _config(tmp_path, "{tv: {spend_column: tv_spend}}")
    raw = load_raw(config)
    columns = node_columns(raw, config)
    assert columns["seasonality"] == ["seasonality_sin1", "seasonality_cos1", "seasonality_sin2", "seasonality_cos2"]
    features = build_features(raw, config, {"tv": configured_transform(config.channel("tv"))})
    assert set(columns["seasonality"]) <= set(features.columns)
    assert features["trend"].iloc[0] == 0.0 and features["trend"].iloc[-1] == 1.0
    expanded = expand_graph(build_graph(config), columns)
    # Every Fourier column inherits the node's edges.
    for column in columns["seasonality"]:
        assert set(expanded.successors(column)) == {"tv", "sales"}


def test_a_provided_seasonality_column_is_used_as_is(tmp_path: Path) -> None:
    data = pd.read_csv(SAMPLE / "weekly.csv")
    data["seasonality"] = np.sin(np.arange(len(data)) / 8.3)
    config = _config(tmp_path, "{tv: {spend_column: tv_spend}}")
    data.to_csv(tmp_path / "weekly.csv", index=False)
    raw = load_raw(config)
    assert node_columns(raw, config)["seasonality"] == ["seasonality"]
    features = build_features(raw, config, {"tv": configured_transform(config.channel("tv"))})
    np.testing.assert_allclose(features["seasonality"], data["seasonality"])
    assert not any(c.startswith("seasonality_") for c in features.columns)


def test_zero_spend_gives_zero_transformed_media(tmp_path: Path) -> None:
    config = _config(tmp_path, "{tv: {spend_column: tv_spend}}")
    t = configured_transform(config.channel("tv"))
    assert t.apply(np.zeros(20), reference=123.0) == pytest.approx(np.zeros(20))

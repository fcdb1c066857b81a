"""Shared fixtures: one real run of the pipeline on the bundled sample, reused by the
end-to-end tests that only read its outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "cmmm_pipeline" / "sample"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def sample_config_selecting(*channels: str):  # noqa: ANN201 - PipelineConfig, imported lazily
    """The bundled sample's config with the named channels' transforms left to selection from the data."""
    import yaml

    from cmmm_pipeline.core.loading import parse_config

    source = SAMPLE_DIR / "config.yaml"
    raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    for channel in channels:
        raw["channels"][channel] = {"spend_column": raw["channels"][channel]["spend_column"]}
    return parse_config(raw, source)


def sample_world(raw: pd.DataFrame | None = None) -> dict:
    """The bundled sample (or other data with its columns) as the estimation step sees it, with the
    sample config's transforms, which are the simulator's true ones."""
    from cmmm_pipeline.core.graph import build_graph
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.dag.graph import expand_graph
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.media.features import build_features, configured_transform, node_columns

    config = load_config(SAMPLE_DIR / "config.yaml")
    raw = load_raw(config) if raw is None else raw
    transforms = {c.name: configured_transform(c) for c in config.channels}
    columns = node_columns(raw, config)
    g = build_graph(config)
    return {"config": config, "raw": raw, "transforms": transforms, "columns": columns, "g": g,
            "expanded": expand_graph(g, columns), "features": build_features(raw, config, transforms)}


@pytest.fixture(scope="session")
def sample_truth() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / "truth.csv")


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cmmm run --output DIR` on the bundled sample, once per test session; what it printed is kept
    beside the output folder (`sample_console`)."""
    import contextlib
    import io

    from cmmm_pipeline.cli import main

    output = tmp_path_factory.mktemp("sample_run")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", "--output", str(output)]) == 0
    print(printed.getvalue())
    output.with_name(f"{output.name}.console.txt").write_text(printed.getvalue(), encoding="utf-8")
    return output


def sample_console(sample_run: Path) -> str:
    """What `cmmm run` printed for the `sample_run` fixture."""
    return sample_run.with_name(f"{sample_run.name}.console.txt").read_text(encoding="utf-8")

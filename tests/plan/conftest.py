"""A fitted model of the bundled sample (100 resamples, to keep the tests quick) shared by the plan tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"


def sample_raw_config(**estimation: object) -> dict:
    raw = yaml.safe_load((SAMPLE_DIR / "config.yaml").read_text(encoding="utf-8"))
    raw["estimation"] = {"bootstrap_samples": 100, **estimation}
    return raw


@pytest.fixture(scope="session")
def sample_config():  # noqa: ANN201 - PipelineConfig
    from cmmm_pipeline.core.loading import parse_config

    return parse_config(sample_raw_config(), SAMPLE_DIR / "config.yaml")


@pytest.fixture(scope="session")
def sample_model(sample_config):  # noqa: ANN001, ANN201 - FittedModel
    from cmmm_pipeline.data.ingest import load_raw
    from cmmm_pipeline.plan.model import fit_model

    return fit_model(load_raw(sample_config), sample_config)

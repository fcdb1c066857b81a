"""Missing drivers: a trend, seasonality or strong autocorrelation in the KPI's residual that no node
of the DAG explains is reported with its fix; calibrated by simulation; the WARN asset check."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks import diagnostics_calibration as study
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.dag import diagnostics as dx
from cmmm_pipeline.dag.graph import expand_graph
from cmmm_pipeline.media.features import build_features, configured_transform, node_columns
from cmmm_pipeline.simulation.simulate import simulate
from resources.values import TransformedMedia

SAMPLE = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SETTINGS = dx.DiagnosticSettings()
WORLDS = {w.name: w for w in study.worlds()}


def _diagnose(world: study.World, seed: int = 2000, weeks: int | None = None) -> dx.MissingDriverReport:
    config = study.world_config(world)
    data = simulate(world.scenario, seed).data
    if world.hidden_driver_sd:
        data = data.assign(sales=data["sales"] + study.hidden_driver(len(data), world.hidden_driver_sd, seed))
    if weeks is not None:
        data = data.iloc[:weeks].reset_index(drop=True)
    features = build_features(data, config, {c.name: configured_transform(c) for c in config.channels})
    expanded = expand_graph(nx.DiGraph([tuple(e) for e in config.edges]), node_columns(data, config))
    return dx.diagnose_missing_drivers(features, expanded, config.kpi, SETTINGS)


def _finding(report: dx.MissingDriverReport, driver: dx.Driver) -> dx.DriverFinding:
    return next(f for f in report.findings if f.driver is driver)


def test_a_dag_with_every_driver_reports_nothing_and_skips_what_it_spans() -> None:
    report = _diagnose(WORLDS["every driver in the DAG"])
    assert report.warnings == ()
    assert _finding(report, dx.Driver.TREND).case is dx.MissingDriverCase.EXPLAINED
    assert _finding(report, dx.Driver.SEASONALITY).case is dx.MissingDriverCase.EXPLAINED
    assert "trend" in report.parents and "seasonality_sin1" in report.parents
    assert report.description().startswith("No missing driver")


def test_a_trend_the_config_leaves_out_is_named_with_its_size_and_fix() -> None:
    report = _diagnose(WORLDS["config leaves out the trend (600)"])
    trend = _finding(report, dx.Driver.TREND)
    assert [f.driver for f in report.warnings] == [dx.Driver.TREND]
    assert trend.case.status is Status.REVIEW and trend.p_adjusted < 1e-6
    assert trend.effect_size == pytest.approx(600, rel=0.2)  # the simulator's trend: +600 over the weeks
    assert "add trend to controls" in report.description()
    assert "\n" not in report.description()  # one line for the CLI


def test_seasonality_the_config_leaves_out_is_named() -> None:
    report = _diagnose(WORLDS["config leaves out seasonality (900)"])
    season = _finding(report, dx.Driver.SEASONALITY)
    assert [f.driver for f in report.warnings] == [dx.Driver.SEASONALITY]
    # The simulator's KPI seasonality 900·(sin + 0.5 cos) has amplitude 900·√1.25 ≈ 1006; TV and
    # digital follow the season too and absorb part of it.
    assert 300 < season.effect_size < 1200
    assert "add seasonality to controls" in report.description()


def test_an_unmeasured_slow_driver_shows_as_strong_autocorrelation() -> None:
    report = _diagnose(WORLDS["unmeasured slow driver (AR 0.9, sd 200)"], seed=2001)
    rho = _finding(report, dx.Driver.AUTOCORRELATION)
    assert rho.warns and rho.statistic > SETTINGS.max_autocorrelation
    assert "a driver is missing" in report.description()


def _with_second_harmonic(config_edit, data_edit=None, seed: int = 2000) -> dx.MissingDriverReport:
    """The every-driver world whose KPI season gains a second harmonic (amplitude 600), diagnosed
    under an edited config (and data)."""
    from dataclasses import replace

    world = WORLDS["every driver in the DAG"]
    config = config_edit(study.world_config(world), replace)
    data = simulate(world.scenario, seed).data
    t = np.arange(len(data))
    data = data.assign(sales=data["sales"] + 600.0 * np.sin(4 * np.pi * t / 52.1775))
    if data_edit is not None:
        data = data_edit(data)
    features = build_features(data, config, {c.name: configured_transform(c) for c in config.channels})
    expanded = expand_graph(nx.DiGraph([tuple(e) for e in config.edges]), node_columns(data, config))
    return dx.diagnose_missing_drivers(features, expanded, config.kpi, SETTINGS)


def test_seasonality_already_a_control_is_told_its_form_does_not_fit_not_to_add_it() -> None:
    """One Fourier harmonic in the config, two in the KPI: the finding says seasonality is there and
    what to try (more terms), never "add seasonality to controls"."""
    from cmmm_pipeline.core.config import FeatureConfig

    report = _with_second_harmonic(lambda c, replace: replace(c, features=FeatureConfig(fourier_order=1)))
    season = _finding(report, dx.Driver.SEASONALITY)
    assert season.case is dx.MissingDriverCase.SEASONALITY_FORM and season.p_adjusted < 1e-6
    assert 400 < season.effect_size < 800  # the second harmonic's amplitude, 600
    text = report.description()
    assert "add seasonality to controls" not in text
    assert "although seasonality is a control (1 Fourier harmonic)" in text
    assert "use more Fourier terms (features.fourier_order: 2 or more)" in text
    assert report.table().set_index("driver").loc["seasonality", "recommendation"] == season.advice
    assert _finding(report, dx.Driver.TREND).case is dx.MissingDriverCase.EXPLAINED


def test_a_provided_seasonality_column_that_misses_the_pattern_is_named() -> None:
    def provided(data: pd.DataFrame) -> pd.DataFrame:  # a one-harmonic index the user exported
        return data.assign(seasonality=np.sin(2 * np.pi * np.arange(len(data)) / 52.1775))

    report = _with_second_harmonic(lambda c, replace: c, provided)
    text = report.description()
    assert _finding(report, dx.Driver.SEASONALITY).case is dx.MissingDriverCase.SEASONALITY_FORM
    assert "although seasonality is a control (the provided `seasonality` column)" in text
    assert "add seasonality to controls" not in text and "provide a column that follows it" in text


def test_seasonality_without_an_edge_into_the_kpi_asks_for_the_edge() -> None:
    def no_edge(config, replace):
        return replace(config, edges=tuple(e for e in config.edges if tuple(e) != ("seasonality", "sales")))

    report = _with_second_harmonic(no_edge)
    text = report.description()
    assert _finding(report, dx.Driver.SEASONALITY).case is dx.MissingDriverCase.SEASONALITY_FORM
    assert "seasonality is a control with no edge into sales" in text and "add the edge [seasonality, sales]" in text


def test_too_few_weeks_are_not_tested() -> None:
    report = _diagnose(WORLDS["config leaves out the trend (600)"], weeks=20)
    assert report.warnings == ()
    assert {f.case for f in report.findings} == {dx.MissingDriverCase.UNTESTED}
    assert "only 20 weeks" in report.findings[0].message


def test_the_added_terms_test_is_an_f_test_on_white_noise() -> None:
    rng = np.random.default_rng(5)
    n = 200
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    z = np.linspace(0, 1, n)[:, None]
    y = x @ [1.0, 2.0] + rng.normal(size=n)
    f_stat, p, _ = dx.added_terms_test(y, x, z, dx.DiagnosticSettings(ar_order=0), rng)
    resid = lambda a: y - a @ np.linalg.lstsq(a, y, rcond=None)[0]
    full = np.hstack([x, z])
    expected = ((resid(x) ** 2).sum() - (resid(full) ** 2).sum()) / ((resid(full) ** 2).sum() / (n - 3))
    assert f_stat == pytest.approx(expected, rel=1e-10)
    assert 0 < p < 1


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="alpha"):
        dx.DiagnosticSettings(alpha=1.5)
    with pytest.raises(ValueError, match="max_autocorrelation"):
        dx.DiagnosticSettings(max_autocorrelation=0.0)


def test_false_alarms_are_rare_and_missing_drivers_are_found() -> None:
    """A small run of the calibration benchmark (the full one: benchmarks/diagnostics_calibration.py)."""
    seeds = range(2000, 2020)
    table = pd.concat([study.run_world(w, seeds, SETTINGS) for w in study.worlds()], ignore_index=True)
    null = table[~table["missing"]]
    assert null["any"].mean() <= 0.05
    by_world = table.groupby("world")
    assert by_world["trend"].mean()["config leaves out the trend (600)"] == 1.0
    assert by_world["trend"].mean()["config leaves out the trend (200)"] >= 0.8
    assert by_world["seasonality"].mean()["config leaves out seasonality (300)"] >= 0.9
    assert by_world["autocorrelation"].mean()["unmeasured slow driver (AR 0.9, sd 200)"] >= 0.5


# ---------------------------------------------------------------------------------------------
# The WARN asset check, through Dagster


def _run_check(tmp_path: Path, drop_trend: bool):
    from dagster import asset, materialize

    from assets.causal_dag import causal_dag
    from cmmm_pipeline.core.loading import load_config
    from cmmm_pipeline.data.ingest import load_raw
    from data_checks.diagnostic_checks import DIAGNOSTIC_CHECKS
    from resources.io_manager import StagingIOManager
    from resources.settings import CmmmSettings

    raw_config = yaml.safe_load((SAMPLE / "config.yaml").read_text(encoding="utf-8"))
    raw_config["data"]["path"] = str(SAMPLE / "weekly.csv")
    raw_config.pop("experiments", None)
    if drop_trend:
        raw_config["controls"] = [c for c in raw_config["controls"] if c != "trend"]
        raw_config["graph"]["edges"] = [e for e in raw_config["graph"]["edges"] if "trend" not in e]
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw_config), encoding="utf-8")
    config = load_config(config_path)
    raw = load_raw(config)
    transforms = {c.name: configured_transform(c) for c in config.channels}
    features = build_features(raw, config, transforms)

    @asset(name="raw_spend")
    def raw_spend_stand_in() -> pd.DataFrame:
        return raw

    @asset(name="transformed_media")
    def transformed_media_stand_in() -> TransformedMedia:
        return TransformedMedia(features, pd.DataFrame({"channel": list(transforms)}), pd.DataFrame({"channel": []}),
                                transforms, {c: (t,) for c, t in transforms.items()}, {c: 0 for c in transforms})

    result = materialize([raw_spend_stand_in, transformed_media_stand_in, causal_dag, *DIAGNOSTIC_CHECKS],
                         raise_on_error=False, resources={
                             "settings": CmmmSettings(config_path=str(config_path), output_dir=str(tmp_path / "out")),
                             "io_manager": StagingIOManager(database=str(tmp_path / "warehouse.duckdb"))})
    return {e.check_name: e for e in result.get_asset_check_evaluations()}["missing_drivers"]


def test_the_check_warns_on_the_sample_without_its_trend_and_passes_with_it(tmp_path: Path) -> None:
    warned = _run_check(tmp_path / "without", drop_trend=True)
    assert not warned.passed and warned.severity.value == "WARN"
    assert warned.description.startswith("Missing driver: the KPI's residual drifts by +")
    assert "add trend to controls" in warned.description and "\n" not in warned.description
    assert warned.metadata["missing_drivers"].value == "trend"
    assert warned.metadata["trend_p_adjusted"].value < 1e-6
    passing = _run_check(tmp_path / "with", drop_trend=False)
    assert passing.passed and passing.metadata["missing_drivers"].value == "none"

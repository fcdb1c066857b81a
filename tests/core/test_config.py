"""Config and graph validation: every refusal is a ConfigError that names the rule, the key and the
fix; thresholds are validated at construction; duplicate YAML keys are refused, not collapsed."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmmm_pipeline.core.config import RESERVED_COLUMN, CheckConfig, EstimationConfig, PipelineConfig
from cmmm_pipeline.core.errors import CmmmError, ConfigError, ConfigErrors
from cmmm_pipeline.core.loading import load_config, parse_config
from cmmm_pipeline.media.features import WEEK

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SOURCE = SAMPLE_DIR / "config.yaml"

# A complete config over the sample data (every transform parameter given), fixed here so that the
# tests do not depend on how the bundled sample config is written.
BASE_TEXT = SOURCE.read_text(encoding="utf-8")  # the bundled sample: every transform configured


def sample() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(BASE_TEXT))


def refused(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, SOURCE)
    return info.value


def refused_text(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_the_bundled_sample_config_loads() -> None:
    config = load_config(SOURCE)
    assert isinstance(config, PipelineConfig)
    assert config.channel_names == ("tv", "search", "digital", "email")
    assert config.checks.min_weeks == 52


def test_the_reference_config_loads_with_its_graph_and_defaults() -> None:
    config = parse_config(sample(), SOURCE)
    assert config.controls == ("seasonality", "trend", "price")
    assert len(config.edges) == 10
    assert config.channel("email").adstock.decay == 0.1
    assert config.experiments[0].start == dt.date(2024, 3, 4)


def test_the_reserved_column_is_the_normalised_week() -> None:
    assert RESERVED_COLUMN == WEEK


def test_an_error_is_one_paragraph_with_rule_place_and_fix() -> None:
    raw = sample()
    raw["chanels"] = raw.pop("channels")
    error = refused(raw)
    message = str(error)
    assert message.startswith("[config-unknown-key] ")
    assert f"{SOURCE} key 'chanels'" in message
    assert "did you mean 'channels'?" in message and "Fix:" in message
    assert "\n" not in message


def test_errors_survive_pickling_with_their_fields() -> None:
    import pickle

    error = ConfigError("rule-x", "place", "detail.", "fix.")
    clone = pickle.loads(pickle.dumps(error))
    assert (type(clone), clone.rule, clone.place, clone.detail, clone.fix, str(clone)) == (
        ConfigError, "rule-x", "place", "detail.", "fix.", str(error))


@pytest.mark.parametrize(("edit", "rule", "key"), [
    (lambda c: c["channels"]["tv"]["adstock"].update(decai=0.5), "config-unknown-key", "channels.tv.adstock.decai"),
    (lambda c: c["data"].pop("kpi"), "config-missing-key", "data.kpi"),
    (lambda c: c.pop("graph"), "config-missing-key", "graph"),
    (lambda c: c["channels"]["tv"].pop("spend_column"), "config-missing-key", "channels.tv.spend_column"),
    (lambda c: c["channels"]["tv"]["adstock"].update(decay="high"), "config-type", "channels.tv.adstock.decay"),
    (lambda c: c["channels"]["tv"]["adstock"].update(decay=1.5), "config-range", "channels.tv.adstock.decay"),
    (lambda c: c["channels"]["tv"]["adstock"].update(decay=10 ** 400), "config-type", "channels.tv.adstock.decay"),
    (lambda c: c["channels"]["tv"]["adstock"].update(max_lag=10 ** 6), "config-range", "channels.tv.adstock.max_lag"),
    (lambda c: c["channels"]["tv"]["adstock"].update(type="exponential"), "config-unknown-value",
     "channels.tv.adstock.type"),
    (lambda c: c["channels"]["tv"]["saturation"].update(slope=True), "config-type", "channels.tv.saturation.slope"),
    (lambda c: c["channels"]["email"].update(spend_column="tv_spend"), "duplicate-spend-column",
     "channels.email.spend_column"),
    (lambda c: c["channels"].update({"tv spend": {"spend_column": "x"}}), "channel-name", "channels.tv spend"),
    (lambda c: c["channels"].update({"week": {"spend_column": "x"}}), "channel-name", "channels.week"),
    (lambda c: c.update(channels={}), "config-missing-key", "channels"),
    (lambda c: c.update(controls="price"), "config-type", "controls"),
    (lambda c: c["controls"].append("price"), "duplicate-node", "controls"),
    (lambda c: c["controls"].append("tv"), "duplicate-node", "controls[3]"),
    (lambda c: c["data"].update(kpi="tv"), "duplicate-node", "data.kpi"),
    (lambda c: c["controls"].append("tv_spend"), "duplicate-column", "controls[3]"),
    (lambda c: c["data"].update(date_column="sales"), "duplicate-column", "data.kpi"),
    (lambda c: c["controls"].append("week") or c["data"].update(date_column="date"), "reserved-column",
     "controls[3]"),
    (lambda c: c["data"].update(kpi_must_be_positive="yes"), "config-type", "data.kpi_must_be_positive"),
    (lambda c: c.update(features={"fourier_order": 0}), "config-range", "features.fourier_order"),
    (lambda c: c["experiments"][0].update(end=dt.date(2024, 1, 1)), "experiment-dates", "experiments[0].end"),
    (lambda c: c["experiments"][0].update(channel="radio"), "experiment-channel", "experiments[0].channel"),
    (lambda c: c["experiments"][0].update(ci_low=8000), "experiment-interval", "experiments[0]"),
    (lambda c: c["experiments"][0].update(start="next spring"), "config-type", "experiments[0].start"),
    (lambda c: c.update(checks={"min_weeks": 4}), "threshold-range", "checks.min_weeks"),
    (lambda c: c.update(checks={"min_weeks": 52.5}), "config-type", "checks.min_weeks"),
    (lambda c: c.update(checks={"independence_alpha": 2}), "threshold-range", "checks.independence_alpha"),
    (lambda c: c.update(checks={"independence_blocking": "no"}), "config-type", "checks.independence_blocking"),
    (lambda c: c.update(checks={"min_week": 60}), "config-unknown-key", "checks.min_week"),
    (lambda c: c.update(estimation={"seed": -1}), "threshold-range", "estimation.seed"),
    (lambda c: c.update(estimation={"block_length": "auto"}), "config-type", "estimation.block_length"),
    (lambda c: c["graph"].update(file="dag.dot"), "config-missing-key", "graph"),
    (lambda c: c["graph"].update(edges=[["tv", "sales", "search"]]), "config-type", "graph.edges[0]"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_config_refusals_name_the_rule_and_the_key(edit: Any, rule: str, key: str) -> None:
    raw = sample()
    edit(raw)
    error = refused(raw)
    assert error.rule == rule, str(error)
    assert error.place == f"{SOURCE} key '{key}'", str(error)
    assert error.fix


@pytest.mark.parametrize(("edges", "rule", "words"), [
    ([["tv", "search"], ["search", "tv"], ["tv", "sales"], ["search", "sales"], ["digital", "sales"],
      ["email", "sales"]], "graph-cycle", ["tv -> search -> tv"]),
    ([["price", "price"], ["tv", "sales"], ["search", "sales"], ["digital", "sales"], ["email", "sales"]],
     "graph-self-loop", ["graph.edges[0]", "'price' at itself"]),
    ([["serch", "sales"], ["tv", "sales"]], "graph-unknown-node", ["graph.edges[0]", "'serch'",
                                                                    "did you mean 'search'?"]),
    ([["tv", "sales"], ["search", "sales"], ["digital", "sales"], ["email", "sales"], ["sales", "price"]],
     "graph-kpi-has-children", ["'sales'", "[sales, price]"]),
    ([["tv", "sales"], ["search", "sales"], ["digital", "sales"]], "graph-channel-unreachable",
     ["channel 'email'", "[email, sales]"]),
])
def test_graph_refusals_happen_when_the_config_loads(edges: list[list[str]], rule: str, words: list[str]) -> None:
    raw = sample()
    raw["graph"]["edges"] = edges
    error = refused(raw)
    assert error.rule == rule
    for word in words:
        assert word in str(error), str(error)


def test_a_graph_file_is_read_and_validated(tmp_path: Path) -> None:
    raw = sample()
    raw["data"]["path"] = str(SAMPLE_DIR / "weekly.csv")
    raw["graph"] = {"file": "dag.dot"}
    (tmp_path / "dag.dot").write_text("digraph { seasonality -> tv; tv -> search -> sales; tv -> sales; "
                                      "digital -> sales; email -> sales; price -> sales; trend -> sales; "
                                      "search -> tv }")
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path / "config.yaml")
    assert info.value.rule == "graph-cycle" and str(tmp_path / "dag.dot") in info.value.place
    assert "tv -> search -> tv" in info.value.detail or "search -> tv -> search" in info.value.detail
    (tmp_path / "dag.dot").write_text("graph { tv -- sales }")
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path / "config.yaml")
    assert info.value.rule == "graph-file"
    raw["graph"] = {"file": "missing.gml"}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, tmp_path / "config.yaml")
    assert info.value.rule == "graph-file" and "missing.gml" in info.value.place


def test_duplicate_channel_names_are_refused_not_collapsed(tmp_path: Path) -> None:
    text = BASE_TEXT.replace("controls: [seasonality, trend, price]",
                               "  tv:      {spend_column: digital_spend}\ncontrols: [seasonality, trend, price]")
    assert len(yaml.safe_load(text)["channels"]) == 4  # what plain YAML would silently do
    error = refused_text(tmp_path, text)
    assert error.rule == "config-duplicate-key"
    assert error.place.endswith("key 'channels.tv'")
    tv_lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("  tv:")]
    assert len(tv_lines) == 2
    assert f"lines {tv_lines[0]} and {tv_lines[1]}" in error.detail


def test_duplicate_keys_are_refused_at_any_depth(tmp_path: Path) -> None:
    text = BASE_TEXT.replace("{type: geometric, decay: 0.6}", "{type: geometric, decay: 0.6, decay: 0.7}")
    error = refused_text(tmp_path, text)
    assert error.rule == "config-duplicate-key" and error.place.endswith("key 'channels.tv.adstock.decay'")
    text = BASE_TEXT + "checks: {min_weeks: 52}\nchecks: {min_weeks: 60}\n"
    assert refused_text(tmp_path, text).place.endswith("key 'checks'")


def test_yaml_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    text = BASE_TEXT.replace("  search:  {spend_column: search_spend, adstock: {type: geometric, decay: 0.2},",
                               "  search:  {spend_column: search_spend, adstock: &fast {type: geometric, decay: 0.2},")
    text = text.replace("  email:   {spend_column: email_spend, adstock: {type: geometric, decay: 0.1},",
                        "  email:   {spend_column: email_spend, adstock: {<<: *fast, decay: 0.1},")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    (tmp_path / "weekly.csv").write_text("")
    assert load_config(path).channel("email").adstock.decay == 0.1


@pytest.mark.parametrize(("text", "rule"), [
    ("", "config-empty"),
    ("data: [unclosed\n", "config-yaml"),
    ("- just\n- a list\n", "config-type"),
    ("[" * 5000 + "]" * 5000, "config-yaml"),
    ("experiments: [{start: 2024-02-30}]\n", "config-yaml"),
    ("checks: {min_weeks: !!int fifty}\n", "config-yaml"),
    (BASE_TEXT + "checks: !!set {min_weeks}\n", "config-type"),
    (BASE_TEXT.replace("data: {path: weekly.csv, date_column: week, kpi: sales}", "data: !!binary aGVsbG8="),
     "config-type"),
], ids=["empty", "syntax", "not-a-mapping", "too-deep", "impossible-date", "mistagged-int", "set", "binary"])
def test_unusable_files_are_refused(tmp_path: Path, text: str, rule: str) -> None:
    assert refused_text(tmp_path, text).rule == rule


def test_missing_and_undecodable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.rule == "config-missing"
    path = tmp_path / "latin1.yaml"
    path.write_bytes("data: {path: d\xe9j\xe0.csv}".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.rule == "config-unreadable"


def test_thresholds_are_validated_at_construction() -> None:
    assert CheckConfig(min_weeks=104).min_weeks == 104
    with pytest.raises(ConfigError, match=r"\[threshold-range\] checks.min_weeks"):
        CheckConfig(min_weeks=7)
    with pytest.raises(ConfigError, match=r"\[config-type\] checks.min_weeks"):
        CheckConfig(min_weeks=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"\[threshold-range\] checks.overlap_min_spread"):
        CheckConfig(overlap_min_spread=-0.1)
    with pytest.raises(ConfigError, match=r"\[config-type\] estimation.ci_level"):
        EstimationConfig(ci_level=float("nan"))
    with pytest.raises(ConfigError, match=r"\[threshold-range\] estimation.bootstrap_samples"):
        EstimationConfig(bootstrap_samples=10)
    with pytest.raises(ConfigError, match=r"\[threshold-range\] estimation.null_test_samples: is 5\..*or 0 to skip"):
        EstimationConfig(null_test_samples=5)
    assert EstimationConfig(null_test_samples=0).null_test_samples == 0  # skips the test


def test_threshold_keys_from_yaml_reach_the_config() -> None:
    raw = sample()
    raw["checks"] = {"min_weeks": 104}
    raw["data"]["kpi_must_be_positive"] = True
    config = parse_config(raw, SOURCE)
    assert config.checks.min_weeks == 104 and config.data.kpi_must_be_positive is True


def test_every_config_error_is_a_cmmm_error() -> None:
    assert issubclass(ConfigError, CmmmError)


def test_every_problem_is_reported_at_once_in_document_order() -> None:
    raw = sample()
    raw["channels"]["tv"]["adstock"]["decai"] = 0.5
    raw["channels"]["search"]["saturation"]["slope"] = "steep"
    raw["controls"].append("tv_spend")
    raw["experiments"][0]["channel"] = "radio"
    raw["estimation"] = {"ci_level": 2.0, "bootstrap_samples": 10}
    raw["graph"]["edges"].append(["sales", "price"])
    error = refused(raw)
    assert isinstance(error, ConfigErrors)
    assert [(p.rule, p.place.split(" key ")[1]) for p in error.problems] == [
        ("config-unknown-key", "'channels.tv.adstock.decai'"),
        ("config-type", "'channels.search.saturation.slope'"),
        ("duplicate-column", "'controls[3]'"),
        ("experiment-channel", "'experiments[0].channel'"),
        ("threshold-range", "'estimation.ci_level'"),
        ("threshold-range", "'estimation.bootstrap_samples'"),
        ("graph-kpi-has-children", "'graph.edges'"),
    ]
    assert (error.rule, error.place) == (error.problems[0].rule, error.problems[0].place)
    assert str(error).splitlines() == [str(p) for p in error.problems]


def test_a_typo_of_a_required_key_is_one_problem_not_two() -> None:
    raw = sample()
    raw["data"]["kpii"] = raw["data"].pop("kpi")
    error = refused(raw)
    assert not isinstance(error, ConfigErrors)
    assert error.rule == "config-unknown-key" and "did you mean 'kpi'?" in error.fix


def test_several_problems_survive_pickling() -> None:
    import pickle

    error = ConfigErrors([ConfigError("a-rule", "here", "bad.", "fix it."), ConfigError("b-rule", "there", "worse.",
                                                                                       "fix that.")])
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and [p.rule for p in clone.problems] == ["a-rule", "b-rule"]


def _alias_bomb(levels: int = 9) -> str:
    names = "abcdefghijklm"
    items = ["&a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    items += [f"&{names[i]} [{', '.join(f'*{names[i - 1]}' for _ in range(9))}]" for i in range(1, levels)]
    return f"[{', '.join(items)}, *{names[levels - 1]}]"


def test_nested_alias_bombs_are_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    """9**9 values once expanded: refused at compose time (measured about 1 ms), never rendered."""
    import time
    import tracemalloc

    text = BASE_TEXT + f"features: {{fourier_order: {_alias_bomb()}}}\n"
    tracemalloc.start()
    started = time.perf_counter()
    error = refused_text(tmp_path, text)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert error.rule == "config-aliases" and "anchors and aliases" in error.detail
    assert elapsed < 5, elapsed
    assert peak < 50 * 2 ** 20, peak
    print(f"nested alias bomb refused in {elapsed * 1000:.1f} ms, peak {peak / 2 ** 20:.1f} MiB")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    error = refused_text(tmp_path, BASE_TEXT + "features: {fourier_order: &loop [1, *loop]}\n")
    assert error.rule == "config-aliases" and "its own anchor" in error.detail


def test_messages_never_render_unbounded_values(tmp_path: Path) -> None:
    raw = sample()
    raw["channels"]["tv"]["adstock"]["decay"] = "x" * 1_000_000
    raw["features"] = {"fourier_order": [list(range(1000))] * 1000}
    error = refused(raw)
    assert len(str(error)) < 1000, len(str(error))
    assert all(len(p.detail) < 300 for p in error.problems)


def test_brief_bounds_any_value() -> None:
    from cmmm_pipeline.core.errors import MAX_SHOWN, brief

    nested: list[object] = [1]
    for _ in range(50):
        nested = [nested] * 10
    for value in ("y" * 10_000, nested, {str(i): i for i in range(10_000)}, 10 ** 5000):
        assert len(brief(value)) <= MAX_SHOWN
    assert brief("high") == "'high'"


def test_the_selection_criterion_is_read_as_an_enum_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    from cmmm_pipeline.core.config import EstimationConfig, SelectionCriterion

    assert EstimationConfig().selection_criterion is SelectionCriterion.CV_MIN
    assert EstimationConfig(selection_criterion="one_se").selection_criterion is SelectionCriterion.ONE_SE
    with pytest.raises(ConfigError, match=r"\[config-unknown-value\].*selection_criterion.*use one of: cv_min, one_se"):
        EstimationConfig(selection_criterion="one_sd")


def test_the_selection_band_is_read_as_an_enum_and_an_unknown_one_is_refused() -> None:
    from cmmm_pipeline.core.config import EstimationConfig, SelectionBand

    assert EstimationConfig().selection_band is SelectionBand.MROI
    assert EstimationConfig(selection_band="all").selection_band is SelectionBand.ALL
    assert EstimationConfig(selection_band=False).selection_band is SelectionBand.OFF  # `off` unquoted in YAML
    with pytest.raises(ConfigError, match=r"\[config-unknown-value\] estimation.selection_band: is 'roi', not a "
                                          r"known setting.*use one of: all, mroi, off"):
        EstimationConfig(selection_band="roi")

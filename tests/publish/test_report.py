"""The report from constructed inputs: every section present, the plain sentences and flags right,
missing tables said to be missing, the plots real images, and nothing that needs the network; the
DAG drawn by Graphviz or the pure-Python fallback without an edge through a node; the reason causal
and naive differ; contributions without double counting; each channel's own transform parameters."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import re
from itertools import pairwise
from xml.etree import ElementTree

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.core.config import AdstockType
from cmmm_pipeline.core.status import Status
from cmmm_pipeline.dag import drawing
from cmmm_pipeline.dag.drawing import NODE_RX, NODE_RY, REJECTED_COLOUR, DrawingEngine, draw_dag_png
from cmmm_pipeline.data.history import EstimateChanges, PreviousRun, compare_estimates
from cmmm_pipeline.media.features import ChannelTransform, ParameterSource, transforms_table
from cmmm_pipeline.media.transforms import hill_saturation
from cmmm_pipeline.publish.report import (
    NOT_AVAILABLE,
    ReportInputs,
    RunInfo,
    attention_items,
    channel_summaries,
    dag_graph,
    html_table,
    naive_comparisons,
    refutations_in_roi,
    render_report,
    response_curve,
    smoothing_scale,
)

SECTIONS = ["attention", "summary", "dag", "forest", "contributions", "response", "periods", "plan", "refuters",
            "independence", "suggestions", "overlap", "identification", "experiments", "history", "inputs"]
OPTIONAL = ["dag_tests", "overlap", "identification", "refutations", "experiments", "transform_selection"]
WEEKS = 60


def _transform(channel: str, decay: float, half: float, slope: float) -> ChannelTransform:
    return ChannelTransform(channel, AdstockType.GEOMETRIC, decay, 1.5, 2.0, 12, half, slope, ParameterSource.CONFIG)


TRANSFORMS = {"tv": _transform("tv", 0.6, 1.0, 1.4), "search": _transform("search", 0.2, 2.0, 1.0)}


def _estimates() -> pd.DataFrame:
    rows = [
        ("tv", "total", 1.8213, 1.6404, 1.9112, 0.00001, 1.45, 2000.0, "seasonality", ""),
        ("tv", "direct", 1.4512, 1.3701, 1.5260, 0.00001, np.nan, 1600.0, "search|seasonality", "search"),
        ("tv", "indirect", 0.3701, 0.2180, 0.4460, 0.0066, np.nan, 400.0, "", ""),
        ("search", "total", 0.4000, -0.2000, 1.0000, 0.21, 0.45, 300.0, "tv", ""),
    ]
    frame = pd.DataFrame(rows, columns=["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "p_value",
                                        "naive_roi", "ate", "adjustment", "mediators"])
    frame["incremental_kpi"] = frame["roi"] * 1000
    return frame


def _raw_and_features() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    weeks = pd.date_range("2025-01-06", periods=WEEKS, freq="7D")
    raw = pd.DataFrame({"week": weeks, "tv_spend": rng.gamma(2.0, 500.0, WEEKS),
                        "search_spend": rng.gamma(3.0, 150.0, WEEKS), "sales": rng.normal(9000, 500, WEEKS)})
    raw.loc[[3, 17], "tv_spend"] = 0.0
    features = pd.DataFrame({"week": weeks, "sales": raw["sales"]})
    for channel, column in (("tv", "tv_spend"), ("search", "search_spend")):
        spend = raw[column].to_numpy()
        features[channel] = TRANSFORMS[channel].apply(spend, TRANSFORMS[channel].reference(spend))
    return raw, features


def _tables() -> dict[str, pd.DataFrame]:
    raw, features = _raw_and_features()
    return {
        "estimates": _estimates(), "raw_spend": raw, "transformed_media": features,
        "transform_parameters": transforms_table(TRANSFORMS),
        "dag_edges": pd.DataFrame([("seasonality", "tv", "control", "channel"), ("tv", "search", "channel", "channel"),
                                   ("tv", "sales", "channel", "kpi"), ("search", "sales", "channel", "kpi"),
                                   ("seasonality", "sales", "control", "kpi"), ("price", "sales", "control", "kpi")],
                                  columns=["source", "target", "source_role", "target_role"]),
        "dag_tests": pd.DataFrame([
            ("price", "tv", "", "fisher_z", 3.9, 0.0001, 0.0004, True),
            ("price", "tv", "", "chi_squared", 8.1, 0.02, 0.06, False),
            ("seasonality", "search", "tv", "fisher_z", 0.4, 0.7, 1.0, False),
            ("price", "search", "tv", "fisher_z", 0.2, 0.8, 1.0, False)],
            columns=["x", "y", "given", "test", "statistic", "p_value", "p_adjusted", "rejected"]),
        "overlap": pd.DataFrame([("tv", "seasonality q1", 20, 0.0, 1800.0, True),
                                 ("tv", "seasonality q2", 4, 900.0, 950.0, False)],
                                columns=["channel", "stratum", "weeks", "spend_min", "spend_max", "ok"]),
        "identification": pd.DataFrame([("tv", "total", "backdoor", "seasonality")],
                                        columns=["channel", "effect", "estimand", "adjustment"]),
        "refutations": pd.DataFrame([
            ("tv", "total", "placebo_treatment", "PASS", 2000.0, 3.0, 0.8, "placebo effect ≈ 0"),
            ("tv", "total", "data_subset", "PASS", 2000.0, 1990.0, 0.9, "stable"),
            ("search", "total", "placebo_treatment", "FAIL", 300.0, 280.0, 0.01, "placebo kept the effect")],
            columns=["channel", "effect", "refuter", "status", "estimate", "new_effect", "p_value", "message"]),
        "experiments": pd.DataFrame([
            ("tv", "2025-03-03", "2025-03-31", 7451.0, 4422.0, 10480.0, 7000.0, 6000.0, 8000.0, True, "consistent"),
            ("search", "2025-06-02", "2025-06-30", 5000.0, 4000.0, 6000.0, 900.0, 100.0, 1500.0, False,
             "model below the measured lift")],
            columns=["channel", "start", "end", "measured_lift", "measured_low", "measured_high", "model_incremental",
                     "model_low", "model_high", "agrees", "message"]),
        "transform_selection": pd.DataFrame([("search", 0.2, 2.0, 1.0, 0.11, True), ("search", 0.5, 1.0, 1.0, 0.14, False)],
                                            columns=["channel", "decay", "half_saturation", "slope", "cv_error",
                                                     "selected"]),
    }


PREVIOUS_TIME = dt.datetime(2026, 11, 16, 6, 0)


def _changes(estimates: pd.DataFrame) -> EstimateChanges:
    previous = estimates.copy()
    previous.loc[0, ["roi", "roi_ci_low", "roi_ci_high"]] = [1.79, 1.60, 1.90]      # tv: up 0.03, inside
    previous.loc[3, ["roi", "roi_ci_low", "roi_ci_high"]] = [1.20, 0.90, 1.50]      # search: down, outside
    return EstimateChanges(PreviousRun("run-before", PREVIOUS_TIME), compare_estimates(estimates, previous))


def _run() -> RunInfo:
    return RunInfo(run_id="run-now", run_time=dt.datetime(2026, 11, 23, 6, 0), kpi="sales",
                   config_path="/configs/config.yaml", config_text="data: {path: weekly.csv}  # <config>",
                   ci_level=0.95, spend_columns={"tv": "tv_spend", "search": "search_spend"})


@pytest.fixture(scope="module")
def full() -> ReportInputs:
    tables = _tables()
    history = pd.DataFrame({"run_id": ["run-before", "run-before", "run-now", "run-now"],
                            "run_time": [PREVIOUS_TIME, PREVIOUS_TIME, dt.datetime(2026, 11, 23, 6), dt.datetime(2026, 11, 23, 6)],
                            "channel": ["search", "tv", "search", "tv"], "roi": [1.2, 1.79, 0.4, 1.8213],
                            "roi_ci_low": [0.9, 1.6, -0.2, 1.64], "roi_ci_high": [1.5, 1.9, 1.0, 1.91]})
    return ReportInputs.from_tables(_run(), tables, _changes(tables["estimates"]), history)


@pytest.fixture(scope="module")
def full_html(full: ReportInputs) -> str:
    return render_report(full)


def _section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, flags=re.DOTALL)
    assert match, f"section {section_id} missing"
    return match.group(1)


def _text(fragment: str) -> str:
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_every_section_is_present_in_reading_order(full_html: str) -> None:
    found = re.findall(r'<section id="([a-z_]+)">', full_html)
    assert found == SECTIONS
    for section_id in SECTIONS:
        assert f'href="#{section_id}"' in full_html  # in the navigation


def test_headline_sentences_say_roi_interval_significance_robustness_and_change(full: ReportInputs) -> None:
    by_channel = {s.channel: s for s in channel_summaries(full)}
    assert by_channel["tv"].sentence == (
        "tv returned 1.82 sales per unit spent (95% interval 1.64–1.91) — 1.45 directly and 0.37 through search; "
        "significant (p < 0.001); robust to all refuters; up 0.03 since the previous run (2026-11-16).")
    assert by_channel["search"].sentence == (
        "search returned 0.40 sales per unit spent (95% interval -0.20 to 1.00); not significant (p = 0.210); "
        "failed refutation: placebo_treatment; down 0.80 since the previous run (2026-11-16), outside that "
        "run's 95% interval 0.90–1.50.")
    assert by_channel["tv"].status is Status.PASS and by_channel["search"].status is Status.FAIL
    assert by_channel["search"].outside_previous_interval and not by_channel["tv"].outside_previous_interval


def test_robustness_column_of_the_estimates_wins_over_the_refuter_table() -> None:
    tables = _tables()
    tables["estimates"] = tables["estimates"].assign(robustness=["REVIEW", "PASS", "PASS", "PASS"])
    inputs = ReportInputs.from_tables(_run(), tables)
    tv = {s.channel: s for s in channel_summaries(inputs)}["tv"]
    assert tv.status is Status.REVIEW and "refuters ask for review" in tv.sentence
    assert "first run, nothing to compare with" in tv.sentence


def test_attention_lists_every_failure_and_flag_worst_first(full: ReportInputs) -> None:
    items = attention_items(full)
    texts = [i.text for i in items]
    levels = [i.level.value for i in items]
    assert levels == sorted(levels, key=["fail", "review", "info"].index)
    assert any(t.startswith("search: failed refutation (placebo_treatment)") for t in texts)
    assert any("1 of 3 independences implied by the DAG are rejected" in t and "price ⟂ tv" in t for t in texts)
    assert "tv: overlap too thin in 1 stratum(s) of its adjustment set; the estimate extrapolates there." in texts
    assert any("search: lift experiment 2025-06-02–2025-06-30 disagrees" in t for t in texts)
    assert any("search: ROI 0.40 moved outside the previous run's interval" in t for t in texts)
    assert any("search: effect not significant" in t for t in texts)
    assert [t for t in texts if t.startswith("tv:")] == [  # tv's estimate itself is sound
        "tv: overlap too thin in 1 stratum(s) of its adjustment set; the estimate extrapolates there."]
    assert not any(i.level.value == "info" for i in items)  # every table was available


def test_check_tables_with_a_status_column_are_read_by_status() -> None:
    tables = _tables()
    tables["experiments"] = tables["experiments"].drop(columns=["agrees"]).assign(
        status=["PASS", "FAIL"], recommendation=["no action.", "re-check the test's control group"])
    tables["overlap"] = tables["overlap"].drop(columns=["ok"]).assign(status=["PASS", "REVIEW"])
    tables["refutations"] = tables["refutations"].assign(
        recommendation=["no action.", "no action.", "treat the channel's effect as unproven"])
    items = {i.text: i.level.value for i in attention_items(ReportInputs.from_tables(_run(), tables))}
    assert items["search: lift experiment 2025-06-02–2025-06-30 disagrees with the model: model below the measured "
                 "lift; re-check the test's control group."] == "fail"
    assert items["tv: overlap too thin in 1 stratum(s) of its adjustment set; the estimate extrapolates there."] \
        == "review"
    assert items["search: failed refutation (placebo_treatment); do not act on its ROI until explained. Treat the "
                 "channel's effect as unproven"] == "fail"
    assert not any(t.startswith("tv: lift experiment") for t in items)


def test_a_channel_that_could_not_be_estimated_is_said_so_and_left_out_of_the_plots() -> None:
    tables = _tables()
    estimates = tables["estimates"].assign(reason="")
    estimates.loc[3, ["roi", "roi_ci_low", "roi_ci_high", "p_value", "naive_roi", "ate", "incremental_kpi"]] = np.nan
    estimates.loc[3, "reason"] = "no valid adjustment set under the DAG"
    tables["estimates"] = estimates
    inputs = ReportInputs.from_tables(_run(), tables)
    search = {s.channel: s for s in channel_summaries(inputs)}["search"]
    assert search.sentence == "search could not be estimated in this run: no valid adjustment set under the DAG."
    assert attention_items(inputs)[0].text == search.sentence
    page = render_report(inputs)
    assert (page.count("data:image/png;base64,"), page.count("data:image/svg+xml;base64,")) == (2, 2)
    assert "nan" not in _text(_section(page, "summary")).lower()


def test_a_run_without_the_optional_tables_says_so_in_each_section() -> None:
    tables = {k: v for k, v in _tables().items() if k not in OPTIONAL}
    page = render_report(ReportInputs.from_tables(_run(), tables))
    for section_id in ("refuters", "independence", "overlap", "identification", "experiments", "history"):
        assert NOT_AVAILABLE.lower().rstrip(".") in _text(_section(page, section_id)).lower(), section_id
    assert "not available in this run" in _text(_section(page, "inputs")).lower()  # transform selection
    assert "were not tested in this run" in _text(_section(page, "dag"))
    assert "robustness not assessed in this run" in _text(_section(page, "summary"))
    attention = _text(_section(page, "attention"))
    assert "Not assessed in this run: refuters, independence tests, overlap, lift experiments." in attention
    # The plots that need only the required tables are still drawn.
    for section_id, kind in (("forest", "png"), ("contributions", "svg+xml"), ("response", "svg+xml"), ("dag", "png")):
        assert f"data:image/{kind};base64," in _section(page, section_id), section_id


def test_tables_colour_failures_and_escape_text(full_html: str) -> None:
    refuters = _section(full_html, "refuters")
    assert '<td class="fail">FAIL</td>' in refuters and '<td class="pass">PASS</td>' in refuters
    assert '<td class="fail">yes</td>' in _section(full_html, "independence")      # rejected
    assert '<td class="fail">no</td>' in _section(full_html, "overlap")            # ok = False
    assert '<td class="fail">no</td>' in _section(full_html, "experiments")        # agrees = False
    assert '<td class="review">yes</td>' in _section(full_html, "history")         # outside previous interval
    assert "# &lt;config&gt;" in _section(full_html, "inputs")
    table = html_table(pd.DataFrame({"name": ["<script>x</script>"], "p_value": [0.0004], "n": [3]}))
    assert "<script>" not in table and "&lt;script&gt;" in table and "&lt; 0.001" in table


def test_history_section_compares_with_the_previous_run(full_html: str) -> None:
    text = _text(_section(full_html, "history"))
    assert "Compared with run run-before published 2026-11-16 06:00 UTC." in text
    assert "1 estimate(s) moved outside the previous run’s interval." in text
    assert "Total-effect ROI over the last 2 runs" in text


def test_inputs_section_shows_data_range_config_and_parameters(full_html: str) -> None:
    text = _text(_section(full_html, "inputs"))
    assert "60 weeks, 2025-01-06 to 2026-02-23" in text
    assert "/configs/config.yaml" in text and "tv_spend" in text
    assert "Hill, half-saturation 1.00, slope 1.40" in text and "cv error" in text  # parameters used, and the selection
    selection = re.search(r"<h3>Transform selection</h3>(.*?)<h3>", _section(full_html, "inputs"), re.DOTALL).group(1)
    assert selection.count("<tr>") == 2 and "<td>search</td>" in selection  # header + the chosen candidate
    assert "<td class=\"num\">2</td>" in selection  # out of 2 candidates


def test_the_page_is_self_contained(full_html: str) -> None:
    assert full_html.startswith("<!doctype html>")
    assert '<meta name="viewport"' in full_html
    assert "http://" not in full_html and "https://" not in full_html and "<script" not in full_html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', full_html)
    assert len(images) == 2  # DAG, forest
    for encoded in images:
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(encoded)), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 500
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1])[:, :3].round(2), axis=0)) > 50
    figures = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', full_html)
    assert len(figures) == 2  # contributions, response curves (these tables have no quarters)
    for encoded in figures:
        svg = ElementTree.fromstring(base64.b64decode(encoded))
        assert int(svg.get("width").removesuffix("px")) > 500 and int(svg.get("height").removesuffix("px")) > 200
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20  # drawn, not an empty frame
        texts = ["".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")]
        assert "sales" in " ".join(texts) and "http" not in " ".join(texts)  # labels as text, nothing fetched


def _red_pixels(png: bytes) -> int:
    """Pixels close to the DAG plot's 'rejected' red."""
    rgb = mpimg.imread(io.BytesIO(png), format="png")[:, :, :3]
    red = np.array([int(REJECTED_COLOUR[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(rgb - red).max(axis=2) < 0.08).sum())


@pytest.fixture(params=[DrawingEngine.GRAPHVIZ, DrawingEngine.MATPLOTLIB], ids=lambda e: e.value)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> DrawingEngine:
    """Each drawing engine in turn: the fallback by hiding `dot`, Graphviz where `dot` is installed."""
    if request.param is DrawingEngine.MATPLOTLIB:
        monkeypatch.setattr(drawing, "dot_executable", lambda: None)
    elif drawing.dot_executable() is None:
        pytest.skip("Graphviz `dot` is not installed (apt-get install graphviz)")
    return request.param


def test_dag_plot_draws_rejected_implications_in_red(engine: DrawingEngine) -> None:
    tables = _tables()
    g, roles = dag_graph(tables["dag_edges"])
    assert roles == {"seasonality": "control", "tv": "channel", "search": "channel", "sales": "kpi", "price": "control"}
    consistent = tables["dag_tests"].assign(rejected=False)
    assert drawing.draw_dag(g, consistent, roles).engine is engine
    baseline = _red_pixels(draw_dag_png(g, consistent, roles))      # no red at all, or the legend's sample
    flagged = _red_pixels(draw_dag_png(g, tables["dag_tests"], roles))
    assert flagged > baseline + 200


def test_graphviz_is_used_when_dot_is_installed_and_the_fallback_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    g, roles = dag_graph(_tables()["dag_edges"])
    calls: list[str] = []
    monkeypatch.setattr(drawing, "_graphviz_render", lambda *a, **k: calls.append("graphviz") or b"\x89PNG graphviz")
    monkeypatch.setattr(drawing, "dot_executable", lambda: "/usr/bin/dot")
    drawn = drawing.draw_dag(g, None, roles)
    assert (drawn.engine, drawn.png, calls) == (DrawingEngine.GRAPHVIZ, b"\x89PNG graphviz", ["graphviz"])
    monkeypatch.setattr(drawing, "dot_executable", lambda: None)
    drawn = drawing.draw_dag(g, None, roles)
    assert drawn.engine is DrawingEngine.MATPLOTLIB and drawn.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert calls == ["graphviz"]  # the fallback never called Graphviz


@pytest.mark.skipif(drawing.dot_executable() is None, reason="Graphviz `dot` is not installed")
def test_a_drawing_repeated_in_one_process_runs_graphviz_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run draws its DAG for the UI and again for the report: the second drawing reuses Graphviz's
    output for the same DOT source (two Graphviz processes fewer), byte for byte."""
    import graphviz

    tables = _tables()
    g, roles = dag_graph(tables["dag_edges"])
    drawing._graphviz_pipe.cache_clear()
    pipes: list[str] = []
    real_pipe = graphviz.Source.pipe
    monkeypatch.setattr(graphviz.Source, "pipe", lambda self, **k: pipes.append(k["engine"]) or real_pipe(self, **k))
    first = draw_dag_png(g, tables["dag_tests"], roles)
    assert pipes == ["dot", "neato"]
    assert draw_dag_png(g, tables["dag_tests"], roles) == first and pipes == ["dot", "neato"]
    assert draw_dag_png(g, tables["dag_tests"].assign(rejected=False), roles) != first  # another source
    assert pipes == ["dot", "neato", "dot", "neato"]  # another drawing is drawn anew


SAMPLE_EDGES = [("seasonality", "tv"), ("seasonality", "digital"), ("seasonality", "sales"), ("tv", "search"),
                ("tv", "sales"), ("search", "sales"), ("digital", "sales"), ("email", "sales"), ("price", "sales"),
                ("trend", "sales")]
SAMPLE_ROLES = {"seasonality": "control", "price": "control", "trend": "control", "sales": "kpi",
                **{c: "channel" for c in ("tv", "search", "digital", "email")}}
SAMPLE_TESTS = pd.DataFrame({"x": ["price", "email", "search", "digital", "email"],
                             "y": ["tv", "trend", "seasonality", "search", "seasonality"],
                             "rejected": [True, True, False, False, False]})
LONG_EDGES = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "y"), ("a", "y"), ("a", "c"), ("e", "y"), ("b", "y")]


def _bezier(points: np.ndarray, steps: int = 60) -> np.ndarray:
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return np.vstack([(1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                      for a, b, c, d in (points[i:i + 4] for i in range(0, len(points) - 3, 3))])


def _crossings(nodes: dict[str, tuple[float, float, float, float]],
               edges: list[tuple[str, str, np.ndarray]]) -> list[tuple[str, str, str]]:
    """(source, target, node) for every point of an edge inside a node ellipse it does not join."""
    out = []
    for a, b, curve in edges:
        for name, (x, y, rx, ry) in nodes.items():
            if name not in (a, b) and (((curve[:, 0] - x) / rx) ** 2 + ((curve[:, 1] - y) / ry) ** 2 < 1).any():
                out.append((a, b, name))
    return out


@pytest.mark.skipif(drawing.dot_executable() is None, reason="Graphviz `dot` is not installed")
@pytest.mark.parametrize("edges", [SAMPLE_EDGES, LONG_EDGES], ids=["sample", "long_edges"])
def test_graphviz_routes_no_edge_through_a_node(edges: list[tuple[str, str]]) -> None:
    import graphviz
    import networkx as nx

    g = nx.DiGraph(edges)
    roles = SAMPLE_ROLES if edges is SAMPLE_EDGES else {"y": "kpi"}
    tests = SAMPLE_TESTS if edges is SAMPLE_EDGES else None
    plain = graphviz.Source(drawing.dag_dot(g, tests, roles)).pipe(format="plain", engine="neato",
                                                                     neato_no_op=2).decode()
    nodes, routed = {}, []
    for line in plain.splitlines():
        f = line.split()
        if f[0] == "node":
            nodes[f[1]] = (float(f[2]), float(f[3]), float(f[4]) / 2, float(f[5]) / 2)
        elif f[0] == "edge":
            n = int(f[3])
            routed.append((f[1], f[2], _bezier(np.array(f[4:4 + 2 * n], dtype=float).reshape(n, 2))))
    rejected = 2 if tests is not None else 0  # only the rejected implications are drawn
    assert len(routed) == len(edges) + rejected and set(nodes) == set(g.nodes)
    assert _crossings(nodes, routed) == []
    # seasonality -> sales runs clear of search: the confounding path reads as it is declared.
    if edges is SAMPLE_EDGES:
        assert nodes["sales"][0] == max(x for x, *_ in nodes.values())


@pytest.mark.parametrize("edges", [SAMPLE_EDGES, LONG_EDGES], ids=["sample", "long_edges"])
def test_the_fallback_layout_routes_no_edge_through_a_node(edges: list[tuple[str, str]]) -> None:
    """The Graphviz test above, on what the fallback draws: the causal edges and the rejected
    implications, no line through a node it does not join."""
    import networkx as nx

    g = nx.DiGraph(edges)
    tests = SAMPLE_TESTS if edges is SAMPLE_EDGES else None
    drawn = drawing.fallback_drawing(g, tests, SAMPLE_ROLES if tests is not None else {"y": "kpi"})
    nodes = {n: (x, y, NODE_RX, NODE_RY) for n, (x, y) in drawn.positions.items()}
    routed = []
    for line in drawn.lines:
        points = np.array(line.points)
        dense = np.vstack([p + np.linspace(0, 1, 80)[:, None] * (q - p) for p, q in pairwise(points)])
        routed.append((line.source, line.target, dense))
    rejected = 2 if tests is not None else 0
    assert len(routed) == len(edges) + rejected and set(nodes) == set(g.nodes)
    assert _crossings(nodes, routed) == []
    layout = drawing.layered_layout(g)
    assert len(layout.routes[("seasonality", "sales") if edges is SAMPLE_EDGES else ("a", "y")]) > 4  # via slots


def test_the_drawing_says_which_pair_each_rejected_line_joins() -> None:
    import networkx as nx

    if drawing.dot_executable() is None:
        pytest.skip("Graphviz `dot` is not installed")
    source = drawing.dag_dot(nx.DiGraph(SAMPLE_EDGES), SAMPLE_TESTS, SAMPLE_ROLES)
    assert "price ⟂ tv; email ⟂ trend" in source  # named in the legend
    undirected = re.findall(r'(\w+) -> (\w+) \[color="([^"]+)" dir=none[^\]]*style=(\w+)', source)
    # a direct red dashed line between each rejected pair; the consistent ones are left to the table
    assert sorted(undirected) == [("email", "trend", REJECTED_COLOUR, "dashed"),
                                  ("price", "tv", REJECTED_COLOUR, "dashed")]
    assert "consistent" not in source and "dotted" not in source


def test_response_curve_is_the_ate_times_the_steady_state_hill(full: ReportInputs) -> None:
    tv = full.estimates.iloc[0]
    spend = full.raw["tv_spend"].to_numpy()
    curve = response_curve("tv", spend, full.transforms, tv)
    t = TRANSFORMS["tv"]
    steady = 1 / (1 - t.decay)  # geometric carryover of a constant weekly spend
    expected = 2000.0 * hill_saturation(curve.spend * steady / t.reference(spend), t.half_saturation, t.slope)
    np.testing.assert_allclose(curve.response, expected, rtol=1e-9)
    assert curve.response[0] == 0 and np.all(np.diff(curve.response) >= 0)
    assert (curve.observed_min, curve.observed_max) == (0.0, pytest.approx(spend.max()))
    assert curve.spend.max() == pytest.approx(1.5 * spend.max())
    np.testing.assert_allclose(curve.low, curve.response * 1.6404 / 1.8213)
    np.testing.assert_allclose(curve.high, curve.response * 1.9112 / 1.8213)


def test_a_smoothed_estimate_rescales_its_curve_to_the_published_roi(full: ReportInputs) -> None:
    """Curves are drawn at the applied transform; a smoothed row's ROI differs from the ROI there,
    so its curve is scaled by roi / applied_transform_roi and its band stays around it."""
    tv = full.estimates.iloc[0].copy()
    spend = full.raw["tv_spend"].to_numpy()
    plain = response_curve("tv", spend, full.transforms, tv)
    tv["applied_transform_roi"] = tv["roi"] / 1.25
    smoothed = response_curve("tv", spend, full.transforms, tv)
    np.testing.assert_allclose(smoothed.response, 1.25 * plain.response, rtol=1e-12)
    assert np.all(smoothed.low <= smoothed.response) and np.all(smoothed.response <= smoothed.high)
    assert smoothing_scale(tv) == pytest.approx(1.25) and smoothing_scale({"roi": 1.0}) == 1.0


# --- why causal and naive differ --------------------------------------------------------------------

def test_a_mediated_channel_is_said_to_differ_through_its_mediator(full: ReportInputs) -> None:
    by_channel = {c.channel: c for c in naive_comparisons(full)}
    tv = by_channel["tv"]
    assert tv.mediators == ("search",) and tv.mediated == pytest.approx(1.8213 - 1.4512)
    assert tv.sentence == ("causal ROI 1.82 against naive 1.45 (+0.37): the naive regression holds search fixed, a "
                           "mediator of tv, so it misses the 0.37 per unit that flows through search (the halo).")
    search = by_channel["search"]
    assert search.extra_adjustment == ("seasonality",) and search.mediators == ()
    assert search.sentence == ("causal ROI 0.40 against naive 0.45 (-0.05): a different adjustment set: the naive "
                               "regression also holds seasonality fixed, which the DAG leaves out (-0.05).")
    forest = _text(_section(render_report(full), "forest"))
    assert "Why causal and naive differ" in forest and tv.sentence in forest
    assert "the DAG changed the answer" not in forest


def test_a_difference_that_is_all_smoothing_is_not_credited_to_the_dag() -> None:
    """Same adjustment as the naive regression, a selected transform: the published (smoothed) ROI
    differs from the naive one only by the smoothing."""
    tables = _tables()
    est = tables["estimates"]
    est = est[est["channel"] == "search"].assign(adjustment="tv", naive_roi=0.40, applied_transform_roi=0.40,
                                                  roi=0.52, interval_method="smoothed")
    tables["estimates"] = est
    inputs = ReportInputs.from_tables(_run(), tables)
    (search,) = naive_comparisons(inputs)
    assert search.dag == pytest.approx(0.0) and search.smoothing == pytest.approx(0.12)
    assert search.sentence == (
        "causal ROI 0.52 against naive 0.40 (+0.12): the whole difference comes from the selected transform's "
        "smoothing (ROI at the selected transform 0.40); the DAG adjusts for the same nodes as the naive regression "
        "(every other channel and control), so it does not change this answer.")


def test_smoothing_beside_a_mediator_is_named_with_its_share() -> None:
    tables = _tables()
    tables["estimates"] = tables["estimates"].assign(
        applied_transform_roi=lambda f: f["roi"], interval_method="percentile")
    tables["estimates"].loc[0, ["roi", "interval_method"]] = [1.90, "smoothed"]  # tv total, smoothed by +0.08
    tv = {c.channel: c for c in naive_comparisons(ReportInputs.from_tables(_run(), tables))}["tv"]
    assert "misses the 0.37 per unit that flows through search" in tv.sentence
    assert "+0.08 comes from the selected transform's smoothing" in tv.sentence


# --- contributions, captions, parameters, empty tables, refuters in ROI ------------------------------

def test_contributions_stack_a_mediated_channel_by_its_direct_effect(full: ReportInputs) -> None:
    from cmmm_pipeline.publish.plots import contribution_parts

    parts = {p.channel: p for p in contribution_parts(full.estimates, ["tv", "search"])}
    assert parts["tv"].label == "tv (direct)" and parts["tv"].ate == pytest.approx(1600.0)
    assert parts["search"].label == "search" and parts["search"].ate == pytest.approx(300.0)
    # Without search among the stacked channels, tv's total is all there is to show: no double count.
    assert contribution_parts(full.estimates, ["tv"])[0].ate == pytest.approx(2000.0)
    text = _text(_section(render_report(full), "contributions"))
    assert "tv is stacked with its direct effect only: what it adds through search (ROI 0.37)" in text
    assert "the rest is baseline, seasonality, price and noise" in text


def test_captions_name_only_this_configs_controls() -> None:
    tables = _tables()
    tables["dag_edges"] = tables["dag_edges"][tables["dag_edges"]["source"] != "price"]
    tables["dag_tests"] = tables["dag_tests"][tables["dag_tests"]["x"] != "price"]
    page = render_report(ReportInputs.from_tables(_run(), tables))
    assert "price" not in _text(page).replace("price ⟂", "")
    assert "the rest is baseline, seasonality and noise" in _text(_section(page, "contributions"))


def test_each_channel_shows_its_own_transform_parameters() -> None:
    weibull = ChannelTransform("search", AdstockType.WEIBULL_PDF, 0.0, 2.5, 3.0, 8, 2.0, 1.0, ParameterSource.SELECTED)
    table = transforms_table({"tv": TRANSFORMS["tv"], "search": weibull}, {"search": 0.12})
    tables = _tables()
    tables["transform_parameters"] = table
    inputs = _section(render_report(ReportInputs.from_tables(_run(), tables)), "inputs")
    used = re.search(r"<h3>Transform parameters used</h3>(.*?)<h3>", inputs, re.DOTALL).group(1)
    rows = {r[0]: r for r in (re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", used))
            if r}
    assert rows["tv"][:4] == ["tv", "geometric, decay 0.60", "Hill, half-saturation 1.00, slope 1.40", "config"]
    assert rows["search"][:4] == ["search", "Weibull PDF, shape 2.50, scale 3.00, max lag 8 weeks",
                                  "Hill, half-saturation 2.00, slope 1.00", "selected from the data"]
    assert rows["tv"][4] == "—" and rows["search"][4] == "0.120"  # out-of-sample error where selected


def test_an_empty_selection_is_said_in_words_not_shown_as_an_empty_table() -> None:
    tables = _tables()
    tables["transform_selection"] = tables["transform_selection"].iloc[0:0]
    inputs = _section(render_report(ReportInputs.from_tables(_run(), tables)), "inputs")
    selection = re.search(r"<h3>Transform selection</h3>(.*?)<h3>", inputs, re.DOTALL).group(1)
    assert "<table" not in selection
    assert "No transform was selected from the data" in _text(selection)


def test_refutation_effects_are_in_roi_units(full: ReportInputs) -> None:
    table = refutations_in_roi(full.refutations, full.estimates)
    # ROI per unit of ATE: tv 1.8213 / 2000, search 0.40 / 300.
    np.testing.assert_allclose(table["ROI"], [1.8213, 1.8213, 0.40])
    np.testing.assert_allclose(table["ROI after refutation"], [3.0 * 1.8213 / 2000, 1990.0 * 1.8213 / 2000,
                                                               280.0 * 0.40 / 300])
    assert "estimate" not in table.columns and "new_effect" not in table.columns


# --- marginal ROI and withheld channels, when the estimates carry them --------------------------------

def test_extrapolated_roi_leads_with_marginal_roi_and_withheld_channels_say_why() -> None:
    tables = _tables()
    est = tables["estimates"].assign(mroi=[0.95, np.nan, np.nan, np.nan], mroi_ci_low=[0.80, np.nan, np.nan, np.nan],
                                     mroi_ci_high=[1.10, np.nan, np.nan, np.nan],
                                     roi_support=["extrapolated", "", "", "withheld"],
                                     extrapolated_share=[0.62, np.nan, np.nan, np.nan],
                                     withheld_reason=["", "", "", "overlap too thin in 2 of 3 strata"])
    est.loc[3, ["roi", "roi_ci_low", "roi_ci_high", "p_value", "naive_roi", "ate", "incremental_kpi"]] = np.nan
    tables["estimates"] = est
    inputs = ReportInputs.from_tables(_run(), tables)
    by_channel = {s.channel: s for s in channel_summaries(inputs)}
    assert by_channel["tv"].sentence.startswith(
        "tv's next unit of spend returns 0.95 sales (marginal ROI, 95% interval 0.80–1.10); its ROI against zero "
        "spend, 1.82 sales per unit spent (95% interval 1.64–1.91) — 1.45 directly and 0.37 through search, is "
        "extrapolated by the response curve (62% of its incremental sales comes from spend levels below any that "
        "comparable weeks show); significant")
    assert by_channel["search"].sentence == "search was withheld in this run: overlap too thin in 2 of 3 strata."
    summary = _section(render_report(inputs), "summary")
    assert "<th>mROI</th>" in summary and "<th>ROI support</th>" in summary and "0.80–1.10" in summary
    assert "<strong>tv</strong>'s next unit of spend" in summary.replace("&#39;", "'")


def test_the_page_is_laid_out_by_the_template_and_styled_by_its_css(full_html: str) -> None:
    from importlib import resources

    css = resources.files("cmmm_pipeline.publish").joinpath("templates", "report.css").read_text(encoding="utf-8")
    assert css.strip() and css.strip() in full_html  # inlined: the file stays self-contained
    assert "td.long{white-space:normal" in css  # long text wraps instead of widening a table
    assert full_html.count("<section id=") == len(SECTIONS)


def test_a_graphviz_that_fails_falls_back_to_the_python_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    import graphviz

    def broken(*_: object) -> bytes:
        raise graphviz.CalledProcessError(1, ["neato"], output=b"", stderr=b"Error: syntax error")

    g, roles = dag_graph(_tables()["dag_edges"])
    monkeypatch.setattr(drawing, "dot_executable", lambda: "/usr/bin/dot")
    monkeypatch.setattr(drawing, "_graphviz_render", broken)
    drawn = drawing.draw_dag(g, None, roles)
    assert drawn.engine is DrawingEngine.MATPLOTLIB and drawn.png.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_selected_value_on_a_grid_edge_is_flagged_beside_its_parameters() -> None:
    from cmmm_pipeline.publish.report import Paragraph, grid_edge_note, transform_parameters_table

    table = pd.DataFrame([
        {"channel": "tv", "adstock": "weibull_pdf", "decay": 0.5, "weibull_shape": 4.0, "weibull_scale": 3.5,
         "max_lag": 12, "half_saturation": 3.0, "slope": 1.5, "source": "selected", "cv_error": 10.0,
         "grid_edge": "half_saturation"},
        {"channel": "radio", "adstock": "geometric", "decay": 0.3, "weibull_shape": 1.5, "weibull_scale": 2.0,
         "max_lag": 12, "half_saturation": 1.0, "slope": 1.0, "source": "config", "cv_error": float("nan"),
         "grid_edge": ""}])
    shown = transform_parameters_table(table).set_index("channel")
    assert shown.loc["tv", "on a grid edge"] == "half_saturation" and shown.loc["radio", "on a grid edge"] == "—"
    assert shown.loc["tv", "adstock"].startswith("Weibull PDF, shape 4.00, scale 3.50")
    (note,) = grid_edge_note(table)
    assert isinstance(note, Paragraph) and "tv: half_saturation" in note.text and "radio" not in note.text
    assert grid_edge_note(table.assign(grid_edge="")) == []


def test_a_missing_driver_is_an_attention_item_naming_the_fix() -> None:
    from cmmm_pipeline.publish.report import Level, ReportInputs, attention_items

    drivers = pd.DataFrame([
        {"driver": "trend", "status": "REVIEW", "message": "the KPI's residual drifts by +639 over 156 weeks",
         "recommendation": "add trend to controls, with an edge from trend to the KPI."},
        {"driver": "seasonality", "status": "PASS", "message": "no yearly pattern left", "recommendation": ""}])
    base = ReportInputs(run=_run(), estimates=pd.DataFrame({"channel": [], "effect": [], "roi": []}),
                        raw=pd.DataFrame(), transforms=pd.DataFrame())
    items = attention_items(dataclasses.replace(base, missing_drivers=drivers))
    texts = [i.text for i in items if i.anchor == "dag"]
    assert texts == ["Missing driver (trend): the KPI's residual drifts by +639 over 156 weeks: add trend to "
                     "controls, with an edge from trend to the KPI."]
    assert [i.level for i in items if i.anchor == "dag"] == [Level.REVIEW]
    assert not [i for i in attention_items(base) if i.anchor == "dag"]


def test_the_summary_says_the_test_repeats_the_selection_only_when_it_ran() -> None:
    tables = _tables()
    untested = _text(_section(render_report(ReportInputs.from_tables(_run(), tables)), "summary"))
    assert "repeats that selection" not in untested
    tables["estimates"] = tables["estimates"].assign(null_p_value=[0.3, 1e-6, float("nan"), float("nan")])
    tested = _text(_section(render_report(ReportInputs.from_tables(_run(), tables)), "summary"))
    assert ("the test also repeats that selection on data where the channel has no effect; an interval that test "
            "cannot separate from zero reaches zero.") in tested


def test_the_summary_says_intervals_reach_near_equivalent_transforms_only_where_they_do() -> None:
    from dataclasses import replace as with_changes

    from cmmm_pipeline.core.config import SelectionBand

    tables = _tables()
    sentence = ("also reach the estimates at every transform whose cross-validation error is within one "
                "standard error of the best (transform_selection.csv)")
    if "transform_selection" in tables:
        del tables["transform_selection"]
    configured = _text(_section(render_report(ReportInputs.from_tables(_run(), tables)), "summary"))
    assert sentence not in configured  # no transform was selected
    tables["transform_selection"] = pd.DataFrame({"channel": ["tv"], "cv_error": [1.0], "selected": [True]})
    selected = _text(_section(render_report(ReportInputs.from_tables(_run(), tables)), "summary"))
    assert f"mROI intervals {sentence}" in selected  # the default
    every = with_changes(_run(), selection_band=SelectionBand.ALL)
    every_summary = _text(_section(render_report(ReportInputs.from_tables(every, tables)), "summary"))
    assert f"Intervals (and p-values) {sentence}" in every_summary
    off = with_changes(_run(), selection_band=SelectionBand.OFF)
    assert sentence not in _text(_section(render_report(ReportInputs.from_tables(off, tables)), "summary"))


def test_the_period_campaign_condition_and_synergy_sections_show_their_tables(full: ReportInputs) -> None:
    """With the period and synergy tables: the quarterly chart, the yearly table, the campaign with
    its window and interval, the conditions with the equality test, the synergy with its interval."""
    from cmmm_pipeline.publish.report import period_sections

    def row(period_type: str, period: str, value: float, **extra: object) -> dict:
        return {"channel": "tv", "effect": "total", "period_type": period_type, "period": period,
                "start": "2024-03-04", "end": "2024-05-27", "weeks": 13, "incremental_kpi": value,
                "incremental_ci_low": value - 100.0, "incremental_ci_high": value + 100.0, "p_value": 0.001,
                "spend": 1000.0, "roi": value / 1000.0, "roi_ci_low": (value - 100.0) / 1000.0,
                "roi_ci_high": (value + 100.0) / 1000.0, "interval_method": "percentile",
                "roi_support": "observed", "equal_effect_p_value": float("nan"), "note": "", **extra}

    periods = pd.DataFrame([row("year", "2024", 4000.0), row("quarter", "2024-Q1", 1000.0),
                            row("quarter", "2024-Q2", 3000.0), row("campaign", "spring_tv", 1234.0),
                            row("condition", "price<=9.8", 500.0, equal_effect_p_value=0.042)])
    synergies = pd.DataFrame([{"channel_a": "tv", "channel_b": "digital", "incremental_kpi": -50.0,
                               "incremental_ci_low": -900.0, "incremental_ci_high": 800.0, "p_value": 0.9,
                               "share_of_smaller_effect": -0.01, "withheld_reason": ""}])
    sections = period_sections(dataclasses.replace(full, effects_by_period=periods, synergies=synergies))
    assert [s.id for s in sections] == ["periods", "campaigns", "conditions", "synergies"]
    kinds = [b.kind for b in sections[0].blocks]
    assert kinds == ["image", "table"]
    campaign = sections[1].blocks[0]
    cells = [c.text for c in campaign.rows[0]]
    assert "spring_tv" in cells and "2024-03-04 to 2024-05-27" in cells and "1,234 (1,134–1,334)" in cells
    assert "0.042" in [c.text for c in sections[2].blocks[0].rows[0]]
    assert "-50 (-900–800)" in [c.text for c in sections[3].blocks[0].rows[0]]


def _check_results(*rows: tuple[str, str, str, bool, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["asset", "check", "severity", "passed", "failed_rules", "description"])


def test_every_check_that_did_not_pass_is_an_attention_item_and_the_console_prints_the_same_list() -> None:
    """The sample's case: a WARN check (stale data) is the report's attention item and the console's
    line, from `attention_items`; a passed check is not; the list is not the "nothing failed" banner."""
    from cmmm_pipeline.publish.report import Level, attention_lines

    stale = ("[data-too-old] data file weekly.csv: the newest week in the data is 2025-12-22, 349 days before "
             "2026-12-06 (checks.max_data_age_days: 10).\nFix: check the export job that writes this file.")
    tables = _tables()
    tables["check_results"] = _check_results(
        ("raw_spend", "raw_spend_quality", "ERROR", True, "none", "All 12 expectations passed."),
        ("raw_spend", "raw_spend_newest_week", "WARN", False, "data-too-old", stale))
    inputs = ReportInputs.from_tables(_run(), tables)
    items = attention_items(inputs)
    warned = [i for i in items if i.level is Level.WARN]
    assert [(i.text, i.anchor) for i in warned] == [(
        "raw_spend.raw_spend_newest_week: [data-too-old] data file weekly.csv: the newest week in the data is "
        "2025-12-22, 349 days before 2026-12-06 (checks.max_data_age_days: 10). Fix: check the export job that "
        "writes this file.", "inputs")]
    assert [i.level for i in items] == sorted((i.level for i in items), key=list(Level).index)
    lines = attention_lines(items)
    assert lines[len([i for i in items if i.level is Level.FAIL])].startswith(
        "WARN   raw_spend.raw_spend_newest_week: [data-too-old]")
    assert len(lines) == len(items) and all(line[7:] == i.text for line, i in zip(lines, items))
    page = render_report(inputs)
    attention = _text(_section(page, "attention"))
    assert "raw_spend.raw_spend_newest_week: [data-too-old]" in attention
    assert "Nothing failed and nothing needs review" not in attention


def test_a_recorded_check_speaks_for_the_table_it_judges_once() -> None:
    """A failed `dag_independence` check replaces the table item that restates it (one item, its rules
    named); a non-total effect that could not be estimated is an item with its reason."""
    from cmmm_pipeline.publish.report import Level

    tables = _tables()
    tables["estimates"] = pd.concat([tables["estimates"], pd.DataFrame([
        {"channel": "search", "effect": "direct", "roi": np.nan, "withheld_reason": "the direct effect is not "
         "identified."}])], ignore_index=True)
    without = attention_items(ReportInputs.from_tables(_run(), tables))
    assert any("independences implied by the DAG are rejected" in i.text for i in without)
    tables["check_results"] = _check_results(
        ("causal_dag", "dag_independence", "WARN", False, "dag-implication-holds (price ⟂ tv [fisher_z])",
         "The data reject 1 of 3 implications of the DAG (HOLM-adjusted p < 0.05): price ⟂ tv."))
    items = attention_items(ReportInputs.from_tables(_run(), tables))
    assert not any("independences implied by the DAG are rejected" in i.text for i in items)
    assert [(i.level, i.anchor) for i in items if "dag_independence" in i.text] == [(Level.WARN, "independence")]
    assert ("causal_dag.dag_independence (dag-implication-holds (price ⟂ tv [fisher_z])): The data reject 1 of 3 "
            "implications of the DAG (HOLM-adjusted p < 0.05): price ⟂ tv.") in [i.text for i in items]
    assert "search (direct): not estimated: the direct effect is not identified." in [i.text for i in items]


def test_the_proposed_edits_and_the_g_estimates_have_their_sections() -> None:
    from cmmm_pipeline.dag.suggest import SUGGESTION_COLUMNS
    from cmmm_pipeline.effects.feedback import ASSUMPTIONS, FEEDBACK_COLUMNS

    tables = _tables()
    none = render_report(ReportInputs.from_tables(_run(), {**tables, "dag_suggestions": pd.DataFrame(
        columns=SUGGESTION_COLUMNS)}))
    assert "No edit proposed" in _text(_section(none, "suggestions"))
    assert 'id="feedback"' not in none  # no channel follows sales: no section
    edits = pd.DataFrame([{"rank": 1, "edit": "seasonality -> tv", "resolves": "tv ⟂ seasonality",
                           "evidence": 1e-9, "new_rejections": "", "checked": True, "found_on_spend": True}],
                         columns=SUGGESTION_COLUMNS)
    feedback = pd.DataFrame([{"channel": "tv", "effect": "total", "estimator": "g_estimation", "status": "estimated",
                              "roi": 0.31, "roi_ci_low": 0.12, "roi_ci_high": 0.52, "incremental_kpi": 6200.0,
                              "spend": 20000.0, "p_value": 0.004, "weeks": 100, "first_stage_f": 340.0,
                              "planning_r2": 0.5, "planned_from": "sales_lag52", "held_fixed": "",
                              "assumptions": ASSUMPTIONS}], columns=FEEDBACK_COLUMNS)
    page = render_report(ReportInputs.from_tables(_run(), {**tables, "dag_suggestions": edits,
                                                           "feedback": feedback}))
    assert "seasonality -> tv" in _text(_section(page, "suggestions"))
    text = _text(_section(page, "feedback"))
    assert "0.31 (0.12–0.52)" in text and "sales_lag52" in text and "sequential exchangeability" in text

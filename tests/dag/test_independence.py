"""The DAG's implied independences and their tests: which statements, calibrated on autocorrelated
weekly data (shown by simulation), powerful against a missing or an extra edge, and the WARN /
ERROR Dagster check."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from benchmarks import independence_study as study
from cmmm_pipeline.dag import independence as ind
from cmmm_pipeline.media.transforms import fourier_terms
from tests.dag.test_overlap import checks, materialized, run_dag_step, staging

FOURIER = ["seasonality_sin1", "seasonality_cos1", "seasonality_sin2", "seasonality_cos2"]
COLUMNS = {"seasonality": FOURIER, **{n: [n] for n in ["tv", "search", "digital", "email", "price", "trend",
                                                       "sales"]}}
WIDTHS = {n: len(c) for n, c in COLUMNS.items()}
GENERATED = {"seasonality", "trend"}


def _sample_dag(drop: tuple[str, str] | None = None) -> nx.DiGraph:
    return nx.DiGraph([e for e in study.TRUE_EDGES if e != drop])


# ---------------------------------------------------------------------------------------------
# Which implications


def test_the_sample_dag_implies_one_statement_per_unconnected_pair() -> None:
    implications = ind.implied_independences(_sample_dag(), COLUMNS, WIDTHS, GENERATED)
    by_pair = {frozenset((i.x, i.y)): i for i in implications}
    assert len(implications) == len(by_pair) == 28 - 10  # 8 nodes, 10 edges
    # A stochastic node given its own parents, never a generated one when there is a choice ...
    assert by_pair[frozenset(("tv", "trend"))] == ind.Implication("tv", "trend", ("seasonality",))
    assert by_pair[frozenset(("price", "seasonality"))] == ind.Implication("price", "seasonality", ())
    # ... then the cheapest conditioning set: search given tv (1 column), not digital given seasonality (4).
    assert by_pair[frozenset(("search", "digital"))] == ind.Implication("search", "digital", ("tv",))
    assert by_pair[frozenset(("search", "seasonality"))] == ind.Implication("search", "seasonality", ("tv",))
    g = _sample_dag()
    for i in implications:
        assert nx.is_d_separator(g, {i.x}, {i.y}, set(i.given))


def test_a_missing_edge_becomes_a_testable_implication() -> None:
    implications = ind.implied_independences(_sample_dag(("seasonality", "digital")), COLUMNS, WIDTHS, GENERATED)
    assert ind.Implication("digital", "seasonality", ()) in implications


def test_a_latent_parent_falls_back_to_an_observed_separator() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("L", "c"), ("M", "a")])
    implications = ind.implied_independences(g, {"a", "b", "c"})
    assert implications == [ind.Implication("c", "a", ("b",))]


def test_two_children_of_a_latent_node_imply_nothing() -> None:
    g = nx.DiGraph([("L", "a"), ("L", "b"), ("a", "y"), ("b", "y")])
    assert ind.implied_independences(g, {"a", "b", "y"}) == []


def test_a_wide_dag_implies_thousands_and_the_limit_keeps_those_naming_a_channel_first() -> None:
    """60 controls, each with an edge to the KPI: one implication per unconnected pair, over 2,000,
    each tens of milliseconds to test. The limit keeps the channels' implications (a missing edge
    into a channel is a missing confounder) and then the DAG's order; the rest are counted."""
    from benchmarks.identification_growth import wide_dag

    g, columns, names = wide_dag(60, 4)
    implications = ind.implied_independences(g, columns, {n: len(c) for n, c in columns.items()}, GENERATED)
    pairs = g.number_of_nodes() * (g.number_of_nodes() - 1) // 2 - g.number_of_edges()
    assert len(implications) == pairs == 2120
    tested, left_out = ind.select_implications(implications, 300, names)
    assert len(tested) == 300 and len(left_out) == 2120 - 300
    naming_a_channel = [i for i in implications if {i.x, i.y} & set(names)]
    assert 0 < len(naming_a_channel) < 300 and set(naming_a_channel) <= set(tested)
    assert tested == [i for i in implications if i in set(tested)]  # the DAG's order is kept
    assert ind.select_implications(implications, None, names) == (implications, [])
    with pytest.raises(ValueError, match="max_implications"):
        ind.IndependenceSettings(max_implications=0)


def test_implications_left_out_by_the_limit_are_said_in_the_check(tmp_path: Path) -> None:
    def limit(config: dict) -> None:
        config["checks"] = {"max_implications": 5}

    result = run_dag_step(tmp_path, edit_config=limit)
    evaluation = checks(result)["dag_independence"]
    assert evaluation.passed
    assert evaluation.metadata["implications_not_tested"].value == 18 - 5
    assert "13 further implications of the DAG were not tested" in evaluation.description
    assert "checks.max_implications" in evaluation.description
    assert ind.not_tested_note(0) == ""


# ---------------------------------------------------------------------------------------------
# The machinery


@pytest.mark.parametrize("method", list(ind.CorrectionMethod))
def test_adjusted_p_values_equal_statsmodels_multipletests(method: ind.CorrectionMethod) -> None:
    """The written-out Holm and Benjamini–Hochberg against the library's, on ties, ones and tiny values too."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for p in (rng.uniform(0, 0.2, 30) ** 2, np.array([0.01, 0.01, 0.04, 1.0, 0.5, 1e-12, 0.03]), np.array([0.2])):
        expected = multipletests(p, method={ind.CorrectionMethod.HOLM: "holm", ind.CorrectionMethod.BH: "fdr_bh"}[method])[1]
        np.testing.assert_allclose(ind.adjust_pvalues(p, method), expected, rtol=0, atol=1e-12)
    assert ind.adjust_pvalues([0.01, 0.04], ind.CorrectionMethod.HOLM).tolist() == [0.02, 0.04]
    assert len(ind.adjust_pvalues([], method)) == 0


def _yule_walker_by_hand(e: np.ndarray, order: int) -> list[tuple[np.ndarray, float]]:
    """Levinson–Durbin on biased autocovariances, written out: fits of orders 0..order."""
    n = len(e)
    acov = np.array([float(e[: n - k] @ e[k:]) / n for k in range(order + 1)])
    phi, sigma2 = np.zeros(0), float(acov[0])
    fits = [(phi, sigma2)]
    for k in range(1, order + 1):
        reflection = (acov[k] - float(phi @ acov[1:k][::-1])) / sigma2
        phi = np.concatenate([phi - reflection * phi[::-1], [reflection]])
        sigma2 *= 1.0 - reflection**2
        fits.append((phi, sigma2))
    return fits


def test_ar_fits_through_statsmodels_equal_the_recursion_written_out() -> None:
    rng = np.random.default_rng(11)
    for n in (40, 156, 300):
        series = ind.simulate_ar(np.array([0.6, -0.2]), rng.normal(size=(1, n + 50)), 50)[0]
        e = series - series.mean()
        for order in (1, 3, 6):
            by_hand = _yule_walker_by_hand(e, order)
            np.testing.assert_allclose(ind.yule_walker(series, order), by_hand[-1][0], rtol=0, atol=1e-10)
            bic = [n * np.log(s2) + np.log(n) * len(phi) for phi, s2 in by_hand]
            expected = by_hand[int(np.argmin(bic))][0] if order <= n // 4 else None
            if expected is not None:
                np.testing.assert_allclose(ind.fit_ar(series, order), expected, rtol=0, atol=1e-10)
        paths = rng.normal(size=(5, n))
        paths -= paths.mean(axis=1, keepdims=True)
        rows = ind.yule_walker_rows(paths, 2)
        for row, path in zip(rows, paths):
            np.testing.assert_allclose(row, _yule_walker_by_hand(path, 2)[-1][0], rtol=0, atol=1e-10)
        lags = np.array([float(e[k:] @ e[:-k]) / float(e @ e) for k in range(1, 9)])
        np.testing.assert_allclose(ind._acf(series, 8), lags, rtol=0, atol=1e-10)
    assert np.array_equal(ind._acf(np.ones(50), 3), np.zeros(3))


def test_the_written_out_helpers_equal_the_library_calls_they_replace() -> None:
    """statsmodels' `acf` and `acovf`, scipy's ordinal ranks and distribution tails and the modulo of the block
    indices: the same numbers, bit for bit (the DAG's tables do not move); the batched contingency
    tables against one table at a time."""
    from scipy import stats
    from statsmodels.tsa.stattools import acf, acovf

    rng = np.random.default_rng(5)
    for n in (40, 156):
        series = np.cumsum(rng.normal(size=n))
        assert np.array_equal(ind._acf(series, 9), acf(series, nlags=9, adjusted=False, fft=False)[1:])
        e = series - series.mean()
        assert np.array_equal(ind._autocovariances(e, 6), acovf(e, adjusted=False, demean=False, fft=False, nlag=6))
        tied = rng.integers(0, 5, size=n).astype(float)  # ties: ranked in the order they come
        for values in (series, tied):
            expected = ((stats.rankdata(values, method="ordinal") - 1) * 3) // n
            assert np.array_equal(ind.quantile_bins(values, 3), expected)
        for block in (1, 3, n // 4):
            weeks = ind.circular_block_indices(n, block, 200, np.random.default_rng(block))
            starts = np.random.default_rng(block).integers(0, n, size=(200, -(-n // block)), dtype=np.int32)
            by_modulo = ((starts[:, :, None] + np.arange(block)[None, None, :]) % n).reshape(200, -1)[:, :n]
            assert np.array_equal(weeks, by_modulo) and weeks.min() >= 0 and weeks.max() < n
    a, b = ind.quantile_bins(series, 3), ind.quantile_bins(rng.normal(size=n), 3)
    rows = a[ind.circular_block_indices(n, 5, 50, rng)]
    np.testing.assert_allclose(ind._pearson_rows(rows, b, 3), [ind.pearson_statistic(row, b, 3) for row in rows],
                               rtol=1e-12)  # the same tables, summed in another order
    u, v = rng.normal(size=(2, 80))
    z, p = ind.fisher_z(u, v, u, 70, 3)
    assert p == float(2.0 * stats.norm.sf(abs(z)))
    statistic, df, p_chi = ind.chi_squared(u, v, u, 3, None)
    assert p_chi == float(stats.chi2.sf(statistic, df))


def _ar_series(rng: np.random.Generator, phi: list[float], n: int) -> np.ndarray:
    return ind.simulate_ar(np.array(phi), rng.normal(size=(1, n + 100)), 100)[0]


def test_ar_fit_recovers_the_coefficients_and_the_filter_its_innovations() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(size=(1, 5100))
    series = ind.simulate_ar(np.array([0.6, -0.3]), e, 100)[0]
    phi = ind.fit_ar(series, 6)
    np.testing.assert_allclose(phi, [0.6, -0.3], atol=0.04)
    np.testing.assert_allclose(ind.ar_filter(series, np.array([0.6, -0.3])), e[0, 102:], atol=1e-12)
    assert len(ind.fit_ar(rng.normal(size=2000), 6)) == 0


def test_bias_correction_removes_most_of_the_small_sample_bias() -> None:
    rng = np.random.default_rng(2)
    design = np.column_stack([np.ones(150), np.linspace(0, 1, 150)])
    plain, corrected = [], []
    for _ in range(150):
        y = _ar_series(rng, [0.7], 150)
        resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        plain.append(ind.yule_walker(resid, 1)[0])
        corrected.append(ind.bias_corrected_ar(resid, design, 1, 200, rng)[0])
    bias_plain, bias_corrected = np.mean(plain) - 0.7, np.mean(corrected) - 0.7
    assert bias_plain < -0.03
    assert abs(bias_corrected) < abs(bias_plain) / 3


def _seasonal_frame(rng: np.random.Generator, signal: np.ndarray) -> pd.DataFrame:
    n = len(signal)
    frame = pd.DataFrame(fourier_terms(n, 2), columns=FOURIER)
    frame["x"] = signal + _ar_series(rng, [0.6], n)
    return frame


def test_a_multi_column_node_is_tested_jointly_and_names_its_column() -> None:
    rng = np.random.default_rng(3)
    frame = _seasonal_frame(rng, 1.5 * fourier_terms(156, 2)[:, 3])
    columns = {"x": ["x"], "seasonality": FOURIER}
    results = ind.check_implication(frame, ind.Implication("x", "seasonality", ()), columns, {"seasonality"},
                                    ind.IndependenceSettings())
    z = next(r for r in results if r.test is ind.TestKind.FISHER_Z)
    assert z.column == "seasonality_cos2" and z.p_value < 1e-4
    null = ind.check_implication(_seasonal_frame(rng, np.zeros(156)), ind.Implication("x", "seasonality", ()),
                                 columns, {"seasonality"}, ind.IndependenceSettings())
    assert min(r.p_value for r in null) > 0.05


def test_the_trend_is_not_regressed_out_of_its_own_test() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"trend": np.linspace(0, 1, 156)})
    frame["x"] = 3.0 * frame["trend"] + _ar_series(rng, [0.5], 156)
    results = ind.check_implication(frame, ind.Implication("x", "trend", ()), {"x": ["x"], "trend": ["trend"]},
                                    {"trend"}, ind.IndependenceSettings())
    assert min(r.p_value for r in results) < 1e-3


def test_two_generated_nodes_cannot_be_tested() -> None:
    frame = pd.DataFrame(fourier_terms(156, 2), columns=FOURIER).assign(trend=np.linspace(0, 1, 156))
    outcome = ind.check_implication(frame, ind.Implication("trend", "seasonality", ()),
                                    {"trend": ["trend"], "seasonality": FOURIER}, GENERATED,
                                    ind.IndependenceSettings())
    assert isinstance(outcome, ind.Untestable) and "generated" in outcome.reason


ROLES = {"seasonality": "control", "trend": "control", "price": "control", "sales": "kpi",
         **{c: "channel" for c in ("tv", "search", "digital", "email")}}


@pytest.mark.parametrize(("drop", "x", "y", "edge"), [
    (("seasonality", "digital"), "digital", "seasonality", ("seasonality", "digital")),  # into the channel
    (("tv", "search"), "search", "tv", ("tv", "search")),       # the tested direction: y is the parent asked for
    (("email", "sales"), "email", "sales", ("email", "sales")),   # the KPI gets no child
    (("trend", "sales"), "trend", "sales", ("trend", "sales")),
])
def test_the_edge_to_add_is_the_one_the_dropped_edge_was(drop: tuple[str, str], x: str, y: str,
                                                         edge: tuple[str, str]) -> None:
    """Drop an edge of the sample DAG: the implication it leaves names that edge back, never one
    that makes a cycle, gives the KPI a child or a generated node a cause."""
    g = _sample_dag(drop)
    g.add_nodes_from(COLUMNS)  # a node left without edges is still in the DAG
    implications = {frozenset((i.x, i.y)): i for i in ind.implied_independences(g, COLUMNS, WIDTHS, GENERATED)}
    implication = implications[frozenset((x, y))]
    assert ind.edge_to_add(g, implication.x, implication.y, ROLES, GENERATED) == edge


def test_the_edge_to_add_keeps_the_dag_a_dag() -> None:
    g = _sample_dag()
    for i in ind.implied_independences(g, COLUMNS, WIDTHS, GENERATED):
        if {i.x, i.y} <= GENERATED:
            continue  # never tested (no noise of their own), see below
        u, v = ind.edge_to_add(g, i.x, i.y, ROLES, GENERATED)
        assert {u, v} == {i.x, i.y} and v not in GENERATED and ROLES[u] != "kpi"
        assert nx.is_directed_acyclic_graph(nx.DiGraph([*g.edges, (u, v)]))
        # a control pointing at a channel, not the other way round
        if {ROLES[u], ROLES[v]} == {"control", "channel"}:
            assert (ROLES[u], ROLES[v]) == ("control", "channel")
    # two generated nodes: no edge between them is allowed, only a common cause
    assert ind.edge_to_add(g, "trend", "seasonality", ROLES, GENERATED) is None


def test_the_message_names_the_edge_to_add() -> None:
    table = pd.DataFrame({"x": ["digital", "digital", "price"], "y": ["seasonality", "seasonality", "tv"],
                          "implication": ["digital ⟂ seasonality", "digital ⟂ seasonality", "price ⟂ tv"],
                          "test": ["fisher_z", "chi_squared", "fisher_z"], "p_adjusted": [1e-9, 1e-6, 0.8],
                          "rejected": [True, True, False], "alpha": 0.05, "correction": "holm"})
    named = ind.with_edges_to_add(table, _sample_dag(("seasonality", "digital")), ROLES, GENERATED)
    assert list(named["edge_to_add"]) == ["seasonality → digital", "seasonality → digital", ""]
    assert ind.rejection_message(named) == (
        "The data reject 1 of 2 implications of the DAG (HOLM-adjusted p < 0.05). digital ⟂ seasonality rejected "
        "(adjusted p = 1e-09, fisher_z): add the edge seasonality → digital or a common cause of digital and "
        "seasonality. Each pair moves together in the data although the DAG keeps it apart: add the edge, or "
        "explain why the DAG is right.")
    # read back from dag_tests.csv, the empty cells are NaN: still no 'nan' edge
    assert "nan" not in ind.rejection_message(named.assign(edge_to_add=[np.nan] * 3))


def test_the_message_names_the_rejected_implication() -> None:
    table = pd.DataFrame({"implication": ["digital ⟂ seasonality", "digital ⟂ seasonality", "price ⟂ tv"],
                          "test": ["fisher_z", "chi_squared", "fisher_z"], "p_adjusted": [1e-9, 1e-6, 0.8],
                          "rejected": [True, True, False], "alpha": 0.05, "correction": "holm"})
    message = ind.rejection_message(table)
    assert message.startswith("The data reject 1 of 2 implications")
    assert "digital ⟂ seasonality (adjusted p = 1e-09, fisher_z)" in message and "price" not in message
    assert "consistent with all 1" in ind.rejection_message(table.iloc[2:])


# ---------------------------------------------------------------------------------------------
# Calibration and power by simulation (the full study: benchmarks/dag_calibration.py)

SEEDS = range(40)


@pytest.fixture(scope="module")
def calibration() -> pd.DataFrame:
    settings = ind.IndependenceSettings()
    scenarios = [s for s in study.standard_scenarios() if "0.25" not in s.name]
    rows = study.run_study(scenarios, SEEDS, settings)
    summary = study.summarize(rows, settings.alpha)
    return summary.set_index(["scenario", "test"])


def test_true_implications_are_rejected_near_the_nominal_rate(calibration: pd.DataFrame) -> None:
    correct = calibration.loc[("correct DAG", "any")]
    assert correct["seeds"] == 40
    assert 0.02 <= correct["false_rejection_rate"] <= 0.08  # per test, unadjusted, nominal 0.05 (measured 0.060)
    # Any Holm rejection of a correct DAG, nominal 0.05: 0.065 over 200 seeds in the benchmark; 40 seeds
    # leave a binomial standard error of 0.04, hence the slack (measured 0.10 here).
    assert correct["familywise_false_alarm"] <= 0.15
    for test in ("fisher_z", "chi_squared"):
        assert calibration.loc[("correct DAG", test), "false_rejection_rate"] <= 0.08


def test_textbook_iid_tests_over_reject_on_the_same_weekly_data() -> None:
    settings = study.naive_settings(ind.IndependenceSettings())
    rows = study.run_study(study.standard_scenarios()[:1], SEEDS, settings)
    naive = study.summarize(rows, settings.alpha).set_index("test").loc["any"]
    assert naive["false_rejection_rate"] > 0.15
    assert naive["familywise_false_alarm"] > 0.5


def test_a_dag_missing_seasonality_to_digital_is_caught(calibration: pd.DataFrame) -> None:
    missing = calibration.loc[("DAG misses seasonality -> digital", "any")]
    assert missing["power"] >= 0.8
    assert missing["false_rejection_rate"] <= 0.08


def test_data_with_an_extra_edge_is_caught(calibration: pd.DataFrame) -> None:
    assert calibration.loc[("data has seasonality -> search (0.5)", "any"), "power"] >= 0.8


# ---------------------------------------------------------------------------------------------
# On the bundled sample, through Dagster


def test_on_the_sample_the_correct_dag_passes_and_the_missing_edge_is_named(tmp_path: Path) -> None:
    passing = run_dag_step(tmp_path / "correct")
    assert checks(passing)["dag_independence"].passed

    def drop_edge(config: dict) -> None:
        config["graph"]["edges"] = [e for e in config["graph"]["edges"] if e != ["seasonality", "digital"]]

    warned = run_dag_step(tmp_path / "missing", edit_config=drop_edge)
    evaluation = checks(warned)["dag_independence"]
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert "digital ⟂ seasonality" in evaluation.description
    assert "The data reject 1 of" in evaluation.description
    # the message names the edge to add, as the README's troubleshooting table says it does
    assert "add the edge seasonality → digital or a common cause of digital and seasonality" in evaluation.description
    assert evaluation.metadata["failed_rules"].text == (
        "dag-implication-holds (digital ⟂ seasonality: add the edge seasonality → digital or a common cause of "
        "digital and seasonality)")
    assert "downstream" in materialized(warned)  # a WARN does not block


def test_independence_blocking_switch_makes_a_rejection_block(tmp_path: Path) -> None:
    def drop_edge_and_block(config: dict) -> None:
        config["graph"]["edges"] = [e for e in config["graph"]["edges"] if e != ["seasonality", "digital"]]
        config["checks"] = {"independence_blocking": True}

    result = run_dag_step(tmp_path, edit_config=drop_edge_and_block)
    evaluation = checks(result)["dag_independence"]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert "downstream" not in materialized(result)


def test_dag_tests_table_has_the_contract_columns(tmp_path: Path) -> None:
    import duckdb

    result = run_dag_step(tmp_path)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        table = con.execute(f"SELECT * FROM {staging(result)}.dag_tests").df()
    assert {"x", "y", "given", "test", "statistic", "p_value", "p_adjusted", "rejected"} <= set(table.columns)
    assert set(table["test"]) == {"fisher_z", "chi_squared"}
    assert table["implication"].nunique() == 17  # 18 unconnected pairs; seasonality ⟂ trend is untestable
    assert (table["p_adjusted"] >= table["p_value"]).all()


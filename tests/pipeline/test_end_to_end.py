"""`cmmm run` on the bundled sample: the values written match the simulator's known truth."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.cli import main

REQUIRED = ["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "incremental_kpi", "p_value", "naive_roi"]


def _estimates(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "estimates.csv")


def _total(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["effect"] == "total"].set_index("channel")


def test_estimates_csv_has_the_contract_columns_and_every_channel(sample_run: Path) -> None:
    est = _estimates(sample_run)
    assert set(REQUIRED) <= set(est.columns)
    assert sorted(_total(est).index) == ["digital", "email", "search", "tv"]
    tv = est[est["channel"] == "tv"].set_index("effect")
    assert {"total", "direct", "indirect"} <= set(tv.index)
    assert tv.loc["indirect", "incremental_kpi"] == pytest.approx(
        tv.loc["total", "incremental_kpi"] - tv.loc["direct", "incremental_kpi"], rel=1e-6)
    # Every transform is configured in the sample: nothing is smoothed over a selection.
    assert set(est["interval_method"]) == {"percentile"}
    assert (est["roi"] == est["applied_transform_roi"]).all()


def test_total_roi_is_close_to_the_known_truth(sample_run: Path, sample_truth: pd.DataFrame) -> None:
    est, truth = _total(_estimates(sample_run)), _total(sample_truth)
    for channel in truth.index:
        assert est.loc[channel, "roi"] == pytest.approx(truth.loc[channel, "roi"], rel=0.20), channel
        assert est.loc[channel, "p_value"] < 0.01, channel


def test_tv_interval_covers_its_truth_and_naive_ols_is_visibly_further_off(sample_run: Path,
                                                                            sample_truth: pd.DataFrame) -> None:
    est, truth = _total(_estimates(sample_run)), _total(sample_truth)
    tv_truth = truth.loc["tv", "roi"]
    assert est.loc["tv", "roi_ci_low"] <= tv_truth <= est.loc["tv", "roi_ci_high"]
    causal_error = abs(est.loc["tv", "roi"] / tv_truth - 1)
    naive_error = abs(est.loc["tv", "naive_roi"] / tv_truth - 1)
    # The naive regression conditions on search and so drops TV's halo: ~20% low on the sample.
    assert naive_error > 0.15
    assert naive_error > 2 * causal_error


def test_the_warehouse_holds_the_published_run(sample_run: Path) -> None:
    with duckdb.connect(str(sample_run / "cmmm.duckdb"), read_only=True) as con:
        raw_rows = con.execute("SELECT count(*), min(week), max(week) FROM published.raw_spend").fetchall()[0]
        est_rows = con.execute("SELECT count(*) FROM published.estimates").fetchall()[0][0]
        history = con.execute("SELECT count(DISTINCT run_id), count(*) FROM published.estimates_history").fetchall()[0]
        tv_roi = con.execute("SELECT roi FROM published.estimates WHERE channel = ? AND effect = ?",
                             ["tv", "total"]).fetchall()[0][0]
    assert raw_rows[0] == 156
    assert str(raw_rows[1])[:10] == "2023-01-02" and str(raw_rows[2])[:10] == "2025-12-22"
    assert est_rows == len(_estimates(sample_run))
    assert history == (1, est_rows)
    assert tv_roi == pytest.approx(_total(_estimates(sample_run)).loc["tv", "roi"])


def test_report_is_self_contained_html(sample_run: Path) -> None:
    html = (sample_run / "report.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "data:image/png;base64," in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_invalid_config_exits_non_zero_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("data: {path: weekly.csv, date_column: week, kpi: sales}\nchannels: {tv: {spend: tv}}\n"
                   "graph: {edges: [[tv, sales]]}\n")
    assert main(["run", "--config", str(bad), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "config-unknown-key" in err and "channels.tv.spend" in err
    assert not (tmp_path / "out" / "estimates.csv").exists()


def test_a_run_that_selects_transforms_publishes_smoothed_estimates(tmp_path: Path,
                                                                    sample_truth: pd.DataFrame) -> None:
    """The sample config with digital's and email's transforms left out, through the whole job:
    their rows are smoothed over the selection in estimates.csv and in the published warehouse table,
    TV's and search's are not, and the smoothed intervals cover the truth."""
    import yaml

    sample = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
    raw = yaml.safe_load((sample / "config.yaml").read_text(encoding="utf-8"))
    raw["data"]["path"] = str(sample / raw["data"]["path"])
    for channel in ("digital", "email"):
        raw["channels"][channel] = {"spend_column": raw["channels"][channel]["spend_column"]}
    config = tmp_path / "selecting.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert main(["run", "--config", str(config), "--output", str(tmp_path / "out")]) == 0

    est = _estimates(tmp_path / "out").set_index(["channel", "effect"])
    truth = sample_truth.set_index(["channel", "effect"])
    for channel in ("digital", "email"):
        row = est.loc[(channel, "total")]
        assert row["interval_method"] == "smoothed" and row["roi"] != row["applied_transform_roi"]
        assert row["roi"] == pytest.approx(row["incremental_kpi"] / row["spend"], rel=1e-9)
        assert row["roi_ci_low"] <= truth.loc[(channel, "total"), "roi"] <= row["roi_ci_high"]
    assert est.loc[("tv", "total"), "interval_method"] == "percentile"
    with duckdb.connect(str(tmp_path / "out" / "cmmm.duckdb"), read_only=True) as con:
        published = con.execute("SELECT roi FROM published.estimates WHERE channel = ? AND effect = ?",
                                ["email", "total"]).fetchone()[0]
        assert published == pytest.approx(est.loc[("email", "total"), "roi"], rel=1e-12)
        selected = con.execute("SELECT count(*) FROM published.transform_selection WHERE selected").fetchone()[0]
    assert selected == 2


def test_sample_estimates_match_the_golden_file(sample_run: Path) -> None:
    """Refactors must not move a number. A change that is meant to move one regenerates the golden
    file in the same commit (`cmmm run --output DIR && cp DIR/estimates.csv tests/golden/sample_estimates.csv`).
    The header and every text cell must be identical and every number equal to 1e-9 relative: the
    last digits of a float differ between BLAS builds and CPUs (up to 2.2e-12 measured), a real change
    moves far more."""
    from tests.conftest import GOLDEN_DIR

    golden_path = GOLDEN_DIR / "sample_estimates.csv"
    found_path = sample_run / "estimates.csv"
    header = golden_path.read_text(encoding="utf-8").splitlines()[0]
    assert found_path.read_text(encoding="utf-8").splitlines()[0] == header
    golden, found = pd.read_csv(golden_path, dtype=str), pd.read_csv(found_path, dtype=str)
    assert found.shape == golden.shape
    for column in golden.columns:
        expected, actual = pd.to_numeric(golden[column], errors="coerce"), pd.to_numeric(found[column], errors="coerce")
        numeric = expected.notna() | golden[column].isna()
        assert (found[column].isna() == golden[column].isna()).all(), column
        if numeric.all():
            np.testing.assert_allclose(actual.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=0,
                                       err_msg=column)
        else:
            assert found[column].fillna("").tolist() == golden[column].fillna("").tolist(), column


def _console_review(console: str) -> list[str]:
    """The lines of the console's "To review (n):" block (none when it is absent)."""
    if "To review (" not in console:
        return []
    block = console.split("To review (", 1)[1].split("\n\n", 1)[0].splitlines()
    count = int(block[0].split(")", 1)[0])
    lines = [line.removeprefix("  ") for line in block[1:]]
    assert len(lines) == count
    return lines


def _report_attention(html: str) -> list[str]:
    """The report's "What needs attention" items as `LEVEL  text`, as the console prints them."""
    import html as html_lib
    import re

    section = html.split('id="attention"', 1)[1].split("</section>", 1)[0]
    items = re.findall(r'<li class="(\w+)"><a href="#[\w-]+"><span class="level">(\w+)</span> (.*?)</a></li>',
                       section, re.S)
    return [f"{level:<7}{html_lib.unescape(text)}" for _, level, text in items]


def test_the_console_and_the_report_list_the_same_items_to_review(sample_run: Path) -> None:
    """Every WARN and REVIEW the console prints after the table is in the report's attention list and
    nothing else is: the sample's stale-data WARN is in both, with its rule and fix, and the report
    does not claim that nothing needs review."""
    from tests.conftest import sample_console

    console = _console_review(sample_console(sample_run))
    html = (sample_run / "report.html").read_text(encoding="utf-8")
    assert console == _report_attention(html)
    stale = [line for line in console if "raw_spend.raw_spend_newest_week" in line]
    assert len(stale) == 1 and stale[0].startswith("WARN   ") and "[data-too-old]" in stale[0] and "Fix:" in stale[0]
    assert "Nothing failed and nothing needs review" not in html
    with duckdb.connect(str(sample_run / "cmmm.duckdb"), read_only=True) as con:
        checks = con.execute("SELECT asset || '.' || \"check\", severity, passed FROM published.check_results "
                             "ORDER BY 1").fetchall()
    assert checks == [("budget_plan.plan_within_support", "WARN", True),  # no plan configured
                      ("causal_dag.dag_identification", "WARN", True), ("causal_dag.dag_independence", "WARN", True),
                      ("causal_dag.dag_overlap", "WARN", True), ("causal_dag.missing_drivers", "WARN", True),
                      ("raw_spend.raw_spend_newest_week", "WARN", False), ("raw_spend.raw_spend_quality", "ERROR", True),
                      ("transformed_media.transformed_media_quality", "ERROR", True)]

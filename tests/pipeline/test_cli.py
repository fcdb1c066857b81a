"""The front door: `cmmm --version`, `cmmm validate` (every config, graph and data-schema problem at
once, no run) and `cmmm init` (a starter config from a data file that validates and runs)."""

from __future__ import annotations

import shutil
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cmmm_pipeline.cli import main
from cmmm_pipeline.core.loading import load_config

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SAMPLE_TEXT = (SAMPLE_DIR / "config.yaml").read_text(encoding="utf-8")


def paragraphs(err: str) -> list[str]:
    return [line.removeprefix("cmmm: ") for line in err.splitlines() if line.startswith("cmmm: [")]


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"cmmm {version('cmmm-pipeline')}"


def test_validate_accepts_the_bundled_sample_in_seconds(capsys: pytest.CaptureFixture) -> None:
    started = time.perf_counter()
    assert main(["validate", "--config", str(SAMPLE_DIR / "config.yaml")]) == 0
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert "valid (4 channels, 3 controls, 10 edges" in out and err == ""
    assert elapsed < 10, elapsed  # about 0.1 s in process; generous for a busy machine


def test_validate_reports_every_config_and_graph_problem_at_once(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    text = (SAMPLE_TEXT.replace("decay: 0.6", "decai: 0.6")            # unknown key
            .replace("decay: 0.2", "decay: 1.5")                        # out of range
            .replace("slope: 1.2", "slope: steep")                      # wrong type
            .replace("- [email, sales]", "- [emial, sales]")            # unknown node
            + "checks: {min_weeks: 4, independence_alpha: 2}\n")        # two thresholds
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    shutil.copy(SAMPLE_DIR / "weekly.csv", tmp_path / "weekly.csv")
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 2
    _, err = capsys.readouterr()
    found = [(p.split("]")[0][1:], p.split("key '")[1].split("'")[0]) for p in paragraphs(err)]
    assert found == [
        ("config-unknown-key", "channels.tv.adstock.decai"),
        ("config-range", "channels.search.adstock.decay"),
        ("config-type", "channels.digital.saturation.slope"),
        ("threshold-range", "checks.min_weeks"),
        ("threshold-range", "checks.independence_alpha"),
        ("graph-unknown-node", "graph.edges[7]"),
        ("graph-channel-unreachable", "graph.edges"),  # email lost its only edge to the KPI
    ], err
    assert all(" Fix: " in p for p in paragraphs(err))
    assert "7 problems in the config" in err


def test_validate_reads_the_data_header_and_types_without_running(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    data = pd.read_csv(SAMPLE_DIR / "weekly.csv", dtype=str)
    data = data.rename(columns={"email_spend": "email_cost"})
    data.insert(len(data.columns), "tv_spend", data["tv_spend"], allow_duplicates=True)
    data.loc[3, "price"] = "$12"
    data.loc[[5, 9], "sales"] = "1e300"
    data.to_csv(tmp_path / "weekly.csv", index=False)
    (tmp_path / "config.yaml").write_text(SAMPLE_TEXT, encoding="utf-8")
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 2
    first = paragraphs(capsys.readouterr().err)
    assert [p.split("]")[0][1:] for p in first] == ["column-duplicated"]  # the header is read first
    assert "column 'tv_spend'" in first[0] and "positions 2, 8" in first[0]

    data = data.loc[:, ~data.columns.duplicated()]
    data.to_csv(tmp_path / "weekly.csv", index=False)
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 2
    second = paragraphs(capsys.readouterr().err)
    assert [p.split("]")[0][1:] for p in second] == ["column-missing"]
    assert "'email_spend' is now 'email_cost'?" in second[0]

    data = data.rename(columns={"email_cost": "email_spend"})
    data.to_csv(tmp_path / "weekly.csv", index=False)
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 2
    third = paragraphs(capsys.readouterr().err)
    assert [p.split("]")[0][1:] for p in third] == ["numeric-type", "value-too-large"]
    assert "column 'price'" in third[0] and data["week"][3] in third[0]
    assert "column 'sales'" in third[1] and data["week"][5] in third[1] and data["week"][9] in third[1]


def test_init_writes_a_starter_config_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.copy(SAMPLE_DIR / "weekly.csv", tmp_path / "weekly.csv")
    config_path = tmp_path / "configs" / "mmm.yaml"
    assert main(["init", str(tmp_path / "weekly.csv"), "--output", str(config_path)]) == 0
    capsys.readouterr()
    text = config_path.read_text(encoding="utf-8")
    assert "CHECK" in text and "DECIDE" in text  # where a human must decide
    config = load_config(config_path)
    assert config.data.path == (tmp_path / "weekly.csv").resolve() and config.kpi == "sales"
    assert [(c.name, c.spend_column) for c in config.channels] == [
        ("tv", "tv_spend"), ("search", "search_spend"), ("digital", "digital_spend"), ("email", "email_spend")]
    assert config.controls == ("seasonality", "trend", "price")
    edges = set(config.edges)
    assert {("seasonality", c) for c in config.channel_names} <= edges
    assert {(c, "sales") for c in (*config.channel_names, "seasonality", "trend", "price")} <= edges
    assert main(["validate", "--config", str(config_path)]) == 0


def test_init_never_overwrites_a_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    existing = tmp_path / "config.yaml"
    existing.write_text("# mine\n", encoding="utf-8")
    assert main(["init", str(SAMPLE_DIR / "weekly.csv"), "--output", str(existing)]) == 2
    assert paragraphs(capsys.readouterr().err)[0].startswith(f"[config-exists] {existing}: ")
    assert existing.read_text(encoding="utf-8") == "# mine\n"


@pytest.mark.parametrize(("name", "content", "rule"), [
    ("absent.csv", None, "data-missing"),
    ("empty.csv", "", "data-unreadable"),
    ("header.csv", "week,tv_spend,sales\n", "data-empty"),
    ("words.csv", "week,channel,comment\n2024-01-01,tv,good\n2024-01-08,tv,bad\n", "init-too-few-numeric-columns"),
    ("nodates.csv", "tv_spend,sales\n1,2\n3,4\n", "init-no-date-column"),
    ("table.xlsx", "not really", "data-format"),
])
def test_init_refuses_unusable_files_with_the_rule_run_names(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             name: str, content: str | None, rule: str) -> None:
    if content is not None:
        (tmp_path / name).write_text(content, encoding="utf-8")
    assert main(["init", str(tmp_path / name), "--output", str(tmp_path / "config.yaml")]) == 2
    found = paragraphs(capsys.readouterr().err)
    assert found[0].startswith(f"[{rule}] ") and " Fix: " in found[0], found
    assert not (tmp_path / "config.yaml").exists()


def test_init_names_channels_by_medium_and_marks_a_guessed_kpi(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sample = pd.read_csv(SAMPLE_DIR / "weekly.csv")
    table = pd.DataFrame({"Date": sample["week"], "TV Cost": sample["tv_spend"],
                          "facebook_impressions": sample["digital_spend"], "temperature": sample["price"],
                          "region": "north", "weekly_total": sample["sales"]})
    table.to_csv(tmp_path / "export.csv", index=False)
    assert main(["init", str(tmp_path / "export.csv"), "--output", str(tmp_path / "config.yaml")]) == 0
    capsys.readouterr()
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert raw["data"] == {"path": "export.csv", "date_column": "Date", "kpi": "weekly_total"}
    # A spend column may have any name (the channel's is clean); impressions without spend: to decide.
    assert raw["channels"] == {"tv": {"spend_column": "TV Cost"}, "facebook": {"spend_column": "facebook_impressions"}}
    assert "# DECIDE KPI 'weekly_total'" in text and "# DECIDE facebook: no spend column" in text
    assert "region: the same text in every row" in text.split("# Left out")[1]
    assert raw["controls"] == ["seasonality", "trend", "temperature"]
    assert main(["validate", "--config", str(tmp_path / "config.yaml")]) == 0


@pytest.mark.slow
def test_init_validate_run_on_the_sample_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The newcomer's path in one try: init on the bundled CSV, validate, run; the console names
    every file written and every WARN/REVIEW item after the table."""
    shutil.copy(SAMPLE_DIR / "weekly.csv", tmp_path / "weekly.csv")
    config_path = tmp_path / "config.yaml"
    assert main(["init", str(tmp_path / "weekly.csv"), "--output", str(config_path)]) == 0
    assert main(["validate", "--config", str(config_path)]) == 0
    capsys.readouterr()
    output = tmp_path / "out"
    assert main(["run", "--config", str(config_path), "--output", str(output)]) == 0
    out, _ = capsys.readouterr()
    estimates = pd.read_csv(output / "estimates.csv")
    assert set(estimates["channel"]) == {"tv", "search", "digital", "email"}
    tail = out.split("Wrote:")[1].split()
    assert [Path(p).name for p in tail[:2]] == ["estimates.csv", "dag_tests.csv"]
    assert {Path(p).name for p in tail} >= {"estimates.csv", "report.html", "estimate_changes.csv", "cmmm.duckdb"}
    # The starter DAG omits tv -> search, which the sample data contradict: a WARN line after the table.
    table_end = out.index("Wrote:")
    assert "To review" in out[:table_end] and "dag-implication-holds" in out.split("To review")[1]


def test_the_summary_table_leads_with_support_and_marginal_roi_and_names_withheld_channels() -> None:
    import pandas as pd

    from cmmm_pipeline.run import summary_table

    estimates = pd.DataFrame([
        {"channel": "tv", "effect": "total", "roi": 1.893, "roi_ci_low": 1.723, "roi_ci_high": 1.979,
         "roi_support": "observed", "mroi": 1.153, "mroi_ci_low": 1.088, "mroi_ci_high": 1.272, "p_value": 3e-62,
         "naive_roi": 1.451, "withheld_reason": ""},
        {"channel": "radio", "effect": "total", "roi": float("nan"), "roi_ci_low": float("nan"),
         "roi_ci_high": float("nan"), "roi_support": "", "mroi": float("nan"), "mroi_ci_low": float("nan"),
         "mroi_ci_high": float("nan"), "p_value": float("nan"), "naive_roi": float("nan"),
         "withheld_reason": "[overlap-residual-variation] residual share 0.04 < 0.1"}])
    header, tv, radio = summary_table(estimates).splitlines()
    assert header.split()[:5] == ["channel", "effect", "ROI", "95%", "interval"] and "support" in header
    assert "1.893 [ 1.723,  1.979] observed" in tv and "1.153 [ 1.088,  1.272]" in tv and tv.endswith("1.451")
    assert radio.split(None, 2)[2] == "withheld: [overlap-residual-variation] residual share 0.04 < 0.1"

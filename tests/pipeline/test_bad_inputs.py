"""The bad-input corpus: late, duplicated, restated, gappy, mistyped and renamed data, broken configs
and broken graphs. Each case runs `cmmm run` in process into the output folder of an earlier good
run and asserts the exit status, the rule and the place named in the message, and that the good
run's published tables and files are byte-for-byte as they were. A good run afterwards still works."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from cmmm_pipeline.cli import main

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "cmmm_pipeline" / "sample"
SAMPLE_DATA = pd.read_csv(SAMPLE_DIR / "weekly.csv", dtype=str, keep_default_na=False)
WAREHOUSE = "cmmm.duckdb"

# The bad cases edit this complete config over the sample data (every transform parameter given, so
# no selection runs and a case that reaches the transforms stays fast).
BASE_CONFIG = (SAMPLE_DIR / "config.yaml").read_text(encoding="utf-8")  # the bundled sample

REFUSED_BEFORE_RUN = 2
RUN_FAILED = 1


def week(i: int) -> str:
    return SAMPLE_DATA["week"].iloc[i]


@dataclass(frozen=True)
class Case:
    """One bad input: edits of the sample's data and config text, and what the refusal must say."""

    id: str
    exit_code: int
    rule: str
    mentions: tuple[str, ...]
    data: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    config: Callable[[str], str] | None = None
    files: dict[str, str] = field(default_factory=dict)
    """Extra files written beside the config (name → text)."""
    config_name: str = "config.yaml"


def cell(column: str, row: int, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[row, column] = value
        return df
    return edit


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)
    return edit


def without_edge(edge: str) -> Callable[[str], str]:
    return replace(f"    - {edge}\n", "")


def with_edge(edge: str) -> Callable[[str], str]:
    return replace("    - [trend, sales]\n", f"    - [trend, sales]\n    - {edge}\n")


EXPERIMENT = "{channel: tv, start: 2024-03-04, end: 2024-04-01, incremental_kpi: 7451, ci_low: 4422, ci_high: 10480}"

CASES = [
    # --- config: refused before the run (exit 2) ------------------------------------------------
    Case("config-unknown-top-level-key", REFUSED_BEFORE_RUN, "config-unknown-key",
         ("key 'control'", "did you mean 'controls'?"), config=replace("controls:", "control:")),
    Case("config-unknown-nested-key", REFUSED_BEFORE_RUN, "config-unknown-key", ("channels.tv.adstock.decai",),
         config=replace("decay: 0.6", "decai: 0.6")),
    Case("config-missing-key", REFUSED_BEFORE_RUN, "config-missing-key", ("data.kpi",),
         config=replace("date_column: week, kpi: sales}", "date_column: week}")),
    Case("config-duplicate-channel", REFUSED_BEFORE_RUN, "config-duplicate-key", ("channels.tv", "lines 4 and 14"),
         config=replace("controls:", "  tv:      {spend_column: digital_spend}\ncontrols:")),
    Case("config-duplicate-spend-column", REFUSED_BEFORE_RUN, "duplicate-spend-column",
         ("channels.email.spend_column", "'tv_spend'"), config=replace("spend_column: email_spend", "spend_column: tv_spend")),
    Case("config-invalid-yaml", REFUSED_BEFORE_RUN, "config-yaml", ("not valid YAML",),
         config=replace("controls: [seasonality, trend, price]", "controls: [seasonality, trend, price")),
    Case("config-wrong-type", REFUSED_BEFORE_RUN, "config-type", ("channels.tv.adstock.decay", "'high'"),
         config=replace("decay: 0.6", "decay: high")),
    Case("config-out-of-range", REFUSED_BEFORE_RUN, "config-range", ("channels.search.adstock.decay", "1.5"),
         config=replace("decay: 0.2", "decay: 1.5")),
    Case("config-threshold-out-of-range", REFUSED_BEFORE_RUN, "threshold-range", ("checks.min_weeks", "is 4"),
         config=lambda t: t + "checks: {min_weeks: 4}\n"),
    Case("config-unknown-transform", REFUSED_BEFORE_RUN, "config-unknown-value",
         ("channels.tv.adstock.type", "geometric, weibull"), config=replace("type: geometric, decay: 0.6",
                                                                            "type: exponential, decay: 0.6")),
    Case("config-experiment-ends-before-start", REFUSED_BEFORE_RUN, "experiment-dates", ("experiments[0].end",),
         config=replace("end: 2024-04-01", "end: 2024-02-01")),
    Case("config-experiment-unknown-channel", REFUSED_BEFORE_RUN, "experiment-channel",
         ("experiments[0].channel", "'radio'"), config=replace("{channel: tv,", "{channel: radio,")),
    Case("config-kpi-positive-not-boolean", REFUSED_BEFORE_RUN, "config-type", ("data.kpi_must_be_positive",),
         config=replace("kpi: sales}", "kpi: sales, kpi_must_be_positive: sometimes}")),
    Case("config-node-with-two-roles", REFUSED_BEFORE_RUN, "duplicate-node", ("controls[3]", "'tv'"),
         config=replace("controls: [seasonality, trend, price]", "controls: [seasonality, trend, price, tv]")),
    Case("config-column-with-two-roles", REFUSED_BEFORE_RUN, "duplicate-column", ("controls[3]", "'tv_spend'"),
         config=replace("controls: [seasonality, trend, price]", "controls: [seasonality, trend, price, tv_spend]")),
    Case("config-file-missing", REFUSED_BEFORE_RUN, "config-missing", ("no such file",), config_name="absent.yaml"),
    # --- graph: refused before the run (exit 2) -------------------------------------------------
    Case("graph-cycle", REFUSED_BEFORE_RUN, "graph-cycle", ("tv -> search -> tv",), config=with_edge("[search, tv]")),
    Case("graph-self-loop", REFUSED_BEFORE_RUN, "graph-self-loop", ("graph.edges[10]", "'price' at itself"),
         config=with_edge("[price, price]")),
    Case("graph-unknown-node", REFUSED_BEFORE_RUN, "graph-unknown-node",
         ("graph.edges[10]", "'serch'", "did you mean 'search'?"), config=with_edge("[serch, sales]")),
    Case("graph-kpi-with-children", REFUSED_BEFORE_RUN, "graph-kpi-has-children", ("[sales, price]",),
         config=with_edge("[sales, price]")),
    Case("graph-channel-without-path", REFUSED_BEFORE_RUN, "graph-channel-unreachable",
         ("channel 'email'", "[email, sales]"), config=without_edge("[email, sales]")),
    Case("config-nested-alias-bomb", REFUSED_BEFORE_RUN, "config-aliases", ("anchors and aliases",),
         config=lambda t: t + "features: {fourier_order: [&a [1, 1, 1, 1, 1, 1, 1, 1, 1], "
         + ", ".join(f"&{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")) + ", *i]}\n"),
    Case("config-several-problems", REFUSED_BEFORE_RUN, "config-unknown-key",
         ("channels.tv.adstock.decai", "[config-range] ", "channels.search.adstock.decay", "[graph-unknown-node] "),
         config=lambda t: with_edge("[serch, sales]")(t.replace("decay: 0.6", "decai: 0.6")
                                                      .replace("decay: 0.2", "decay: 1.5"))),
    Case("config-outlier-column-misspelt", REFUSED_BEFORE_RUN, "config-unknown-key",
         ("checks.outlier_columns.tv_spnd", "did you mean 'tv_spend'?"),
         config=lambda t: t + "checks: {outlier_columns: {tv_spnd: 25}}\n"),
    Case("graph-file-undirected", REFUSED_BEFORE_RUN, "graph-file", ("dag.dot", "digraph"),
         config=lambda t: t[:t.index("graph:")] + "graph: {file: dag.dot}\n" + t[t.index("experiments:"):],
         files={"dag.dot": "graph { tv -- sales }\n"}),
    # --- data: the run starts and is stopped (exit 1) --------------------------------------------
    Case("data-channel-renamed", RUN_FAILED, "column-missing", ("column 'tv_spend'", "'tv_spend' is now 'tv_cost'?"),
         data=lambda df: df.rename(columns={"tv_spend": "tv_cost"})),
    Case("data-duplicated-header", RUN_FAILED, "column-duplicated", ("column 'tv_spend'", "positions 2, 8"),
         data=lambda df: df.assign(**{"tv_spend.x": (df["tv_spend"].astype(float) * 10).astype(str)})
         .rename(columns={"tv_spend.x": "tv_spend"})),
    Case("data-kpi-beyond-bound", RUN_FAILED, "value-too-large", ("column 'sales'", week(40), "1e+300"),
         data=cell("sales", 40, "1e300")),
    Case("data-wild-kpi-week", RUN_FAILED, "value-outlier",
         ("raw_spend column 'sales'", "1 week(s) fail: " + week(40), "9.9e+11", "robust scale",
          "checks.outlier_columns.sales"), data=cell("sales", 40, "990000000000")),
    Case("data-text-in-numbers", RUN_FAILED, "numeric-type", ("column 'search_spend'", week(3), week(9), "'1,234.50'"),
         data=lambda df: cell("search_spend", 9, "$99")(cell("search_spend", 3, "1,234.50")(df))),
    Case("data-bad-date", RUN_FAILED, "date-parse", ("column 'week'", "data row(s) 8", "'2023-13-45'"),
         data=cell("week", 7, "2023-13-45")),
    Case("data-missing-weeks", RUN_FAILED, "no-missing-weeks", ("raw_spend column 'week'", week(20), week(21)),
         data=lambda df: df.drop(index=[20, 21])),
    Case("data-late-week-missing", RUN_FAILED, "no-missing-weeks", (week(154),),
         data=lambda df: df.drop(index=[154])),
    Case("data-restated-week", RUN_FAILED, "one-row-per-week", ("raw_spend column 'week'", week(60), "rows found: 2"),
         data=lambda df: pd.concat([df, df.iloc[[60]].assign(sales="9999.0")], ignore_index=True)),
    Case("data-negative-spend", RUN_FAILED, "spend-non-negative", ("column 'tv_spend'", week(5), "-250"),
         data=cell("tv_spend", 5, "-250")),
    Case("data-empty-cell", RUN_FAILED, "no-missing-values", ("column 'digital_spend'", week(12)),
         data=cell("digital_spend", 12, "")),
    Case("data-infinite-kpi", RUN_FAILED, "value-finite", ("column 'sales'", week(30), "inf"),
         data=cell("sales", 30, "inf")),
    Case("data-short-history", RUN_FAILED, "enough-history", ("at least 52 weekly rows", "observed 30"),
         data=lambda df: df.tail(30), config=lambda t: t[:t.index("experiments:")]),
    Case("data-channel-all-zero", RUN_FAILED, "channel-not-all-zero", ("column 'email_spend'",),
         data=lambda df: df.assign(email_spend="0")),
    Case("data-channel-constant", RUN_FAILED, "channel-not-constant", ("column 'email_spend'", "observed 1"),
         data=lambda df: df.assign(email_spend="120.5")),
    Case("data-kpi-not-positive", RUN_FAILED, "kpi-positive", ("column 'sales'", week(40)),
         data=cell("sales", 40, "0"), config=replace("kpi: sales}", "kpi: sales, kpi_must_be_positive: true}")),
    Case("data-off-cadence-date", RUN_FAILED, "weekly-cadence", ("2023-07-11",),
         data=cell("week", 27, "2023-07-11")),
    Case("data-experiment-outside-dates", RUN_FAILED, "experiment-outside-data",
         ("experiments[0]", "2026-03-02", "2023-01-02 to 2025-12-28"),
         config=replace("start: 2024-03-04, end: 2024-04-01", "start: 2026-03-02, end: 2026-03-30")),
    Case("data-header-only", RUN_FAILED, "data-empty", ("weekly.csv", "no data rows"), data=lambda df: df.head(0)),
    Case("data-file-missing", RUN_FAILED, "data-missing", ("nowhere.csv",),
         config=replace("path: weekly.csv", "path: nowhere.csv")),
    Case("data-constant-control", RUN_FAILED, "column-not-constant", ("transformed_media column 'price'",),
         data=lambda df: df.assign(price="9.99")),
]


def snapshot(output: Path) -> dict[str, str]:
    """Checksums of every output file (the warehouse excepted: its staging schema is scratch space)
    and of every published table's rows."""
    sums = {f"file:{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(output.iterdir()) if p.is_file() and not p.name.startswith(WAREHOUSE)}
    with duckdb.connect(str(output / WAREHOUSE), read_only=True) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'published' ORDER BY 1").fetchall()]
        for table in tables:
            frame = con.execute(f'SELECT * FROM published."{table}" ORDER BY ALL').df()
            sums[f"table:{table}"] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return sums


@pytest.fixture(scope="module")
def good_output(sample_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A private copy of the session's good run, and its checksums."""
    output = tmp_path_factory.mktemp("corpus") / "out"
    shutil.copytree(sample_run, output, symlinks=True)  # the published files are relative links
    before = snapshot(output)
    assert "file:estimates.csv" in before and "file:report.html" in before and "table:estimates" in before
    return output, before


def write_case(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = SAMPLE_DATA.copy()
    if case.data is not None:
        data = case.data(data)
    data.to_csv(folder / "weekly.csv", index=False)
    text = case.config(BASE_CONFIG) if case.config is not None else BASE_CONFIG
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    for name, content in case.files.items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder / case.config_name


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.rule for c in CASES}) >= 25
    assert {c.exit_code for c in CASES} == {REFUSED_BEFORE_RUN, RUN_FAILED}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_and_earlier_results_are_intact(case: Case, good_output: tuple[Path, dict[str, str]],
                                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output, before = good_output
    config = write_case(case, tmp_path / "case")
    code = main(["run", "--config", str(config), "--output", str(output)])
    out, err = capsys.readouterr()
    assert code == case.exit_code, err
    assert f"[{case.rule}] " in err, err
    for mention in case.mentions:
        assert mention in err, f"{mention!r} not in:\n{err}"
    assert "Fix: " in err
    assert "Traceback" not in err + out and "Stack Trace" not in err + out
    assert "cmmm_pipeline.core.errors" not in err and "dagster._core" not in err
    if case.exit_code == RUN_FAILED:
        assert "nothing was published and earlier results are intact" in err
    assert snapshot(output) == before


def test_a_failed_check_is_shown_as_a_check_line_naming_the_rules(good_output: tuple[Path, dict[str, str]],
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    output, before = good_output
    case = Case("two-rules", RUN_FAILED, "", (), data=lambda df: cell("tv_spend", 5, "-1")(df.drop(index=[70])))
    assert main(["run", "--config", str(write_case(case, tmp_path)), "--output", str(output)]) == RUN_FAILED
    out, err = capsys.readouterr()
    assert ("check raw_spend.raw_spend_quality: FAIL — failed rules: spend-non-negative (tv_spend), "
            "no-missing-weeks (week)") in out.splitlines()
    paragraphs = err.splitlines()
    assert paragraphs[:2] == ["cmmm: run failed; nothing was published and earlier results are intact.",
                              "Check 'raw_spend.raw_spend_quality' failed:"]
    assert paragraphs[2].startswith(f"[spend-non-negative] raw_spend column 'tv_spend': spend must be >= 0; "
                                    f"1 week(s) fail: {week(5)} (values: -1). Fix: ")
    assert paragraphs[3].startswith("[no-missing-weeks] raw_spend column 'week': ") and week(70) in paragraphs[3]
    with duckdb.connect(str(output / WAREHOUSE), read_only=True) as con:
        staged = con.execute("SELECT count(*) FROM information_schema.schemata "
                             "WHERE schema_name LIKE 'staging_%'").fetchall()[0][0]
        published = con.execute("SELECT count(*) FROM published.raw_spend").fetchall()[0][0]
    assert (staged, published) == (0, 156)  # the bad table was staged in the run's schema (dropped), never published
    assert snapshot(output) == before


def test_a_bad_run_into_a_fresh_folder_writes_no_estimates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    case = Case("gap", RUN_FAILED, "no-missing-weeks", (), data=lambda df: df.drop(index=[3]))
    output = tmp_path / "fresh"
    assert main(["run", "--config", str(write_case(case, tmp_path / "case")), "--output", str(output)]) == RUN_FAILED
    capsys.readouterr()
    assert not (output / "estimates.csv").exists() and not (output / "report.html").exists()
    with duckdb.connect(str(output / WAREHOUSE), read_only=True) as con:
        published = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'published'")
        assert published.fetchall()[0][0] == 0


def test_the_wild_kpi_week_of_issue_18_publishes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One KPI week of 9.9e11 (under ingestion's 1e12 bound) was published with ROIs of about 1e8: now the
    raw_spend check refuses it by name, before any estimate, and a fresh folder gets no results."""
    case = Case("wild", RUN_FAILED, "value-outlier", (), data=cell("sales", 40, "990000000000"))
    output = tmp_path / "fresh"
    assert main(["run", "--config", str(write_case(case, tmp_path / "case")), "--output", str(output)]) == RUN_FAILED
    out, err = capsys.readouterr()
    assert "check raw_spend.raw_spend_quality: FAIL — failed rules: value-outlier (sales)" in out.splitlines()
    paragraph = next(line for line in err.splitlines() if line.startswith("[value-outlier]"))
    assert paragraph.startswith("[value-outlier] raw_spend column 'sales': a KPI week must lie within 20 robust "
                                "scales of the median week (median ")
    assert f"1 week(s) fail: {week(40)} (values: 9.9e+11). Fix: " in paragraph
    assert "checks.outlier_columns.sales" in paragraph
    assert not (output / "estimates.csv").exists() and not (output / "report.html").exists()
    with duckdb.connect(str(output / WAREHOUSE), read_only=True) as con:
        published = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'published'")
        assert published.fetchall()[0][0] == 0


def test_an_unexpected_error_is_one_line_naming_the_step(good_output: tuple[Path, dict[str, str]],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    from cmmm_pipeline.data import ingest

    def broken(config: object, market: str | None = None) -> pd.DataFrame:
        raise RuntimeError("disk on fire")

    output, before = good_output
    monkeypatch.setattr(ingest, "load_raw", broken)  # the step imports it when it runs
    assert main(["run", "--output", str(output)]) == RUN_FAILED
    out, err = capsys.readouterr()
    assert err.splitlines() == ["cmmm: run failed; nothing was published and earlier results are intact.",
                                "step raw_spend failed: RuntimeError: disk on fire"]
    assert snapshot(output) == before


def test_a_good_run_after_the_bad_ones_publishes_again(good_output: tuple[Path, dict[str, str]], sample_run: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    output, before = good_output
    assert main(["run", "--output", str(output)]) == 0
    out, _ = capsys.readouterr()
    assert "check raw_spend.raw_spend_quality: PASS" in out
    assert "check transformed_media.transformed_media_quality: PASS" in out
    with duckdb.connect(str(output / WAREHOUSE), read_only=True) as con:
        runs = con.execute("SELECT count(DISTINCT run_id) FROM published.estimates_history").fetchall()[0][0]
        raw_rows = con.execute("SELECT count(*) FROM published.raw_spend").fetchall()[0][0]
    assert (runs, raw_rows) == (2, 156)
    estimates = pd.read_csv(output / "estimates.csv")
    first = pd.read_csv(sample_run / "estimates.csv")
    assert np.isfinite(estimates["roi"]).all()
    assert estimates[["channel", "effect"]].equals(first[["channel", "effect"]])
    after = snapshot(output)
    assert after["table:raw_spend"] == before["table:raw_spend"]
    assert after["table:estimates_history"] != before["table:estimates_history"]

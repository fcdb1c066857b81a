"""Many markets: `data.market_column` turns every step into one partition per market, each with its
own warehouse and publication; `cmmm_markets` runs them in parallel on Dagster's executors (the
multiprocess one, and a Dask cluster started here on loopback) and pools what they published."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from dagster import DagsterInstance, DynamicPartitionsDefinition, build_sensor_context

from assets.sensors import DATA_SENSOR_NAME
from cmmm_pipeline.core.errors import ConfigError, DataError
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.data.ingest import load_raw
from cmmm_pipeline.data.markets import check_market_folders, market_warehouse
from cmmm_pipeline.definitions import JOB_NAME, MARKET_PARTITIONS, build_definitions
from cmmm_pipeline.publish.preflight import OutputError
from cmmm_pipeline.run import NO_CAPTURE
from cmmm_pipeline.simulation.markets import markets_config_text, simulate_markets, write_markets

FAST = "estimation: {bootstrap_samples: 50, refuter_simulations: 2, null_test_samples: 0}\n"


def _export(folder: Path, n_markets: int, static: bool = True) -> Path:
    write_markets(folder, n_markets, static=static, estimation=FAST)
    return folder / "config.yaml"


def test_the_config_names_the_market_column_and_static_markets(tmp_path: Path) -> None:
    config = load_config(_export(tmp_path, 2))
    assert config.data.market_column == "market"
    assert config.data.markets == ("m001", "m002")


@pytest.mark.parametrize(("markets", "rule"), [("[../etc]", "market-name"), ("[de, de]", "config-duplicate"),
                                               ("[]", "config-type")])
def test_market_names_that_cannot_be_folders_or_repeat_are_refused(tmp_path: Path, markets: str, rule: str) -> None:
    config = _export(tmp_path, 2)
    config.write_text(config.read_text().replace("markets: [m001, m002]", f"markets: {markets}"))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert refused.value.rule == rule and "data.markets" in refused.value.place


def test_markets_without_a_market_column_are_refused(tmp_path: Path) -> None:
    config = _export(tmp_path, 2)
    config.write_text(config.read_text().replace("market_column: market, ", ""))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert refused.value.rule == "config-missing-key" and "data.market_column is not set" in str(refused.value)


def test_a_market_run_reads_only_its_rows_and_an_unknown_market_is_named(tmp_path: Path) -> None:
    config = load_config(_export(tmp_path, 3))
    world = simulate_markets(3)
    raw = load_raw(config, "m002")
    expected = world.data[world.data["market"] == "m002"]
    assert len(raw) == 156 and "market" not in raw.columns
    assert raw["sales"].to_numpy() == pytest.approx(expected["sales"].to_numpy(), abs=0.006)
    with pytest.raises(DataError) as unknown:
        load_raw(config, "m009")
    assert unknown.value.rule == "market-unknown"
    assert "markets present: m001, m002, m003" in str(unknown.value)
    with pytest.raises(DataError) as unnamed:
        load_raw(config)
    assert unnamed.value.rule == "market-required"


def test_every_step_is_partitioned_by_market(tmp_path: Path) -> None:
    static = build_definitions(config_path=str(_export(tmp_path / "s", 3)), output_dir=str(tmp_path / "out"))
    job = static.resolve_job_def(JOB_NAME)
    assert job.partitions_def.get_partition_keys() == ["m001", "m002", "m003"]
    assert {j.name for j in static.resolve_all_job_defs()} >= {"cmmm_weekly", "cmmm_markets"}
    dynamic = build_definitions(config_path=str(_export(tmp_path / "d", 2, static=False)),
                                output_dir=str(tmp_path / "out"))
    partitions = dynamic.resolve_job_def(JOB_NAME).partitions_def
    assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == MARKET_PARTITIONS
    single = build_definitions(output_dir=str(tmp_path / "out"))
    assert single.resolve_job_def(JOB_NAME).partitions_def is None


def test_resolving_the_markets_jobs_prints_no_library_notice(tmp_path: Path) -> None:
    """Every step process of the markets job resolves the definitions: Dagster's notice about its own
    `owners` parameter would be printed once per step. Other warnings still show (`-W default`)."""
    import subprocess
    import sys

    config = _export(tmp_path, 2)
    probe = ("import warnings; from cmmm_pipeline.definitions import build_definitions; "
             f"d = build_definitions(config_path={str(config)!r}, output_dir={str(tmp_path / 'out')!r}); "
             "print(sorted(j.name for j in d.resolve_all_job_defs())); "
             "warnings.warn('a real warning still shows', UserWarning)")
    done = subprocess.run([sys.executable, "-W", "default", "-c", probe], capture_output=True, text=True,
                          timeout=300, check=True, cwd=Path(__file__).resolve().parents[2])
    assert "cmmm_markets" in done.stdout
    assert "BetaWarning" not in done.stderr and "owners" not in done.stderr
    assert "a real warning still shows" in done.stderr


def test_markets_that_differ_only_in_punctuation_get_distinct_steps() -> None:
    from assets.markets import step_names

    names = step_names(["de-1", "de_1", "fr.2", "uk"])
    assert names == {"de-1": "de_1", "de_1": "de_1_1", "fr.2": "fr_2", "uk": "uk"}
    assert len(set(names.values())) == 4
    # A suffixed name that is itself a market's name stays distinct too.
    names = step_names(["a-1", "a_1", "a_1_1", "a.1"])
    assert names == {"a-1": "a_1", "a_1": "a_1_1", "a_1_1": "a_1_1_1", "a.1": "a_1_2"}
    assert step_names(["a_1_2", "a-1", "a_1"]) == {"a_1_2": "a_1_2", "a-1": "a_1", "a_1": "a_1_1"}


def test_the_data_sensor_adds_new_markets_as_partitions(tmp_path: Path) -> None:
    config = _export(tmp_path, 2, static=False)
    defs = build_definitions(config_path=str(config), output_dir=str(tmp_path / "out"))
    sensor = defs.resolve_sensor_def(DATA_SENSOR_NAME)
    with DagsterInstance.ephemeral(settings={"telemetry": {"enabled": False}}) as instance:
        context = build_sensor_context(instance=instance, definitions=defs, resources={"settings": defs.resources["settings"]})
        first = sensor.evaluate_tick(context)
        (added,) = first.dynamic_partitions_requests
        assert added.partitions_def_name == MARKET_PARTITIONS and list(added.partition_keys) == ["m001", "m002"]
        assert len(first.run_requests) == 1
        instance.add_dynamic_partitions(MARKET_PARTITIONS, ["m001", "m002"])
        world = simulate_markets(3)  # a third market arrives in the export
        world.data.assign(week=world.data["week"].dt.strftime("%Y-%m-%d")).to_csv(tmp_path / "weekly.csv", index=False)
        second = sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor,
                                                           resources={"settings": defs.resources["settings"]}))
        (added,) = second.dynamic_partitions_requests
        assert list(added.partition_keys) == ["m003"]


def test_a_market_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "markets").symlink_to(outside)
    with pytest.raises(OutputError) as refused:
        check_market_folders(tmp_path / "out", tmp_path / "out" / "cmmm.duckdb", "m001")
    assert refused.value.rule == "output-not-ours"
    with pytest.raises(OutputError) as bad_name:
        check_market_folders(tmp_path / "out2", tmp_path / "out2" / "cmmm.duckdb", "..")
    assert bad_name.value.rule == "market-name"
    assert list(outside.iterdir()) == []


def _published(output: Path, market: str) -> pd.DataFrame:
    with duckdb.connect(str(market_warehouse(output / "cmmm.duckdb", market)), read_only=True) as con:
        return con.execute("SELECT * FROM published.estimates").df()


@pytest.mark.slow
def test_markets_run_in_parallel_and_a_bad_market_fails_alone(tmp_path: Path) -> None:
    """Two markets on the multiprocess executor: m002's export has a negative TV spend, so its
    data-quality gate fails with the rule; m001 publishes, with a `market` column, and is pooled."""
    from cmmm_pipeline.run import run_markets

    config = _export(tmp_path, 2)
    data = pd.read_csv(tmp_path / "weekly.csv")
    data.loc[data.index[data["market"] == "m002"][5], "tv_spend"] = -250.0
    data.to_csv(tmp_path / "weekly.csv", index=False)
    output = tmp_path / "out"
    outcome = run_markets(str(config), str(output), str(output / "cmmm.duckdb"))
    by_market = {m.market: m for m in outcome.markets}
    assert by_market["m001"].success and not by_market["m002"].success
    assert "[spend-non-negative]" in by_market["m002"].error
    published = _published(output, "m001")
    assert set(published["market"]) == {"m001"}
    csv = pd.read_csv(output / "markets" / "m001" / "estimates.csv")
    assert list(csv.columns[:2]) == ["market", "channel"] and set(csv["market"]) == {"m001"}
    for name in ("refutations.csv", "dag_tests.csv", "overlap.csv", "estimate_changes.csv"):
        assert set(pd.read_csv(output / "markets" / "m001" / name)["market"]) == {"m001"}, name
    assert not (output / "markets" / "m002" / "estimates.csv").exists()
    assert "<h1>Causal marketing mix report · market m001</h1>" in (output / "markets" / "m001" /
                                                                    "report.html").read_text()
    status = pd.read_csv(output / "markets" / "markets.csv")
    assert dict(zip(status["market"], status["status"], strict=True)) == {"m001": "published",
                                                                         "m002": "no publication"}
    pooled = pd.read_csv(output / "markets" / "pooled.csv")
    assert set(pooled["k_markets"]) == {1} and pooled["pooled"].isna().all()  # one market: nothing to pool


@pytest.mark.slow
def test_markets_run_on_a_dask_cluster_and_are_pooled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same job on dagster-dask: a local distributed cluster (scheduler and two worker
    processes on loopback) runs one step per market; the pooled ROI is near the markets' truth."""
    distributed = pytest.importorskip("distributed")
    from cmmm_pipeline.run import run_markets

    config = _export(tmp_path, 2)
    output = tmp_path / "out"
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}, **NO_CAPTURE}))
    # Workers need only the instance: the job is rebuilt from the run's own paths.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CMMM_EXECUTOR", "dask")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        monkeypatch.setenv("CMMM_DASK_SCHEDULER", cluster.scheduler_address)
        with distributed.Client(cluster) as client:
            workers = set(client.run(os.getpid).values())
        outcome = run_markets(str(config), str(output), str(output / "cmmm.duckdb"))
    assert outcome.success, [m.error for m in outcome.markets]
    assert [m.market for m in outcome.markets] == ["m001", "m002"]
    with DagsterInstance.get() as instance:  # every market's steps ran in a Dask worker process
        pids = {r.dagster_event.pid for m in outcome.markets for r in instance.all_logs(m.run_id)
                if r.dagster_event is not None and r.dagster_event.event_type_value == "STEP_START"}
    assert pids and pids <= workers and os.getpid() not in pids
    truth = pd.read_csv(tmp_path / "truth.csv")
    tv = outcome.pooled[(outcome.pooled["channel"] == "tv") & (outcome.pooled["effect"] == "total")
                        & (outcome.pooled["metric"] == "roi")].iloc[0]
    true_mean = truth[(truth["channel"] == "tv") & (truth["effect"] == "total")]["roi"].mean()
    assert tv["k_markets"] == 2 and tv["pooled"] == pytest.approx(true_mean, rel=0.2)
    for market in ("m001", "m002"):
        assert set(_published(output, market)["market"]) == {market}
    page = Path(outcome.summary_path).read_text()
    assert "<h1>Across markets · sales</h1>" in page and '<a href="m002/report.html">m002</a>' in page


@pytest.mark.slow
def test_cmmm_plan_plans_one_named_market_and_asks_for_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cmmm_pipeline.cli import main

    config = _export(tmp_path, 2)
    (tmp_path / "plan.yaml").write_text("weeks: 13\ntotal_budget: 31200\n")
    args = ["plan", "--config", str(config), "--plan", str(tmp_path / "plan.yaml"), "--output", str(tmp_path / "p")]
    assert main(args) == 2
    assert "[market-required]" in capsys.readouterr().err
    assert main([*args, "--market", "m002"]) == 0
    plan = pd.read_csv(tmp_path / "p" / "plan.csv")
    total = plan[plan["channel"] == "total"].iloc[0]
    assert total["weekly_spend"] == pytest.approx(31200 / 13, rel=1e-6)


def test_the_markets_summary_never_writes_through_a_link(tmp_path: Path) -> None:
    """`pooled.csv` as a link to a stand-in folder's file, or `markets/` as a link, is refused and
    the stand-in is untouched; nothing is unlinked but the summary's own temporary file."""
    from cmmm_pipeline.markets.summary import publish_summary

    stand_in = tmp_path / "stand-in"
    stand_in.mkdir()
    (stand_in / "passwd").write_text("root:x:0:0\n")
    out = tmp_path / "out"
    (out / "markets").mkdir(parents=True)
    (out / "markets" / "pooled.csv").symlink_to(stand_in / "passwd")
    with pytest.raises(OutputError) as refused:
        publish_summary(out, out / "cmmm.duckdb", ["m001"], "sales", "run")
    assert refused.value.rule == "output-not-ours"
    linked = tmp_path / "out2"
    linked.mkdir()
    (linked / "markets").symlink_to(stand_in)
    with pytest.raises(OutputError):
        publish_summary(linked, linked / "cmmm.duckdb", ["m001"], "sales", "run")
    assert sorted(p.name for p in stand_in.iterdir()) == ["passwd"]
    assert (stand_in / "passwd").read_text() == "root:x:0:0\n"
    assert not [p for p in (out / "markets").iterdir() if p.name.endswith(".tmp")]

"""A year of weekly refreshes: 52 runs of the pipeline on one output folder and warehouse, each on
the export of the week before plus one new week (one refresh also restates a past week's KPI).

At the end the history holds the 52 runs with every estimate exactly once, the restatement is
recorded in estimate_changes.csv of the run that saw it, the report shows the ROI drifting over the
runs, and after every run the warehouse's published run and every published file were the same run.
Run with `-s` to see the figures."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cmmm_pipeline.data import warehouse
from cmmm_pipeline.publish import outputs
from cmmm_pipeline.simulation.simulate import Scenario, sample_config_text, sample_experiment, simulate

START_WEEKS = 156
REFRESHES = 52
RESTATED_AT = 30
"""The refresh whose export also restates a past week's KPI."""
RESTATED_WEEK = 120
RESTATED_FACTOR = 1.08
FAST_ESTIMATION = "estimation: {bootstrap_samples: 50, refuter_simulations: 2}\n"


def _export(data: pd.DataFrame, path: Path) -> None:
    frame = data.copy()
    frame["week"] = frame["week"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.slow
def test_a_year_of_weekly_refreshes_keeps_one_run_one_publication(tmp_path: Path) -> None:
    from cmmm_pipeline.run import run_pipeline

    world = simulate(Scenario(n_weeks=START_WEEKS + REFRESHES), seed=7)
    full = world.data
    config = tmp_path / "config.yaml"
    config.write_text(sample_config_text(sample_experiment(world)) + FAST_ESTIMATION, encoding="utf-8")
    out, wh = tmp_path / "out", tmp_path / "out" / "cmmm.duckdb"
    restated_week = full["week"].iloc[RESTATED_WEEK]
    restated_label = f"{restated_week:%Y-%m-%d} (sales)"

    runs: list[dict[str, object]] = []
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for refresh in range(1, REFRESHES + 1):
        data = full.iloc[:START_WEEKS + refresh].copy()
        if refresh >= RESTATED_AT:  # the export corrects that week from this refresh on
            data.loc[RESTATED_WEEK, "sales"] = round(data.loc[RESTATED_WEEK, "sales"] * RESTATED_FACTOR, 2)
        _export(data, tmp_path / "weekly.csv")
        started = time.perf_counter()
        outcome = run_pipeline(str(config), str(out), str(wh))
        seconds = time.perf_counter() - started
        assert outcome.success, f"refresh {refresh}: {outcome.error}"
        with duckdb.connect(str(wh), read_only=True) as con:
            check = outputs.verify_publication(con, out)
            weeks = con.execute("SELECT count(*), max(week) FROM published.raw_spend").fetchall()[0]
        assert check.ok and check.warehouse_run == outcome.run_id, (refresh, check.problems)
        assert weeks[0] == len(data) and pd.Timestamp(weeks[1]) == data["week"].iloc[-1]
        runs.append({"run_id": outcome.run_id, "seconds": seconds,
                     "estimates": pd.read_csv(out / "estimates.csv"),
                     "changes": pd.read_csv(out / outputs.CHANGES_FILE, keep_default_na=False),
                     "report": (out / outputs.REPORT_FILE).read_text(encoding="utf-8")
                     if refresh in (RESTATED_AT, REFRESHES) else ""})
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu

    with duckdb.connect(str(wh), read_only=True) as con:
        hist = con.execute("SELECT * FROM published.estimates_history ORDER BY run_time, channel, effect").df()
        log = warehouse.publication_log(con)
    run_ids = [r["run_id"] for r in runs]
    # The history holds the 52 runs, in order, each with exactly the estimates it published.
    assert hist["run_id"].nunique() == REFRESHES and list(log["run_id"]) == run_ids
    assert not hist.duplicated(["run_id", "channel", "effect"]).any()
    per_run = len(runs[0]["estimates"])
    assert len(hist) == REFRESHES * per_run
    for run in runs:
        rows = hist[hist["run_id"] == run["run_id"]].set_index(["channel", "effect"]).sort_index()
        published = run["estimates"].set_index(["channel", "effect"]).sort_index()
        assert rows["roi"].to_numpy() == pytest.approx(published["roi"].to_numpy(), rel=1e-12, abs=1e-12)
    # The restatement is recorded in the change table of the run that saw it, and only there.
    labels = [set(r["changes"]["restated_weeks"]) for r in runs]
    assert labels[RESTATED_AT - 1] == {restated_label}
    assert all(label == {""} for i, label in enumerate(labels) if i != RESTATED_AT - 1)
    assert restated_label in runs[RESTATED_AT - 1]["report"]
    # The report shows the drift: the last runs' ROI side by side and the change since the run before.
    final = runs[-1]["report"]
    assert "Total-effect ROI over the last 8 runs" in final and f"Compared with run {run_ids[-2]}" in final
    assert all(f"({rid[:8]})" in final for rid in run_ids[-8:])
    tv = hist[(hist["channel"] == "tv") & (hist["effect"] == "total")]["roi"].to_numpy()
    assert tv.std() > 0
    # Disk stays bounded: only the newest run folders are kept.
    kept = sorted(p.name for p in (out / outputs.RUNS_DIR).iterdir())
    assert kept == sorted(run_ids[-outputs.KEEP_RUNS:])

    seconds = [r["seconds"] for r in runs]
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"\nsoak: {REFRESHES} weekly refreshes in {wall:.1f} s wall ({cpu:.1f} s CPU of this process; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)\n"
          f"soak: per run {min(seconds):.2f} s min, {sorted(seconds)[len(seconds) // 2]:.2f} s median, "
          f"{max(seconds):.2f} s max\n"
          f"soak: history {len(hist)} rows = {REFRESHES} runs x {per_run} estimates; publication log "
          f"{len(log)} rows; raw_spend {START_WEEKS + 1} -> {START_WEEKS + REFRESHES} weeks\n"
          f"soak: tv total ROI from {tv[0]:.3f} to {tv[-1]:.3f} (min {tv.min():.3f}, max {tv.max():.3f}); "
          f"restated {restated_label} at refresh {RESTATED_AT}\n"
          f"soak: {len(kept)} run folders kept, output folder {size / 1e6:.1f} MB")

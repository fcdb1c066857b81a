"""One run, one publication: the warehouse's published run and every file in the output folder are
the same run whatever instant a crash hits, and a failed write leaves everything as it was.

The crash tests publish a second run in a subprocess that SIGKILLs itself at an injected instant of
the protocol, then check, as the next start would, that the repair leaves the warehouse's run and
every published file in agreement."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cmmm_pipeline.data import history, warehouse
from cmmm_pipeline.publish import outputs

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "cmmm_pipeline" / "sample"
FAST_ESTIMATION = "estimation: {bootstrap_samples: 50, refuter_simulations: 2}\n"
RUN_B = "run-b"
ROI_SHIFT = 0.25


def fast_sample_config(directory: Path) -> Path:
    """The bundled sample with few resamples and refuter simulations, so a run takes seconds."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE_DIR / "weekly.csv", directory / "weekly.csv")
    text = (SAMPLE_DIR / "config.yaml").read_text(encoding="utf-8")
    (directory / "config.yaml").write_text(text + FAST_ESTIMATION, encoding="utf-8")
    return directory / "config.yaml"


def tree_digest(directory: Path) -> dict[str, str]:
    """Every entry under `directory` except the warehouse: symlink targets and file hashes."""
    digest = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.name.startswith("cmmm.duckdb"):
            continue
        if path.is_symlink():
            digest[key] = "-> " + os.readlink(path)
        elif path.is_file():
            digest[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def warehouse_state(path: Path) -> dict[str, object]:
    with duckdb.connect(str(path), read_only=True) as con:
        published = warehouse.published_run(con)
        return {
            "run": published.run_id if published else None,
            "log": warehouse.publication_log(con)[["seq", "run_id", "folder"]].to_dict("records"),
            "history": con.execute("SELECT run_id, count(*) FROM published.estimates_history "
                                   "GROUP BY run_id ORDER BY run_id").fetchall(),
            "estimates": warehouse.read_table(con, "estimates", warehouse.PUBLISHED).to_csv(index=False),
            "raw": warehouse.read_table(con, "raw_spend", warehouse.PUBLISHED).to_csv(index=False),
        }


def stage_run_b(path: Path) -> None:
    """Stage a second run (schema `staging_b`): the published tables with every ROI (and its
    interval) shifted and one
    past week's KPI restated, so its files differ from the first run's in content."""
    with duckdb.connect(str(path)) as con:
        tables = {t: warehouse.read_table(con, t, warehouse.PUBLISHED)
                  for t in warehouse.table_names(con, warehouse.PUBLISHED) if t not in warehouse.KEPT_TABLES}
        for column in ("roi", "roi_ci_low", "roi_ci_high"):
            tables["estimates"][column] += ROI_SHIFT
        tables["raw_spend"].loc[100, "sales"] += 500.0
        con.execute('CREATE SCHEMA IF NOT EXISTS "staging_b"')
        warehouse.write_tables(con, tables, schema="staging_b")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pipeline run (run A) on the sample: config, output folder and warehouse."""
    from cmmm_pipeline.run import run_pipeline

    base = tmp_path_factory.mktemp("first_run")
    config = fast_sample_config(base / "config")
    out = base / "out"
    outcome = run_pipeline(str(config), str(out), str(out / "cmmm.duckdb"))
    assert outcome.success, outcome.error
    return base


@pytest.fixture()
def world(first_run: Path, tmp_path: Path) -> Path:
    """A private copy of the first run, with run B staged."""
    base = tmp_path / "world"
    shutil.copytree(first_run, base, symlinks=True)
    stage_run_b(base / "out" / "cmmm.duckdb")
    return base


def publish_b(base: Path, run_id: str = RUN_B) -> outputs.WrittenOutputs:
    from cmmm_pipeline.core.loading import load_config

    out = base / "out"
    with duckdb.connect(str(out / "cmmm.duckdb")) as con:
        return outputs.publish_run(con, out, load_config(base / "config" / "config.yaml"), run_id,
                                   dt.datetime(2026, 1, 5, 6, 0), staging="staging_b")


# --- crashes -------------------------------------------------------------------------------------

CRASH_SCRIPT = r"""
import datetime as dt, os, signal, sys
from pathlib import Path
import duckdb
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.publish import outputs

out, config, instant = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def kill_after(name, calls=1):
    real, seen = getattr(outputs, name), [0]
    def step(*args, **kwargs):
        result = real(*args, **kwargs)
        seen[0] += 1
        if seen[0] >= calls:
            die()
        return result
    setattr(outputs, name, step)

def kill_before(name):
    setattr(outputs, name, lambda *args, **kwargs: die())

{
    "writing-files": lambda: kill_after("_write_file", 3),
    "folder-sealed": lambda: kill_after("_seal_folder"),
    "committed": lambda: kill_before("_switch_current"),
    "switched": lambda: kill_after("_switch_current"),
    "linking": lambda: kill_after("_link_user_file", 2),
    "pruning": lambda: kill_before("_prune"),
    "finished": lambda: None,
}[instant]()
with duckdb.connect(str(out / "cmmm.duckdb")) as con:
    outputs.publish_run(con, out, load_config(config), "run-b", dt.datetime(2026, 1, 5, 6, 0), staging="staging_b")
"""

# instant → the run the warehouse holds after the crash ("a" = the first run, unchanged).
CRASH_INSTANTS = {
    "writing-files": "a",    # inside the transaction, the run folder half written
    "folder-sealed": "a",    # run folder complete and renamed, COMMIT not reached
    "committed": "b",        # warehouse committed, `current` not switched: the measured mismatch
    "switched": "b",         # `current` switched, top-level links not refreshed
    "linking": "b",          # older layout (regular files) half replaced by links
    "pruning": "b",          # everything published, old folders not yet pruned
    "finished": "b",         # no crash (control)
}


def to_older_layout(out: Path) -> None:
    """The output folder and warehouse as the previous version left them: regular files at the
    top, no `current`, no run folders, no publication record."""
    for name in outputs.USER_FILES:
        path = out / name
        if path.is_symlink():
            data = path.read_bytes()
            path.unlink()
            if name != outputs.MANIFEST_FILE:
                path.write_bytes(data)
    (out / outputs.CURRENT).unlink()
    shutil.rmtree(out / outputs.RUNS_DIR)
    with duckdb.connect(str(out / "cmmm.duckdb")) as con:
        con.execute(f'DROP TABLE published."{warehouse.PUBLICATION_TABLE}"')


@pytest.mark.slow
@pytest.mark.parametrize("instant", list(CRASH_INSTANTS))
def test_a_kill_at_any_instant_of_publication_leaves_one_run_after_the_repair(world: Path, instant: str) -> None:
    out = world / "out"
    if instant == "linking":
        to_older_layout(out)
    before = warehouse_state(out / "cmmm.duckdb")
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        first_id = con.execute("SELECT any_value(run_id) FROM published.estimates_history").fetchall()[0][0]
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(out), str(world / "config" / "config.yaml"),
                           instant], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    if instant == "finished":
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode == -9, proc.stderr

    with duckdb.connect(str(out / "cmmm.duckdb")) as con:
        published = warehouse.published_run(con)
        expected = first_id if CRASH_INSTANTS[instant] == "a" else RUN_B
        assert published is not None and published.run_id == expected
        stale = outputs.verify_publication(con, out)
        if instant == "committed":
            # What the crash leaves before the next start: the warehouse is new, the files still old.
            assert not stale.ok and stale.pointer_run == first_id
        if instant == "linking":
            # Some top-level names already link to the new run, the others are the old run's files.
            assert any("in view but not part of" in p or "does not resolve into" in p for p in stale.problems)
        repair = outputs.repair_publication(con, out)
        if instant == "committed":
            assert repair.action is outputs.RepairAction.ROLLED_FORWARD and repair.pointer_before == first_id
        check = outputs.verify_publication(con, out)
        assert check.ok, check.problems
        assert check.warehouse_run == check.pointer_run == expected
        history_runs = dict(con.execute("SELECT run_id, count(*) FROM published.estimates_history "
                                        "GROUP BY run_id").fetchall())
        published_roi = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)["roi"].to_numpy()

    estimates = pd.read_csv(out / "estimates.csv")
    assert estimates["roi"].to_numpy() == pytest.approx(published_roi)
    assert expected in (out / "report.html").read_text(encoding="utf-8")
    n = len(estimates)
    assert history_runs == ({first_id: n} if expected == first_id else {first_id: n, RUN_B: n})
    if expected == first_id:
        assert warehouse_state(out / "cmmm.duckdb") == before

    # The next run publishes normally and clears what the crash left behind.
    publish_b(world, run_id="run-c")
    with duckdb.connect(str(out / "cmmm.duckdb")) as con:
        assert outputs.verify_publication(con, out).ok
        kept = set(warehouse.publication_log(con)["run_id"])
    assert {p.name for p in (out / outputs.RUNS_DIR).iterdir()} <= kept


# --- failed writes -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("failing_write", "code", "fix"), [
    (1, errno.EROFS, "make the folder writable"),
    (4, errno.EACCES, "make the folder writable"),
    (-1, errno.ENOSPC, "free space on its disk"),  # the manifest, the last file written
])
def test_a_failed_write_leaves_the_warehouse_and_the_files_as_they_were(
        world: Path, monkeypatch: pytest.MonkeyPatch, failing_write: int, code: int, fix: str) -> None:
    out = world / "out"
    wh_before, files_before = warehouse_state(out / "cmmm.duckdb"), tree_digest(out)
    real, calls = outputs._write_file, []

    def failing(path: Path, data: bytes) -> None:
        calls.append(path.name)
        last = failing_write == -1 and path.name == outputs.MANIFEST_FILE
        if len(calls) == failing_write or last:
            raise OSError(code, os.strerror(code), str(path))
        real(path, data)

    monkeypatch.setattr(outputs, "_write_file", failing)
    with pytest.raises(outputs.PublicationError) as caught:
        publish_b(world)
    message = str(caught.value)
    rule = "disk-full" if code == errno.ENOSPC else "output-not-writable"
    assert message.startswith(f"[{rule}] {out}: ")
    assert os.strerror(code) in message and f"still show run {wh_before['run']}" in message
    assert f"Fix: {fix}" in message
    assert warehouse_state(out / "cmmm.duckdb") == wh_before
    assert tree_digest(out) == files_before
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        assert outputs.verify_publication(con, out).ok


@pytest.mark.slow
def test_an_output_folder_that_cannot_be_created_publishes_nothing(first_run: Path, tmp_path: Path) -> None:
    """The whole pipeline against an output path even root cannot write (it lies under a regular
    file): the run fails with the rule and the fix, the warehouse's published tables and history are
    untouched (not doubled), and the files published before are untouched."""
    from cmmm_pipeline.run import run_pipeline

    base = tmp_path / "world"
    shutil.copytree(first_run, base, symlinks=True)
    out, wh = base / "out", base / "out" / "cmmm.duckdb"
    (base / "blocker").write_text("a file where the output folder should be\n", encoding="utf-8")
    wh_before, files_before = warehouse_state(wh), tree_digest(out)

    outcome = run_pipeline(str(base / "config" / "config.yaml"), str(base / "blocker" / "out"), str(wh))

    assert not outcome.success
    assert f"[output-not-writable] {base / 'blocker' / 'out'}: " in outcome.error
    assert "nothing was published" in outcome.error and "Fix: make the folder writable" in outcome.error
    assert warehouse_state(wh) == wh_before
    assert tree_digest(out) == files_before


READ_ONLY_SCRIPT = r"""
import datetime as dt, sys
from pathlib import Path
import duckdb
from cmmm_pipeline.core.loading import load_config
from cmmm_pipeline.publish import outputs

out, wh, config = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with duckdb.connect(wh) as con:
    try:
        outputs.publish_run(con, out, load_config(config), "run-b", dt.datetime(2026, 1, 5, 6, 0), staging="staging_b")
    except outputs.PublicationError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
"""


CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
PR_CAPBSET_DROP = 24


def _without_file_capabilities() -> None:
    """In the child, before exec: drop the capabilities that let root write through mode bits, so a
    read-only folder is read-only for it too (the bounding set is lost on exec)."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _set_mode(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, (0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444))


@pytest.mark.slow
def test_a_read_only_output_folder_publishes_nothing(world: Path) -> None:
    """The measured case: `chmod -R a-w` on the output folder (warehouse elsewhere, writable). The
    run is refused with the rule and the fix; the warehouse's tables and history are untouched (not
    doubled) and so is every file. As root, the publication runs without the capabilities that
    override mode bits, so the folder is read-only for it as for any user."""
    out, wh = world / "out", world / "warehouse" / "cmmm.duckdb"
    wh.parent.mkdir()
    shutil.move(out / "cmmm.duckdb", wh)
    for extra in out.glob("cmmm.duckdb*"):
        shutil.move(extra, wh.parent / extra.name)
    wh_before, files_before = warehouse_state(wh), tree_digest(out)
    _set_mode(out, writable=False)
    try:
        proc = subprocess.run([sys.executable, "-c", READ_ONLY_SCRIPT, str(out), str(wh),
                               str(world / "config" / "config.yaml")], check=False, cwd=REPO,
                              preexec_fn=_without_file_capabilities, capture_output=True, text=True, timeout=300)
    finally:
        _set_mode(out, writable=True)
    assert proc.returncode == 1, proc.stderr
    message = proc.stderr.strip()
    assert message.startswith(f"[output-not-writable] {out}: the run's files could not be written "
                              "(Permission denied"), message
    assert f"still show run {wh_before['run']}" in message
    assert "Fix: make the folder writable by the user that runs the pipeline" in message
    assert warehouse_state(wh) == wh_before
    assert tree_digest(out) == files_before


# --- the protocol on a hand-made warehouse (fast) ------------------------------------------------

def _hand_published(tmp_path: Path, runs: list[str]) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A warehouse that published `runs` in order, each with a run folder holding its estimates.csv
    and manifest; `current` is left pointing at the first run."""
    out = tmp_path / "out"
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for i, run_id in enumerate(runs):
        estimates = pd.DataFrame({"channel": ["tv"], "effect": ["total"], "roi": [1.0 + i],
                                  "roi_ci_low": [0.5 + i], "roi_ci_high": [1.5 + i]})
        warehouse.write_tables(con, {"estimates": estimates})
        warehouse.publish(con, run_id, dt.datetime(2026, 1, 5 + 7 * i), "estimates", folder=f"runs/{run_id}")
        folder = out / "runs" / run_id
        folder.mkdir(parents=True)
        data = estimates.to_csv(index=False).encode("utf-8")
        (folder / "estimates.csv").write_bytes(data)
        (folder / outputs.MANIFEST_FILE).write_text(
            f'{{"run_id": "{run_id}", "files": {{"estimates.csv": "{hashlib.sha256(data).hexdigest()}"}}}}')
        if i == 0:
            (out / "current").symlink_to(f"runs/{run_id}")
            (out / "estimates.csv").symlink_to("current/estimates.csv")
            (out / outputs.MANIFEST_FILE).symlink_to(f"current/{outputs.MANIFEST_FILE}")
    return con, out


def test_the_repair_rolls_the_pointer_forward_to_the_warehouse_run(tmp_path: Path) -> None:
    con, out = _hand_published(tmp_path, ["r1", "r2"])
    stale = outputs.verify_publication(con, out)
    assert not stale.ok and stale.warehouse_run == "r2" and stale.pointer_run == "r1"
    assert pd.read_csv(out / "estimates.csv")["roi"].tolist() == [1.0]

    repair = outputs.repair_publication(con, out)

    assert (repair.action, repair.warehouse_run, repair.pointer_before) == (outputs.RepairAction.ROLLED_FORWARD,
                                                                            "r2", "r1")
    assert os.readlink(out / "current") == "runs/r2"
    assert pd.read_csv(out / "estimates.csv")["roi"].tolist() == [2.0]
    assert outputs.verify_publication(con, out).ok
    assert outputs.repair_publication(con, out).action is outputs.RepairAction.NONE


def test_a_missing_run_folder_is_reported_and_left_alone(tmp_path: Path) -> None:
    con, out = _hand_published(tmp_path, ["r1", "r2"])
    shutil.rmtree(out / "runs" / "r2")
    repair = outputs.repair_publication(con, out)
    assert repair.action is outputs.RepairAction.FOLDER_MISSING
    assert os.readlink(out / "current") == "runs/r1"
    assert "holds no manifest of run r2" in " ".join(outputs.verify_publication(con, out).problems)


def test_a_stale_top_level_file_is_a_problem_and_the_repair_removes_it(tmp_path: Path) -> None:
    con, out = _hand_published(tmp_path, ["r1"])
    (out / "experiments.csv").write_text("channel\ntv\n", encoding="utf-8")  # an older run's file
    assert outputs.verify_publication(con, out).problems == (
        "experiments.csv is in view but not part of run r1",)
    assert outputs.repair_publication(con, out).action is outputs.RepairAction.LINKS_FIXED
    assert not (out / "experiments.csv").exists() and outputs.verify_publication(con, out).ok


def test_a_failed_publication_transaction_rolls_the_warehouse_back(tmp_path: Path) -> None:
    con, _ = _hand_published(tmp_path, ["r1"])
    warehouse.write_tables(con, {"estimates": pd.DataFrame({"channel": ["tv"], "effect": ["total"], "roi": [9.0],
                                                            "roi_ci_low": [8.0], "roi_ci_high": [10.0]})})
    with pytest.raises(RuntimeError, match="disk gone"), \
            warehouse.publishing(con, "r2", dt.datetime(2026, 2, 1), "estimates", folder="runs/r2"):
        assert warehouse.published_run(con).run_id == "r2"  # the body sees the new state
        raise RuntimeError("disk gone")
    assert warehouse.published_run(con).run_id == "r1"
    assert con.execute("SELECT run_id, roi FROM published.estimates_history").fetchall() == [("r1", 1.0)]


def test_restated_values_name_the_week_and_column_that_changed() -> None:
    weeks = pd.date_range("2025-01-06", periods=4, freq="W-MON")
    before = pd.DataFrame({"week": weeks[:3], "sales": [10.0, 11.0, 12.0], "tv_spend": [1.0, 1.0, 1.0]})
    after = pd.DataFrame({"week": weeks, "sales": [10.0, 11.5, 12.0 + 1e-12, 13.0],
                          "tv_spend": [1.0, 1.0, 2.0, 1.0]})
    restated = history.restated_values(before, after)
    assert restated.to_dict("records") == [
        {"week": weeks[1], "column": "sales", "previous": 11.0, "current": 11.5},
        {"week": weeks[2], "column": "tv_spend", "previous": 1.0, "current": 2.0}]
    assert history.restated_label(restated) == "2025-01-13 (sales); 2025-01-20 (tv_spend)"
    assert history.restated_values(before, before).empty


def test_the_next_run_repairs_the_output_folder_as_soon_as_it_holds_the_lock(tmp_path: Path) -> None:
    """A crash between the warehouse commit and the switch of `current` is repaired when the next
    run takes the warehouse lock, before its first step: even a run that then fails a gate leaves
    the files showing the warehouse's run."""
    import logging
    from types import SimpleNamespace

    from resources.settings import WarehouseResource

    con, out = _hand_published(tmp_path, ["r1", "r2"])
    con.close()
    resource = WarehouseResource(database=str(tmp_path / "w.duckdb"), output_dir=str(out))
    context = SimpleNamespace(run=SimpleNamespace(run_id="0123456789abcdef0123"), log=logging.getLogger("test"))
    resource.setup_for_execution(context)
    try:
        assert os.readlink(out / "current") == "runs/r2"
        assert pd.read_csv(out / "estimates.csv")["roi"].tolist() == [2.0]
    finally:
        resource.teardown_after_execution(context)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as check:
        assert outputs.verify_publication(check, out).ok


@pytest.mark.slow
def test_effects_by_period_and_synergies_are_published_with_the_run(first_run: Path) -> None:
    """The period and synergy tables are warehouse tables of the one publication, their CSVs equal
    them, the periods add up to the published estimates, and the sample's truths are covered."""
    from cmmm_pipeline.simulation.simulate import campaign_truth, synergy_truth

    out = first_run / "out"
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        check = outputs.verify_publication(con, out)
        periods = warehouse.read_table(con, "effects_by_period", warehouse.PUBLISHED)
        synergies = warehouse.read_table(con, "synergies", warehouse.PUBLISHED)
        estimates = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
    assert check.ok, check.problems
    manifest = (out / "current" / outputs.MANIFEST_FILE).read_text(encoding="utf-8")
    assert "effects_by_period.csv" in manifest and "synergies.csv" in manifest
    assert pd.read_csv(out / "effects_by_period.csv").shape == periods.shape
    whole = estimates.set_index(["channel", "effect"])["incremental_kpi"]
    for kind in ("year", "quarter"):
        sums = periods[periods["period_type"] == kind].groupby(["channel", "effect"])["incremental_kpi"].sum()
        assert set(sums.index) == set(whole.index)
        for key, value in sums.items():
            assert value == pytest.approx(whole[key], rel=1e-9), (kind, key)
    assert set(periods["period_type"]) == {"year", "quarter", "campaign", "condition"}
    spring = periods[(periods["period_type"] == "campaign") & (periods["effect"] == "total")].iloc[0]
    truth = campaign_truth("tv", "2024-03-04", "2024-05-27")
    assert spring["period"] == "spring_tv"
    assert spring["incremental_ci_low"] <= truth <= spring["incremental_ci_high"]
    row = synergies.iloc[0]
    assert (row["channel_a"], row["channel_b"]) == ("tv", "digital")
    assert synergy_truth("tv", "digital") == pytest.approx(0.0, abs=1e-6)
    assert row["incremental_ci_low"] < 0.0 < row["incremental_ci_high"]
    report = (out / outputs.REPORT_FILE).read_text(encoding="utf-8")
    for title in ("Effects by period", "Campaigns", "Effects by condition", "Synergies"):
        assert title in report

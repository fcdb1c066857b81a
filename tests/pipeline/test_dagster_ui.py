"""The Dagster UI as a data engineer uses it: `dagster dev` (webserver + daemon) on a free local port
with a temporary DAGSTER_HOME holding the repository's dagster.yaml, two runs of the weekly job
launched through the GraphQL API at once, and what the UI then shows: the run queue keeping them
apart, asset descriptions, materialisation metadata, asset-check results, the schedule and the
failure sensor. Everything started here is stopped (whole process group) when the module ends.

`CMMM_UPDATE_SCREENSHOTS=1` also saves the asset-graph screenshot as docs/asset_graph.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cmmm_pipeline.definitions import JOB_NAME
from tests.publish.test_report_browser import UPDATE_SCREENSHOTS, dump_dom, image_stats, needs_chromium, screenshot

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
ASSETS = ["raw_spend", "transformed_media", "causal_dag", "ate_estimates", "robustness_report"]
READY_TIMEOUT = 120.0
RUN_TIMEOUT = 240.0
"""Two queued runs of ~15 s each, on a shared 2-core machine."""
STOP_TIMEOUT = 30.0
LOCATION = "cmmm"
REPOSITORY = "__repository__"


@dataclass(frozen=True)
class DagsterDev:
    url: str
    home: Path
    output: Path
    warehouse: Path
    log: Path
    process: subprocess.Popen

    def graphql(self, query: str, variables: dict[str, object] | None = None) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql", method="POST",
                                         data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body["errors"]
        return body["data"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_members(pgid: int) -> list[int]:
    """Live processes of a process group (from /proc; zombies excluded)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole group (webserver, daemon, code servers, run workers), then SIGKILL
    whatever is left after STOP_TIMEOUT."""
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _group_members(pgid):
        if process.poll() is None:
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(0.5)
    for pid in _group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.poll() is None:
        process.wait(timeout=10)


def _wait_ready(server: DagsterDev) -> None:
    """Until the webserver answers and the code location is loaded."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"dagster dev exited:\n{server.log.read_text()}"
        try:
            data = server.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                  "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
            continue
        entries = {e["name"]: e for e in data["workspaceOrError"]["locationEntries"]}
        entry = entries.get(LOCATION)
        if entry and entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        time.sleep(0.5)
    raise TimeoutError(f"dagster dev not ready after {READY_TIMEOUT:.0f} s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("dagster_ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    output, warehouse = root / "output", root / "cmmm.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMMM_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), CMMM_OUTPUT_DIR=str(output), CMMM_WAREHOUSE=str(warehouse),
               GX_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    port = _free_port()
    log = root / "dagster_dev.log"
    with log.open("w") as sink:
        process = subprocess.Popen([str(DAGSTER), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                                   cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    server = DagsterDev(f"http://127.0.0.1:{port}", home, output, warehouse, log, process)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(process)
        leftovers = _group_members(process.pid)
        assert not leftovers, f"processes left running: {leftovers}"


LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status startTime endTime } } }"""


@dataclass(frozen=True)
class FinishedRun:
    run_id: str
    status: str
    start: float
    end: float


@pytest.fixture(scope="module")
def weekly_runs(dagster_dev: DagsterDev) -> list[FinishedRun]:
    """Two launches of the weekly job, back to back, polled until both finish."""
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB_NAME},
              "runConfigData": {}}
    ids = []
    for _ in range(2):
        launched = dagster_dev.graphql(LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        ids.append(launched["run"]["runId"])
    deadline = time.monotonic() + RUN_TIMEOUT
    finished: dict[str, FinishedRun] = {}
    while len(finished) < len(ids):
        assert time.monotonic() < deadline, f"runs not finished after {RUN_TIMEOUT:.0f} s"
        for run_id in (i for i in ids if i not in finished):
            run = dagster_dev.graphql(RUN, {"id": run_id})["runOrError"]
            if run["status"] in {"SUCCESS", "FAILURE", "CANCELED"}:
                finished[run_id] = FinishedRun(run_id, run["status"], run["startTime"], run["endTime"])
        time.sleep(1.0)
    return sorted(finished.values(), key=lambda r: r.start)


def test_the_code_location_loads_without_errors_or_warnings(dagster_dev: DagsterDev) -> None:
    lines = dagster_dev.log.read_text().splitlines()
    # `dagster dev` itself announces that `dg dev` supersedes it; anything else is ours to fix.
    problems = [line for line in lines if re.search(r"warn|error|exception|traceback", line, re.I)
                and "SupersessionWarning" not in line and "return callback(*args, **kwargs)" not in line]
    assert problems == []


def test_the_instance_queues_runs_one_at_a_time_and_nothing_starts_on_the_sample(dagster_dev: DagsterDev) -> None:
    data = dagster_dev.graphql("""{ instance { runQueuingSupported runQueueConfig { maxConcurrentRuns } }
      repositoriesOrError { ... on RepositoryConnection { nodes { name
        schedules { name cronSchedule executionTimezone scheduleState { status } }
        sensors { name sensorState { status } } } } } }""")
    assert data["instance"]["runQueuingSupported"]
    assert data["instance"]["runQueueConfig"]["maxConcurrentRuns"] == 1
    repo = data["repositoriesOrError"]["nodes"][0]
    assert repo["schedules"] == [{"name": "cmmm_weekly_schedule", "cronSchedule": "0 6 * * 1", "executionTimezone": "UTC",
                                  "scheduleState": {"status": "STOPPED"}}]  # no CMMM_CONFIG: the sample
    assert sorted(repo["sensors"], key=lambda s: s["name"]) == [
        {"name": "cmmm_data_arrival_sensor", "sensorState": {"status": "STOPPED"}},
        {"name": "cmmm_freshness_checks_sensor", "sensorState": {"status": "STOPPED"}},
        {"name": "cmmm_run_failure_alert", "sensorState": {"status": "RUNNING"}}]


def test_every_asset_says_what_it_is(dagster_dev: DagsterDev) -> None:
    nodes = dagster_dev.graphql("""{ assetNodes { assetKey { path } description groupName kinds
        owners { ... on TeamAssetOwner { team } } } }""")["assetNodes"]
    by_key = {n["assetKey"]["path"][-1]: n for n in nodes}
    assert set(ASSETS) <= set(by_key)
    for key in ASSETS:
        node = by_key[key]
        assert node["groupName"] == "cmmm" and len(node["description"]) > 40, key
        assert "duckdb" in node["kinds"] and len(node["kinds"]) >= 2, key
        assert node["owners"] == [{"team": "marketing-science"}], key


def test_the_queue_runs_the_two_launches_one_after_the_other(weekly_runs: list[FinishedRun]) -> None:
    assert [r.status for r in weekly_runs] == ["SUCCESS", "SUCCESS"]
    first, second = weekly_runs
    assert second.start >= first.end, "two runs wrote the warehouse at the same time"


MATERIALIZATION = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { ... on Asset {
  assetMaterializations(limit: 2) { runId metadataEntries { label __typename
    ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path } ... on IntMetadataEntry { intValue }
    ... on TextMetadataEntry { text } ... on UrlMetadataEntry { url } ... on FloatMetadataEntry { floatValue } } } } } }"""


def _metadata(dagster_dev: DagsterDev, asset: str) -> dict[str, dict[str, object]]:
    """run id → {label: value} of the asset's latest materialisations."""
    events = dagster_dev.graphql(MATERIALIZATION, {"path": [asset]})["assetOrError"]["assetMaterializations"]
    out: dict[str, dict[str, object]] = {}
    for event in events:
        values = {}
        for entry in event["metadataEntries"]:
            value = next((entry[k] for k in ("mdStr", "path", "intValue", "text", "url", "floatValue") if k in entry),
                         None)
            values[entry["label"]] = value
        out[event["runId"]] = values
    return out


def test_materialisations_carry_readable_metadata(dagster_dev: DagsterDev, weekly_runs: list[FinishedRun]) -> None:
    first, second = weekly_runs
    for asset in ASSETS:
        assert set(_metadata(dagster_dev, asset)) == {first.run_id, second.run_id}, asset

    raw = _metadata(dagster_dev, "raw_spend")[second.run_id]
    assert raw["dagster/row_count"] == 156 and raw["rows"] == 156
    assert (raw["first_week"], raw["last_week"]) == ("2023-01-02", "2025-12-22")
    assert "| tv |" in raw["spend"] and "| channel | total | mean_week | zero_weeks |" in raw["spend"]

    report = _metadata(dagster_dev, "robustness_report")
    latest, earlier = report[second.run_id], report[first.run_id]
    assert re.search(r"\| tv \| total \| \d+\.\d{3} \|", latest["estimates"])
    image = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", latest["forest_plot"])
    assert image and base64.b64decode(image.group(1)).startswith(b"\x89PNG")
    # Each materialisation links its own run's report (inside the run folder the publication made),
    # as a clickable file:// URL with the path beside it; the ROI per channel is float metadata.
    report_file = Path(latest["report_path"])
    assert report_file.is_file() and report_file.parent == dagster_dev.output / "runs" / second.run_id
    assert latest["report"] == report_file.as_uri()
    assert report_file.read_bytes() == (dagster_dev.output / "report.html").read_bytes()
    assert 1.0 < latest["roi/tv/total"] < 3.0 and latest["roi/tv/total"] == pytest.approx(earlier["roi/tv/total"])
    assert earlier["previous_run"] == "none (first run)"
    assert latest["previous_run"] == first.run_id
    assert latest["outside_previous_interval"] == 0  # same data, same seed: nothing moved
    assert "| tv | total |" in latest["change_since_previous_run"]
    # The campaign, the latest quarter and the declared synergy are float metadata too.
    assert 10_000 < latest["campaign/spring_tv/incremental_kpi"] < 13_000
    assert latest["latest_quarter"] == "2025-Q4" and latest["quarter_incremental/tv"] > 0
    assert abs(latest["synergy/tv_digital"]) < 60_000 and "| tv | digital |" in latest["synergies"]


def test_asset_checks_ran_and_recorded_their_results(dagster_dev: DagsterDev, weekly_runs: list[FinishedRun]) -> None:
    nodes = dagster_dev.graphql("""{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks {
        checks { name blocking executionForLatestMaterialization { runId status
          evaluation { severity metadataEntries { label ... on IntMetadataEntry { intValue } } } } } } } } }""")
    checks = {f"{n['assetKey']['path'][-1]}.{c['name']}": c for n in nodes["assetNodes"]
              for c in n["assetChecksOrError"]["checks"]}
    assert "raw_spend.raw_spend_quality" in checks
    # Dagster's freshness checks judge time since the last update: their own sensor evaluates them
    # (STOPPED here, with no CMMM_CONFIG), never the job.
    freshness = {name for name in checks if name.endswith(".freshness_check")}
    assert {name.split(".")[0] for name in freshness} == set(ASSETS)
    latest = weekly_runs[-1].run_id
    for name, check in checks.items():
        if name in freshness:
            continue
        execution = check["executionForLatestMaterialization"]
        assert execution is not None and execution["runId"] == latest, name
        blocking_failed = check["blocking"] and execution["status"] != "SUCCEEDED"
        assert execution["status"] in {"SUCCEEDED", "FAILED"} and not blocking_failed, (name, execution)
    quality = checks["raw_spend.raw_spend_quality"]["executionForLatestMaterialization"]
    values = {e["label"]: e.get("intValue") for e in quality["evaluation"]["metadataEntries"]}
    assert values["failed"] == 0 and values["expectations"] >= 10


def test_the_warehouse_history_holds_both_ui_runs(dagster_dev: DagsterDev, weekly_runs: list[FinishedRun]) -> None:
    with duckdb.connect(str(dagster_dev.warehouse), read_only=True) as con:
        runs = con.execute("SELECT run_id, count(*) FROM published.estimates_history GROUP BY run_id "
                           "ORDER BY min(run_time)").fetchall()
    assert [r[0] for r in runs] == [r.run_id for r in weekly_runs]
    assert runs[0][1] == runs[1][1] >= 4


@needs_chromium
def test_the_asset_graph_and_the_report_asset_page_render(dagster_dev: DagsterDev, weekly_runs: list[FinishedRun],
                                                          tmp_path: Path) -> None:
    """What a person opening the UI sees: the lineage of the five assets, and the robustness report's
    page with its metadata (wide window: the graph shows full asset cards, not name-only boxes)."""
    pages = {"asset_graph": (f"{dagster_dev.url}/locations/{LOCATION}/asset-groups/cmmm", 2400, 1000, ASSETS),
             "asset_report": (f"{dagster_dev.url}/assets/robustness_report", 1400, 1400,
                              ["forest_plot", "change_since_previous_run", "previous_run", "report.html"])}
    for name, (url, width, height, expected) in pages.items():
        dom = dump_dom(url, width=width, height=height, budget_ms=20000)
        for text in expected:
            assert text in dom, f"{text} not shown on {url}"
        assert "Join the Dagster community" not in dom  # nux disabled in dagster.yaml
        shot = screenshot(url, tmp_path / f"{name}.png", width, height, budget_ms=20000)
        colours, inked = image_stats(shot)
        assert colours > 100 and inked > 0.02, name
        if UPDATE_SCREENSHOTS:
            (REPO / "docs").mkdir(exist_ok=True)
            shutil.copyfile(shot, REPO / "docs" / f"{name}.png")

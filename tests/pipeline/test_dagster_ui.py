"""The Dagster UI as a data engineer uses it: `dagster dev` (webserver + daemon) on a free local port
with a temporary DAGSTER_HOME holding the repository's dagster.yaml, two runs of the weekly job
launched through the GraphQL API at once, and what the UI then shows: the run queue keeping them
apart, asset descriptions, materialisation metadata, asset-check results, the schedule and the
failure sensor; then a run on data with a negative spend, whose page is headed by the rule. `dagster dev`
is started and stopped with the README's lines for the background (its own process group, SIGINT and
SIGTERM not ignored; stopped alone first, then the rest of its group), with its daemon slow to stop:
no code server restarted, every process gone within STOP_BOUND.

`CMMM_UPDATE_SCREENSHOTS=1` also saves the 1440 px screenshots as docs/asset_graph.png,
docs/asset_report.png and docs/failed_run.png.
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
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from cmmm_pipeline.definitions import JOB_NAME
from tests.publish.test_report_browser import CHROMIUM, UPDATE_SCREENSHOTS, image_stats, needs_chromium
from tests.test_readme import background_lines, group_members, signals_ignored

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
ASSETS = ["raw_spend", "transformed_media", "causal_dag", "ate_estimates", "robustness_report"]
READY_TIMEOUT = 120.0
RUN_TIMEOUT = 600.0
"""Two queued runs of ~15 s each on an idle 2-core machine; up to 2 min each under a load average of 14."""
STOP_BOUND = 45.0
"""Seconds from the first SIGTERM until none of the group is left: 11–16 s measured with the daemon paused
for DAEMON_PAUSE on an idle 2-core machine. A code server restarted during the stop outlives it (it
waits 45 s for a heartbeat)."""
STOP_TIMEOUT = 60.0
"""After this, whatever is left is killed (so a failed stop leaves nothing behind)."""
DAEMON_PAUSE = 7.0
"""The daemon is paused this long as the stop begins, as a daemon busy in a long sensor tick would be:
longer than the 5 s between `dagster dev`'s looks at its code servers, so a stop that let a code server
exit before the daemon had stopped would see it restarted."""
RESTARTED = "Restarting the code server process"
UI_WIDTH = 1440
"""A laptop-sized window: every screenshot and layout check is taken at this width."""
LOCATION = "cmmm"
REPOSITORY = "__repository__"


@dataclass(frozen=True)
class DagsterDev:
    url: str
    home: Path
    output: Path
    warehouse: Path
    log: Path
    pid: int
    """`dagster dev` itself, the leader of its process group."""

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


def _daemon(pgid: int) -> int | None:
    """The pid of `dagster dev`'s daemon, if it runs."""
    for pid in group_members(pgid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"dagster._daemon"]:
                return pid
        except FileNotFoundError:
            continue
    return None


def _stop(pgid: int, stop: str, cwd: Path) -> float | None:
    """The README's stop lines, begun while the daemon is paused for DAEMON_PAUSE; the seconds until none
    of the group was left, or None when something was still running after STOP_TIMEOUT (then killed)."""
    resume = None
    if (daemon := _daemon(pgid)) is not None:
        os.kill(daemon, signal.SIGSTOP)
        resume = threading.Timer(DAEMON_PAUSE, os.kill, (daemon, signal.SIGCONT))
        resume.start()
    start = time.monotonic()
    try:
        subprocess.run(["bash", "-c", stop], cwd=cwd, check=True, timeout=STOP_TIMEOUT)
        while time.monotonic() - start < STOP_TIMEOUT:
            if not group_members(pgid):
                return time.monotonic() - start
            time.sleep(0.2)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if resume is not None:
            resume.join()  # never leave a stopped process behind
        for pid in group_members(pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return None


def _wait_ready(server: DagsterDev) -> None:
    """Until the webserver answers and the code location is loaded."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        assert group_members(server.pid), f"dagster dev exited:\n{server.log.read_text()}"
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
    start, save, stop = (line.replace("dagster.pid", str(root / "dagster.pid")) for line in background_lines())
    start = start.replace(".venv/bin/dagster dev -w workspace.yaml",
                          f"{DAGSTER} dev -w workspace.yaml -h 127.0.0.1 -p {port}").replace("dagster.log", str(log))
    # A non-interactive shell starting a background job: the case in which `dagster dev` ignored SIGTERM.
    subprocess.run(["bash", "-c", f"{start}\n{save}"], cwd=REPO, env=env, check=True, timeout=30)
    pid = int((root / "dagster.pid").read_text())
    server = DagsterDev(f"http://127.0.0.1:{port}", home, output, warehouse, log, pid)
    stopped: float | None = None
    try:
        deadline = time.monotonic() + 30  # `$!` is known before setsid and env have exec'd dagster
        # An empty command line is the forked shell before its exec: still the shell's signal mask.
        while Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0].rsplit("/", 1)[-1] in ("", "setsid", "env",
                                                                                                "bash"):
            assert time.monotonic() < deadline, "dagster dev did not start"
            time.sleep(0.05)
        assert os.getpgid(pid) == pid  # its own group: one signal reaches every process it starts
        assert not {signal.SIGINT, signal.SIGTERM} & signals_ignored(pid)
        _wait_ready(server)
        assert _daemon(pid) is not None, "dagster dev runs no daemon (the stop pauses it)"
        yield server
    finally:
        stopped = _stop(pid, stop, root)
        print(f"dagster dev stopped {stopped if stopped is None else round(stopped, 1)} s after SIGTERM")
    assert RESTARTED not in log.read_text(), "dagster dev restarted a code server while it was being stopped"
    assert stopped is not None and stopped < STOP_BOUND, \
        f"dagster dev's group not gone {STOP_BOUND:.0f} s after SIGTERM"


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
    assert re.search(r"\| tv \| \d\.\d+ \[\d\.\d+, \d\.\d+\] \| PASS \|", latest["estimates"])
    assert latest["forest_plot"].startswith("![") and "(data:image/svg+xml," in latest["forest_plot"]
    assert len(latest["forest_plot"]) < 1000  # the UI shows shorter markdown in place, longer behind a link
    # Each materialisation links its own run's report (inside the run folder the publication made),
    # as a clickable file:// URL with the path beside it; the ROI per channel is float metadata.
    report_file = Path(latest["report_path"])
    assert report_file.is_file() and report_file.parent == dagster_dev.output / "runs" / second.run_id
    assert latest["report"] == report_file.as_uri()
    assert report_file.read_bytes() == (dagster_dev.output / "report.html").read_bytes()
    assert 1.0 < latest["roi/tv/total"] < 3.0 and latest["roi/tv/total"] == earlier["roi/tv/total"]
    assert latest["roi/tv/total"] == round(latest["roi/tv/total"], 2)  # what its interval supports, not 16 digits
    assert earlier["previous_run"] == "none (first run)"
    assert latest["previous_run"] == first.run_id
    assert latest["outside_previous_interval"] == 0  # same data, same seed: nothing moved
    assert re.search(r"\| tv \| \d\.\d+ \| \d\.\d+ \[\d\.\d+, \d\.\d+\] \| 0\.0+ \|", latest["change_since_previous_run"])
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


@dataclass(frozen=True)
class Page:
    text: str
    """document.body.innerText once the page settled."""
    probe: object
    """What the page's `probe` script returned."""
    png: bytes


def browse(origin: str, url: str, width: int, height: int, storage: dict[str, str] | None = None,
           probe: str = "null", settle_s: float = 12.0) -> Page:
    """Open `url` in headless Chromium through the DevTools protocol: first `origin`, to set the UI's
    own settings in its localStorage (e.g. the asset graph's layout direction), then the page; after
    `settle_s` its text, the value of the `probe` expression and a screenshot."""
    from websockets.sync.client import connect

    from tests.publish.test_report_browser import CHROMIUM, CHROMIUM_FLAGS, stop_chromium

    profile = tempfile.mkdtemp(prefix="cmmm-chromium-")
    process = subprocess.Popen([str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                f"--window-size={width},{height}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        endpoint = None
        deadline = time.monotonic() + READY_TIMEOUT
        while endpoint is None and time.monotonic() < deadline:
            found = re.search(r"DevTools listening on ws://[^/]+:(\d+)/", process.stderr.readline())
            endpoint = found and f"http://127.0.0.1:{found.group(1)}"
        assert endpoint, "chromium did not open its DevTools endpoint"
        with urllib.request.urlopen(f"{endpoint}/json/list", timeout=30) as response:
            target = next(t for t in json.load(response) if t["type"] == "page")["webSocketDebuggerUrl"]
        with connect(target, max_size=None, open_timeout=30) as socket_:
            ids = iter(range(1, 1 << 30))

            def call(method: str, **params: object) -> dict:
                request_id = next(ids)
                socket_.send(json.dumps({"id": request_id, "method": method, "params": params}))
                while True:
                    message = json.loads(socket_.recv(timeout=60))
                    if message.get("id") == request_id:
                        assert "error" not in message, message
                        return message.get("result", {})

            def evaluate(expression: str) -> object:
                return call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

            call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            if storage:
                call("Page.navigate", url=origin)
                time.sleep(3.0)
                for key, value in storage.items():
                    evaluate(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)})")
            call("Page.navigate", url=url)
            time.sleep(settle_s)
            png = base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
            return Page(str(evaluate("document.body.innerText")), evaluate(probe), png)
    finally:
        stop_chromium(process, profile)


def _keep(page: Page, tmp_path: Path, name: str) -> Path:
    """The screenshot as a file (and as docs/<name>.png with CMMM_UPDATE_SCREENSHOTS=1)."""
    shot = tmp_path / f"{name}.png"
    shot.write_bytes(page.png)
    colours, inked = image_stats(shot)
    assert colours > 100 and inked > 0.02, name
    if UPDATE_SCREENSHOTS:
        shutil.copyfile(shot, REPO / "docs" / f"{name}.png")
    return shot


# The right edge of an element and of the panel it must stay inside (the page column left of the
# "Definition" sidebar): a table wider than the metadata panel is clipped, not scrolled.
CLIPPED = """(() => {{
  const cell = [...document.querySelectorAll('th')].find(th => th.textContent.trim() === {header!r});
  const side = [...document.querySelectorAll('*')].find(e => e.children.length === 0 && e.textContent.trim() === 'Definition');
  return cell && side ? [cell.getBoundingClientRect().right, side.getBoundingClientRect().left] : null;
}})()"""


@needs_chromium
def test_the_asset_graph_at_1440_px_shows_each_assets_checks_with_the_warning(
        dagster_dev: DagsterDev, weekly_runs: list[FinishedRun], tmp_path: Path) -> None:
    """At 1440 px the default (left-to-right) graph is zoomed out to name-only boxes, which Dagster
    colours by materialisation alone: no check is visible. Laid out top to bottom (the graph's
    layout setting, kept per browser) every asset is a full card with its checks: raw_spend's
    `1 / 3 Passed` with the warning sign of the stale-data WARN."""
    page = browse(dagster_dev.url, f"{dagster_dev.url}/locations/{LOCATION}/asset-groups/cmmm", UI_WIDTH, 1800,
                  storage={"asset-graph-direction": '"vertical"'})
    for asset in ASSETS:
        assert re.search(rf"{asset}\nLatest event\n.+\nAsset checks\n\d / \d Passed", page.text), asset
    # raw_spend: quality passed, newest week WARN failed, freshness not evaluated (its sensor is stopped)
    assert re.search(r"raw_spend\nLatest event\n.+\nAsset checks\n1 / 3 Passed", page.text)
    _keep(page, tmp_path, "asset_graph")


@needs_chromium
def test_the_report_asset_page_shows_the_estimates_unclipped_and_the_forest_plot_in_place(
        dagster_dev: DagsterDev, weekly_runs: list[FinishedRun], tmp_path: Path) -> None:
    page = browse(dagster_dev.url, f"{dagster_dev.url}/assets/robustness_report", UI_WIDTH, 2600,
                  probe=CLIPPED.format(header="robustness"))
    assert page.probe is not None, "no estimates table with a robustness column on the page"
    right, panel = page.probe
    assert right <= panel, f"the estimates table is clipped: robustness ends at {right:.0f} px, the panel at {panel:.0f}"
    assert "[Show Markdown]" not in page.text.split("forest_plot", 1)[1].split("previous_run", 1)[0]
    assert "ROI, published [95%]" in page.text and "tv indirect" in page.text
    images = browse(dagster_dev.url, f"{dagster_dev.url}/assets/robustness_report", UI_WIDTH, 1000, probe=(
        "[...document.images].filter(i => i.src.startsWith('data:image/svg+xml') && i.naturalWidth > 0).length"))
    assert images.probe == 1  # the forest plot, drawn in place
    _keep(page, tmp_path, "asset_report")


FAILED_RUN_EVENTS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status
  eventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey
    failureMetadata { description } error { message } } } } } } }"""


@pytest.fixture(scope="module")
def failed_run(dagster_dev: DagsterDev, weekly_runs: list[FinishedRun], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A run launched in the UI on the sample with one week's TV spend negative (after the weekly runs)."""
    import pandas as pd
    import yaml

    from cmmm_pipeline.definitions import SAMPLE_CONFIG

    root = tmp_path_factory.mktemp("negative_spend")
    data = pd.read_csv(SAMPLE_CONFIG.parent / "weekly.csv")
    data.loc[10, "tv_spend"] = -250.0
    data.to_csv(root / "weekly.csv", index=False)
    config = yaml.safe_load(SAMPLE_CONFIG.read_text(encoding="utf-8"))
    config["data"]["path"] = str(root / "weekly.csv")
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB_NAME},
              "runConfigData": {"resources": {"settings": {"config": {"config_path": str(root / "config.yaml"),
                                                                      "output_dir": {"env": "CMMM_OUTPUT_DIR"}}}}}}
    launched = dagster_dev.graphql(LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while dagster_dev.graphql(RUN, {"id": run_id})["runOrError"]["status"] not in {"SUCCESS", "FAILURE", "CANCELED"}:
        assert time.monotonic() < deadline, f"run not finished after {RUN_TIMEOUT:.0f} s"
        time.sleep(1.0)
    return run_id


def test_a_failed_check_heads_the_run_page_with_its_rule(dagster_dev: DagsterDev, failed_run: str,
                                                        tmp_path: Path) -> None:
    """The failed run's step failure carries the rule paragraph (rule, place, week, value, fix) as
    its description, which the run page shows; the check's own result says the same."""
    run = dagster_dev.graphql(FAILED_RUN_EVENTS, {"id": failed_run})["runOrError"]
    assert run["status"] == "FAILURE"
    (failure,) = [e for e in run["eventConnection"]["events"] if e["__typename"] == "ExecutionStepFailureEvent"]
    description = failure["failureMetadata"]["description"]
    assert failure["stepKey"] == "raw_spend_raw_spend_quality"
    assert description.startswith("[spend-non-negative] raw_spend column 'tv_spend'") and "Fix:" in description
    assert "-250" in description and "2023-03-13" in description
    if CHROMIUM.is_file():
        page = browse(dagster_dev.url, f"{dagster_dev.url}/runs/{failed_run}", UI_WIDTH, 1000)
        assert "[spend-non-negative] raw_spend column 'tv_spend'" in page.text
        _keep(page, tmp_path, "failed_run")

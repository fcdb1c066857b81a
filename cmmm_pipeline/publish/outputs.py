"""The user-facing files of a published run, and the protocol that publishes them with the
warehouse so that both always show the same run (one run, one publication).

Layout of the output folder:

    OUTPUT/runs/<run_id>/     every file of one run (estimates.csv, report.html, the CSVs),
                              publication.json (run id, run time, SHA-256 of each file) and the
                              ownership marker .cmmm-run (the run id), written first
    OUTPUT/current            symlink -> runs/<run_id> of the published run: the single pointer
    OUTPUT/estimates.csv ...  symlinks -> current/<name>: the paths users open never change

Protocol (`publish_run`): repair any mismatch left by a crash; open the warehouse transaction that
replaces `published`, appends the history and records the publication; inside it write every file
into `runs/.<run_id>.partial/` from the published tables it sees, fsync, rename the folder to
`runs/<run_id>/`; COMMIT (the point of truth); switch `current` by one atomic rename; refresh the
top-level links; prune old run folders. A crash before the commit leaves the warehouse and
`current` on the previous run; a crash after it leaves `current` one step behind, and the next
start rolls it forward to the warehouse's run (`repair_publication`), whose folder is complete
before the commit by construction.

Ownership: the pipeline deletes only what it created. Before anything is written or removed,
`check_output_folder` refuses (`output-not-ours`) a `runs` or `current` entry, or a published name,
that is not the pipeline's own kind of entry (a symlink to somewhere else, a folder, a device), and
it never follows a link. A run folder is removed only when it is a real folder holding the marker
(or, from an older release, the manifest) of the run it is named after, and then only the file names
a run writes are unlinked, one by one, before an `rmdir` that leaves a folder with anything foreign in
it in place. A regular file at a published name (the older layout, or a user's file) is renamed aside,
never deleted.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import duckdb
import pandas as pd

from cmmm_pipeline.core.config import PipelineConfig
from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.data import history, warehouse
from cmmm_pipeline.data.history import EstimateChanges
from cmmm_pipeline.data.markets import market_of, with_market
from cmmm_pipeline.publish.report import (
    CHECK_RESULTS,
    AttentionItem,
    ReportInputs,
    RunInfo,
    attention_items,
    render_report,
)

ESTIMATE_COLUMNS = ["channel", "effect", "roi", "roi_ci_low", "roi_ci_high", "mroi", "mroi_ci_low", "mroi_ci_high",
                    "roi_support", "extrapolated_share", "incremental_kpi", "incremental_ci_low",
                    "incremental_ci_high", "p_value", "naive_roi", "robustness", "ate", "spend", "adjustment",
                    "mediators", "reason", "withheld_reason", "interval_method", "applied_transform_roi"]


# Published table → CSV file written beside report.html when the run produced it.
CSV_EXPORTS = {
    "estimates": "estimates.csv",
    "dag_tests": "dag_tests.csv",
    "dag_suggestions": "dag_suggestions.csv",
    "overlap": "overlap.csv",
    "refutations": "refutations.csv",
    "experiments": "experiments.csv",
    "transform_selection": "transform_selection.csv",
    "effects_by_period": "effects_by_period.csv",
    "synergies": "synergies.csv",
    "feedback": "feedback.csv",
    "budget_plan": "plan.csv",
    "budget_plan_weeks": "plan_weeks.csv",
}
EXPORTED_WHEN_EMPTY = frozenset(CSV_EXPORTS) - {"budget_plan", "budget_plan_weeks"}
"""Tables whose CSV is written even without rows; a run without a configured (or computed) plan writes
no plan.csv (no plan_weeks.csv)."""


# Published tables the report reads when the run produced them.
REPORT_TABLES = ("estimates", "raw_spend", "transform_parameters", "transformed_media", "dag_edges", "dag_tests",
                 "dag_suggestions",
                 "overlap", "identification", "refutations", "experiments", "transform_selection",
                 "effects_by_period", "synergies", "feedback", "budget_plan", CHECK_RESULTS)
CHANGES_FILE = "estimate_changes.csv"
REPORT_FILE = "report.html"
MANIFEST_FILE = "publication.json"
USER_FILES = (*CSV_EXPORTS.values(), CHANGES_FILE, REPORT_FILE, MANIFEST_FILE)
"""Every name a run can publish at the top of the output folder."""
RUNS_DIR = "runs"
CURRENT = "current"
KEEP_RUNS = 5
"""Run folders kept (the newest publications); older ones are removed after each publication."""
PARTIAL_SUFFIX = ".partial"
OWNER_MARKER = ".cmmm-run"
"""Written first into every run folder (its content is the run id): what makes a folder ours to remove."""
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


class PublicationError(CmmmError):
    """The output folder cannot take (or does not hold) a consistent publication."""


NOT_OURS = "output-not-ours"


def _not_ours(path: Path, what: str) -> PublicationError:
    return PublicationError(
        NOT_OURS, str(path),
        f"is {what}, which the pipeline did not create; it neither follows nor removes it, so nothing was "
        "written or deleted.",
        "move that entry out of the output folder (or choose another --output / CMMM_OUTPUT_DIR), then run again.")


def _kind(path: Path) -> str:
    """What an entry is, for a message (a link is described with its target, never followed)."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return f"a symbolic link to {os.readlink(path)[:200]!r}"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file (device, FIFO or socket)"


def check_output_folder(directory: Path) -> None:
    """Refuse (`output-not-ours`) before anything is touched when an entry the publication would
    replace or remove is not of the kind the pipeline creates: `runs` must be a real folder,
    `current` a link to `runs/<run id>`, each published name a link to `current/<name>` (or a
    regular file of the older layout, which is renamed aside). Links are read, never followed."""
    directory = Path(directory)
    runs = directory / RUNS_DIR
    if os.path.lexists(runs) and not stat.S_ISDIR(runs.lstat().st_mode):
        raise _not_ours(runs, _kind(runs))
    current = directory / CURRENT
    if os.path.lexists(current):
        target = os.readlink(current) if current.is_symlink() else None
        if target is None or not _is_run_link(target):
            raise _not_ours(current, _kind(current))
    for name in (*USER_FILES, OWNER_MARKER):
        path = directory / name
        if not os.path.lexists(path):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            if os.readlink(path) != f"{CURRENT}/{name}":
                raise _not_ours(path, _kind(path))
        elif not stat.S_ISREG(mode) or name == OWNER_MARKER:
            raise _not_ours(path, _kind(path))


def _is_run_link(target: str) -> bool:
    head, _, name = target.partition("/")
    return head == RUNS_DIR and bool(_RUN_ID.fullmatch(name))


class RepairAction(Enum):
    NONE = "none"
    """The pointer and the links already showed the warehouse's run."""
    ROLLED_FORWARD = "rolled_forward"
    """`current` pointed at another run than the warehouse's: switched to the warehouse's run."""
    LINKS_FIXED = "links_fixed"
    """`current` was right; top-level names were missing, stale or regular files: relinked."""
    NOT_PUBLISHED = "not_published"
    """The warehouse records no publication: nothing to repair against."""
    FOLDER_MISSING = "folder_missing"
    """The warehouse's run folder is not in this output folder: the next publication replaces it."""


@dataclass(frozen=True)
class RepairOutcome:
    action: RepairAction
    warehouse_run: str | None
    pointer_before: str | None
    """The run `current` pointed at before the repair (None when absent)."""


@dataclass(frozen=True)
class PublicationCheck:
    """Whether the warehouse's published run and every published file are the same run."""

    warehouse_run: str | None
    pointer_run: str | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class WrittenOutputs:
    estimates: Path
    report: Path
    files: tuple[Path, ...]
    """The user-facing paths (top-level links through `current`)."""
    run_folder: Path
    changes: EstimateChanges
    """This run's estimates against the previously published run."""
    forest_png: bytes
    """The report's ROI forest plot, for the Dagster UI."""
    attention: tuple[AttentionItem, ...] = ()
    """The report's "What needs attention" list: what the console prints after its table."""


def final_estimates(point: pd.DataFrame, intervals: pd.DataFrame,
                    robustness: dict[str, str] | None = None) -> pd.DataFrame:
    """Point estimates joined with their intervals and p-values, and each channel's robustness
    status (the worst of its refuters; empty where nothing was refuted), in the documented column
    order. Where an estimate rests on a selected transform, the published incremental KPI and ROI
    are its smoothed values (the marginal ROI likewise); `applied_transform_roi` keeps the ROI at
    the applied transforms. Rows that could not be estimated (not identified, or withheld for thin
    overlap) keep NaN numbers and their `withheld_reason`."""
    merged = point.merge(intervals, on=["channel", "effect"], how="left", validate="one_to_one")
    merged["applied_transform_roi"] = merged["roi"]
    if "smoothed_incremental_kpi" in merged.columns:
        smoothed = merged["smoothed_incremental_kpi"].notna()
        merged.loc[smoothed, "incremental_kpi"] = merged.loc[smoothed, "smoothed_incremental_kpi"]
        merged.loc[smoothed, "roi"] = merged.loc[smoothed, "incremental_kpi"] / merged.loc[smoothed, "spend"]
        merged = merged.drop(columns="smoothed_incremental_kpi")
    if "mroi_estimate" in merged.columns:  # the published marginal ROI: smoothed where the ROI is
        published = merged["mroi_estimate"].notna()
        merged.loc[published, "mroi"] = merged.loc[published, "mroi_estimate"]
        merged = merged.drop(columns="mroi_estimate")
    for column in ("mroi", "mroi_ci_low", "mroi_ci_high", "extrapolated_share"):
        if column not in merged.columns:
            merged[column] = float("nan")
    for column in ("interval_method", "roi_support", "withheld_reason"):
        if column not in merged.columns:
            merged[column] = ""
        merged[column] = merged[column].fillna("")
    status = robustness or {}
    merged["robustness"] = [status.get(c, "") if pd.notna(a) else "" for c, a in zip(merged["channel"], merged["ate"])]
    if "reason" not in merged.columns:
        merged["reason"] = ""
    rest = [c for c in merged.columns if c not in ESTIMATE_COLUMNS]
    return merged[ESTIMATE_COLUMNS + rest]


def publish_run(con: duckdb.DuckDBPyConnection, directory: Path, config: PipelineConfig, run_id: str,
                run_time: dt.datetime, staging: str = warehouse.STAGING, keep: int = KEEP_RUNS) -> WrittenOutputs:
    """Publish the run staged in `staging`: the warehouse's `published` tables, its history and
    every file under `directory`, as one publication (see the module docstring for the protocol).

    Raises `PublicationError` (rule `output-not-writable`) when a file cannot be written; the
    warehouse and the files of the previous publication are then exactly as they were.

    Parameters
    ----------
    con : the warehouse connection (no transaction open).
    directory : the output folder.
    config : the run's config (the report shows it).
    run_id, run_time : the run being published.
    staging : the schema this run staged its tables in.
    keep : run folders kept after publishing (the newest publications).
    """
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id usable as a folder name: {run_id[:80]!r}")
    directory = Path(directory)
    runs = directory / RUNS_DIR
    folder, partial = runs / run_id, runs / f".{run_id}{PARTIAL_SUFFIX}"
    previous = warehouse.published_run(con)
    check_output_folder(directory)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        repair_publication(con, directory)
        if os.path.lexists(folder):
            if _current_run(directory) == run_id:
                raise PublicationError("run-already-published", str(folder),
                                       f"run {run_id} is the published run; its folder cannot be rewritten.",
                                       "publish a new run (every run has its own id).")
            if not _remove_run_folder(folder):  # an earlier attempt of this run that never committed
                raise _not_ours(folder, _kind(folder) + " without this run's marker")
        if os.path.lexists(partial) and not _remove_run_folder(partial):
            raise _not_ours(partial, _kind(partial) + " without this run's marker")
        restated = _restatements(con, staging)
        with warehouse.publishing(con, run_id, run_time, "estimates", staging=staging,
                                  folder=f"{RUNS_DIR}/{run_id}"):
            names, changes, forest, attention = _write_run_folder(con, partial, config, run_id, restated)
            _seal_folder(partial, folder)
    except OSError as exc:
        _remove_run_folder(partial, quiet=True)
        if warehouse.published_run(con) == previous:
            _remove_run_folder(folder, quiet=True)
        raise _not_writable(directory, exc, previous) from exc
    except BaseException:
        _remove_run_folder(partial, quiet=True)
        raise
    try:
        _switch_current(directory, run_id)
        _refresh_links(directory, names)
        _prune(con, runs, keep)
    except OSError as exc:
        raise PublicationError(
            "publication-pointer", str(directory / CURRENT),
            f"run {run_id} is committed to the warehouse, but the output folder could not be switched to it "
            f"({exc.strerror or type(exc).__name__}).",
            "make the output folder writable and start any run: it first points the files at the warehouse's "
            "run (or call cmmm_pipeline.publish.outputs.repair_publication).") from exc
    links = tuple(directory / n for n in names)
    return WrittenOutputs(estimates=directory / "estimates.csv", report=directory / REPORT_FILE, files=links,
                          run_folder=folder, changes=changes, forest_png=forest, attention=attention)


def _not_writable(directory: Path, exc: OSError, previous: warehouse.PublishedRun | None) -> PublicationError:
    reason = exc.strerror or str(exc.args[0] if exc.args else type(exc).__name__)
    where = f" at {exc.filename}" if exc.filename else ""
    kept = f"run {previous.run_id}" if previous else "nothing (no run was published before)"
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free space on its disk" if full else "make the folder writable by the user that runs the pipeline"
    return PublicationError(
        "disk-full" if full else "output-not-writable", str(directory),
        f"the run's files could not be written ({reason}{where}), so nothing was published: the warehouse "
        f"and the output folder still show {kept}.",
        f"{fix}, or choose another output folder (--output or CMMM_OUTPUT_DIR), then run again.")


def _restatements(con: duckdb.DuckDBPyConnection, staging: str) -> pd.DataFrame:
    """The previous publication's data values this run's data changed."""
    if "raw_spend" not in warehouse.table_names(con, warehouse.PUBLISHED) \
            or "raw_spend" not in warehouse.table_names(con, staging):
        return pd.DataFrame(columns=history.RESTATEMENT_COLUMNS)
    return history.restated_values(warehouse.read_table(con, "raw_spend", warehouse.PUBLISHED),
                                   warehouse.read_table(con, "raw_spend", staging))


def _write_run_folder(con: duckdb.DuckDBPyConnection, folder: Path, config: PipelineConfig, run_id: str,
                      restated: pd.DataFrame) -> tuple[tuple[str, ...], EstimateChanges, bytes,
                                                       tuple[AttentionItem, ...]]:
    """Every file of the run, rendered from the `published` tables the open transaction holds, then
    the manifest naming the run and each file's hash (written last: a folder with a manifest is
    complete)."""
    folder.mkdir()
    _write_file(folder / OWNER_MARKER, run_id.encode("utf-8"))
    published = set(warehouse.table_names(con, warehouse.PUBLISHED))
    tables = {t: warehouse.read_table(con, t, warehouse.PUBLISHED) for t in REPORT_TABLES if t in published}
    estimates = tables["estimates"]
    changes = history.estimate_changes(con, run_id, estimates, restated)
    when = history.run_time(con, run_id)
    run = RunInfo(run_id=run_id, run_time=when, kpi=config.kpi,
                  config_path=str(config.source), config_text=config.source.read_text(encoding="utf-8"),
                  ci_level=config.estimation.ci_level,
                  spend_columns={c.name: c.spend_column for c in config.channels},
                  selection_band=config.estimation.selection_band)
    inputs = ReportInputs.from_tables(run, tables, changes, history.roi_history(con))
    html = render_report(inputs)
    contents: dict[str, bytes] = {}
    market = market_of(estimates)  # a market's every CSV says which market it describes
    for table, filename in CSV_EXPORTS.items():
        if table in published:
            frame = tables.get(table)
            frame = warehouse.read_table(con, table, warehouse.PUBLISHED) if frame is None else frame
            if len(frame) or table in EXPORTED_WHEN_EMPTY:
                contents[filename] = with_market(frame, market).to_csv(index=False).encode("utf-8")
    contents[CHANGES_FILE] = with_market(changes.table, market).to_csv(index=False).encode("utf-8")
    contents[REPORT_FILE] = html.encode("utf-8")
    for name, data in contents.items():
        _write_file(folder / name, data)
    manifest = {"run_id": run_id, "run_time": None if when is None else when.isoformat(),
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}}
    _write_file(folder / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return (*contents, MANIFEST_FILE), changes, inputs.forest_png, tuple(attention_items(inputs))


def _write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file of a run folder (the folder is private until it is sealed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal_folder(partial: Path, folder: Path) -> None:
    """Give the complete run folder its final name, durably, before the warehouse commits."""
    _fsync_dir(partial)
    os.rename(partial, folder)
    _fsync_dir(folder.parent)


def _switch_current(directory: Path, run_id: str) -> None:
    """Point `current` at `runs/<run_id>` by one atomic rename: readers see the old run or the new
    one, never a mixture."""
    _replace_symlink(directory / CURRENT, f"{RUNS_DIR}/{run_id}")
    _fsync_dir(directory)


def _replace_symlink(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    os.symlink(target, tmp)  # a fresh name: fails rather than replace anything already there
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link_user_file(directory: Path, name: str) -> None:
    """`OUTPUT/<name>` -> `current/<name>` (a regular file the older layout left there is set aside)."""
    path = directory / name
    if os.path.lexists(path) and not path.is_symlink():
        _set_aside(path)
    _replace_symlink(path, f"{CURRENT}/{name}")


def _is_our_link(path: Path, name: str) -> bool:
    return path.is_symlink() and os.readlink(path) == f"{CURRENT}/{name}"


def _set_aside(path: Path) -> Path:
    """Rename a regular file at a published name to a free `<name>.before-links[.N]`: the older
    layout's files (or a user's own) are never deleted."""
    for n in range(1000):
        aside = path.with_name(f"{path.name}.before-links" + (f".{n}" if n else ""))
        if not os.path.lexists(aside):
            os.rename(path, aside)
            return aside
    raise _not_ours(path, "a regular file with 1000 earlier copies set aside beside it")


def _refresh_links(directory: Path, names: tuple[str, ...]) -> bool:
    """Top-level names link through `current`; our links to names the current run did not publish
    are removed, so no file of an older run stays in view. True when anything changed."""
    changed = False
    for name in USER_FILES:
        path = directory / name
        if name in names:
            if not _is_our_link(path, name):
                _link_user_file(directory, name)
                changed = True
        elif _is_our_link(path, name):
            path.unlink()
            changed = True
        elif os.path.lexists(path) and stat.S_ISREG(path.lstat().st_mode):
            _set_aside(path)
            changed = True
    return changed


def _prune(con: duckdb.DuckDBPyConnection, runs: Path, keep: int) -> None:
    """Remove our run folders other than the `keep` newest publications (and leftovers of crashed
    runs); anything else in `runs/` is not ours and stays."""
    log = warehouse.publication_log(con)
    kept = set(log["run_id"].astype(str).tail(keep)) if not log.empty else set()
    for entry in runs.iterdir():
        if entry.name not in kept:
            _remove_run_folder(entry)


def _folder_run_id(name: str) -> str | None:
    """The run a run-folder name stands for (`<id>` or `.<id>.partial`), None for any other name."""
    if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
        name = name[1:-len(PARTIAL_SUFFIX)]
    return name if _RUN_ID.fullmatch(name) else None


def _read_small(path: Path, limit: int = 1 << 20) -> bytes | None:
    """A regular file's bytes (None for a link, a non-regular file or one over `limit`), never following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return os.read(fd, info.st_size + 1)
    finally:
        os.close(fd)


def is_own_run_folder(path: Path) -> bool:
    """A real folder (not a link) named after a run that holds that run's marker, or the manifest
    naming that run (folders of releases before the marker)."""
    run_id = _folder_run_id(path.name)
    if run_id is None or not stat.S_ISDIR(path.lstat().st_mode):
        return False
    if _read_small(path / OWNER_MARKER) == run_id.encode("utf-8"):
        return True
    manifest = _read_small(path / MANIFEST_FILE)
    try:
        return manifest is not None and json.loads(manifest).get("run_id") == run_id
    except (ValueError, AttributeError):
        return False


_RUN_FILE_NAMES = frozenset((*USER_FILES, OWNER_MARKER))


def _remove_run_folder(path: Path, quiet: bool = False) -> bool:
    """Remove one of our run folders: unlink only the names a run writes (a link or a hard link loses
    just that name; nothing is followed), then `rmdir`, which keeps a folder that holds anything
    else. An empty folder named like a run's (a crash before its marker) is removed too. Returns
    False, touching nothing, for anything that is not ours."""
    try:
        if not os.path.lexists(path):
            return True
        if _folder_run_id(path.name) is None or not stat.S_ISDIR(path.lstat().st_mode):
            return False
        if not is_own_run_folder(path):
            if any(path.iterdir()):
                return False
            path.rmdir()
            return True
        for name in _RUN_FILE_NAMES - {OWNER_MARKER}:
            entry = path / name
            if os.path.lexists(entry) and not stat.S_ISDIR(entry.lstat().st_mode):
                entry.unlink()
        (path / OWNER_MARKER).unlink(missing_ok=True)
        try:
            path.rmdir()
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
        return True
    except OSError:
        if not quiet:
            raise
        return False


def _current_run(directory: Path) -> str | None:
    """The run `current` points at (None when there is no `current` link)."""
    link = directory / CURRENT
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target.name if target.parent.name == RUNS_DIR else None


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def repair_publication(con: duckdb.DuckDBPyConnection, directory: Path) -> RepairOutcome:
    """Make the output folder show the warehouse's published run. The warehouse commit is the point
    of truth: a run folder is complete before its commit, so the pointer can always be rolled
    forward to it, while the tables the commit replaced are gone and cannot be rolled back to."""
    directory = Path(directory)
    check_output_folder(directory)
    published = warehouse.published_run(con)
    before = _current_run(directory)
    if published is None:
        return RepairOutcome(RepairAction.NOT_PUBLISHED, None, before)
    manifest = _manifest(directory / published.folder)
    if manifest is None or manifest.get("run_id") != published.run_id:
        return RepairOutcome(RepairAction.FOLDER_MISSING, published.run_id, before)
    action = RepairAction.NONE
    if before != published.run_id:
        _switch_current(directory, published.run_id)
        action = RepairAction.ROLLED_FORWARD
    if _refresh_links(directory, tuple(manifest["files"]) + (MANIFEST_FILE,)) and action is RepairAction.NONE:
        action = RepairAction.LINKS_FIXED
    return RepairOutcome(action, published.run_id, before)


def verify_publication(con: duckdb.DuckDBPyConnection, directory: Path) -> PublicationCheck:
    """Check one run, one publication: `current` names the warehouse's published run; its manifest
    names it too and every file matches its hash; each CSV equals the published table it exports;
    the report names the run; every top-level name resolves into the current run folder and no
    other top-level file of ours is in view."""
    directory = Path(directory)
    published = warehouse.published_run(con)
    pointer = _current_run(directory)
    problems: list[str] = []
    if published is None:
        return PublicationCheck(None, pointer, ("the warehouse records no publication",))
    if pointer != published.run_id:
        problems.append(f"current points at {pointer}, the warehouse published {published.run_id}")
    folder = directory / published.folder
    manifest = _manifest(folder)
    if manifest is None or manifest.get("run_id") != published.run_id:
        problems.append(f"{folder} holds no manifest of run {published.run_id}")
        return PublicationCheck(published.run_id, pointer, tuple(problems))
    names = (*manifest["files"], MANIFEST_FILE)
    tables = set(warehouse.table_names(con, warehouse.PUBLISHED))
    exported = {f: t for t, f in CSV_EXPORTS.items() if t in tables
                and (t in EXPORTED_WHEN_EMPTY or len(warehouse.read_table(con, t, warehouse.PUBLISHED)))}
    if set(exported) - set(names):
        problems.append(f"published tables without their file: {sorted(set(exported) - set(names))}")
    for name, digest in manifest["files"].items():
        path = directory / name
        if not path.exists() or os.path.realpath(path) != os.path.realpath(folder / name):
            problems.append(f"{name} does not resolve into {published.folder}")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"{name} does not match its hash in the manifest")
        table = {f: t for t, f in CSV_EXPORTS.items()}.get(name)
        if table is not None:
            if table not in tables:
                problems.append(f"{name} exports {table}, which the warehouse no longer publishes")
            elif warehouse.read_table(con, table, warehouse.PUBLISHED).to_csv(index=False).encode("utf-8") != data:
                problems.append(f"{name} differs from published.{table}")
    report = directory / REPORT_FILE
    if report.exists() and published.run_id not in report.read_text(encoding="utf-8"):
        problems.append(f"{REPORT_FILE} does not name run {published.run_id}")
    for name in USER_FILES:
        if name not in names and ((directory / name).is_symlink() or (directory / name).exists()):
            problems.append(f"{name} is in view but not part of run {published.run_id}")
    return PublicationCheck(published.run_id, pointer, tuple(problems))

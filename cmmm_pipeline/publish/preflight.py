"""Checks of the output folder and the warehouse file before a run touches either, so that a
folder that cannot take a publication is refused with a rule (and nothing is written) instead of
failing halfway with a library's error.

Each check is cheap (a few `stat` calls, one probe file) and bounded; none follows a link it did
not create or opens anything but a regular file.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from cmmm_pipeline.core.errors import CmmmError


class OutputError(CmmmError):
    """The output folder or the warehouse file cannot take a run."""


DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""
MIN_FREE_BYTES = 32 * 1024 * 1024
"""Free space a run needs beyond what grows with the warehouse and the data (report, run folder,
DuckDB's write-ahead log and checkpoints); a first run on the sample writes about 7 MB."""
WAREHOUSE_GROWTH = 2.0
"""A run can rewrite about as much as the warehouse holds (staging copies, then the published
tables and the history appended), before the old blocks are freed."""
DATA_GROWTH = 16.0
"""Each input byte becomes several warehouse bytes (raw, transformed and staged tables)."""


@dataclass(frozen=True)
class SpaceNeed:
    needed: int
    free: int

    @property
    def enough(self) -> bool:
        return self.free >= self.needed


def _size(path: Path) -> int:
    try:
        info = path.stat()
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _existing_parent(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def space_need(folder: Path, warehouse: Path, data: Path | None) -> SpaceNeed:
    """The free space a run needs on the disk of `folder` (a bound, not a forecast) and what it has."""
    needed = MIN_FREE_BYTES + WAREHOUSE_GROWTH * _size(warehouse) + DATA_GROWTH * (_size(data) if data else 0)
    return SpaceNeed(int(needed), shutil.disk_usage(_existing_parent(folder)).free)


def disk_full_error(place: Path, needed: int | None, free: int) -> OutputError:
    want = f"about {human_bytes(needed)}" if needed else "more than that"
    return OutputError(
        "disk-full", str(place),
        f"the disk holding it has {human_bytes(free)} free; a run needs {want} (the warehouse, its write-ahead "
        "log and the run's files), so nothing was written and earlier results are intact.",
        "free space on that disk, or choose an output folder (--output) and warehouse (--warehouse) on a disk "
        "with room, then run again.")


def not_writable_error(place: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    fix = ("remount the disk read-write, or choose another folder" if exc.errno == errno.EROFS
           else f"make the folder writable by the user that runs the pipeline (uid {os.getuid()}), or choose another "
                "folder")
    return OutputError(
        "output-not-writable", str(place),
        f"cannot be written ({reason}), so nothing was published: the run stopped before writing anything and "
        "earlier results are intact.",
        f"{fix} with --output (or CMMM_OUTPUT_DIR) and --warehouse, then run again.")


def _probe_writable(folder: Path) -> None:
    """Create and remove a probe file of our own: the only reliable test (permissions, read-only
    mounts, quotas and root's overrides all differ)."""
    probe = folder / f".cmmm-probe-{secrets.token_hex(8)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(folder, None, shutil.disk_usage(folder).free) from None
        raise not_writable_error(folder, exc) from None
    os.close(fd)
    probe.unlink()


def check_output_folder_usable(output: Path) -> None:
    """The output folder is a folder (made if missing) that this user can write."""
    if os.path.lexists(output) and not output.is_dir():
        raise OutputError(
            "output-not-a-folder", str(output),
            "is a file, not a folder; the pipeline writes estimates.csv, report.html and its run folders into a "
            "folder and never replaces a file it did not create.",
            "pass a folder with --output (a new path is created), or move the file away.")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable_error(output, exc) from None
    _probe_writable(output)


def check_warehouse_file(warehouse: Path) -> None:
    """The warehouse is a new path or a DuckDB file; anything else is refused, never overwritten."""
    if not os.path.lexists(warehouse):
        try:
            warehouse.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise not_writable_error(_existing_parent(warehouse.parent), exc) from None
        _probe_writable(warehouse.parent)
        return
    info = warehouse.stat() if warehouse.exists() else None
    if info is None or not stat.S_ISREG(info.st_mode):
        what = "a folder" if info and stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise _invalid_warehouse(warehouse, f"is {what}")
    try:
        with open(warehouse, "rb") as handle:
            head = handle.read(12)
    except OSError as exc:
        raise not_writable_error(warehouse, exc) from None
    if head[8:12] != DUCKDB_MAGIC:
        raise _invalid_warehouse(warehouse, f"is not a DuckDB database ({human_bytes(info.st_size)} of other data)")
    _probe_writable(warehouse.parent)


def _invalid_warehouse(warehouse: Path, what: str) -> OutputError:
    return OutputError(
        "warehouse-invalid", str(warehouse),
        f"{what}; the pipeline never overwrites a file it did not create, so nothing was run.",
        "point --warehouse (or CMMM_WAREHOUSE) at a new path or at an earlier run's cmmm.duckdb, or move the file "
        "away if it is a damaged warehouse.")


def check_disk_space(output: Path, warehouse: Path, data: Path | None) -> None:
    """Enough free space on the disks of the output folder and the warehouse for one run."""
    for folder in dict.fromkeys((output, warehouse.parent)):
        need = space_need(folder, warehouse, data)
        if not need.enough:
            raise disk_full_error(folder, need.needed, need.free)


def check_run_targets(output: Path, warehouse: Path, data: Path | None) -> None:
    """Every preflight check, in the order a user fixes them."""
    check_output_folder_usable(output)
    check_warehouse_file(warehouse)
    check_disk_space(output, warehouse, data)


def is_disk_full_message(text: str) -> bool:
    """Whether a library's error text (DuckDB's, the OS's) says a write ran out of space. DuckDB
    reports a failed write and then, on cleanup, a rollback with no transaction: both mean it."""
    lowered = text.lower()
    return any(marker in lowered for marker in (
        "no space left on device", "disk quota exceeded", "cannot rollback - no transaction is active",
        "could not write all bytes"))

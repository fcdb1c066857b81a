"""One run at a time per warehouse: an OS file lock beside the DuckDB file, held for the whole run,
with a note of who holds it so a refused run can name the other run and when it started.

The lock is the operating system's (`filelock`): it is released when its holder ends, however it
ends, so a run killed with -9 never leaves the warehouse locked.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from cmmm_pipeline.core.errors import CmmmError
from cmmm_pipeline.publish.preflight import not_writable_error

LOCK_RULE = "warehouse-locked"


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    started: str
    """UTC, ISO 8601 to the second."""
    pid: int
    host: str


def lock_path(database: str) -> Path:
    return Path(f"{database}.lock")


def holder_path(database: str) -> Path:
    return Path(f"{database}.lock.json")


def read_holder(database: str) -> LockHolder | None:
    try:
        data = json.loads(holder_path(database).read_text(encoding="utf-8"))
        return LockHolder(str(data["run_id"]), str(data["started"]), int(data["pid"]), str(data["host"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def locked_error(database: str, holder: LockHolder | None, waited: float) -> CmmmError:
    who = (f"run {holder.run_id} (started {holder.started} UTC, process {holder.pid} on {holder.host})"
           if holder else "another run")
    return CmmmError(LOCK_RULE, database,
                     f"{who} is writing this warehouse; runs on one warehouse never interleave "
                     f"(waited {waited:g} s).",
                     "wait for that run to finish and start this one again (the Dagster UI queues runs by itself), "
                     "or give this run its own --warehouse and --output.")


class WarehouseLock:
    """Acquire with `acquire(run_id)`; release with `release()`. Not reentrant across runs."""

    def __init__(self, database: str, timeout: float) -> None:
        self.database = database
        self.timeout = timeout
        self._lock = FileLock(str(lock_path(database)), timeout=timeout, thread_local=False, is_singleton=False)

    def acquire(self, run_id: str) -> None:
        for path in (lock_path(self.database), holder_path(self.database)):
            _refuse_foreign(path)
        try:
            lock_path(self.database).parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise locked_error(self.database, read_holder(self.database), self.timeout) from None
        except OSError as exc:
            raise not_writable_error(lock_path(self.database), exc) from None
        holder = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat(sep=" ")}
        try:
            _write_no_follow(holder_path(self.database), json.dumps(holder).encode("utf-8"))
        except OSError as exc:
            self._lock.release(force=True)
            raise not_writable_error(holder_path(self.database), exc) from None

    def release(self) -> None:
        if self._lock.is_locked:
            holder = holder_path(self.database)
            if os.path.lexists(holder) and stat.S_ISREG(holder.lstat().st_mode):
                holder.unlink()
            self._lock.release(force=True)


def _refuse_foreign(path: Path) -> None:
    """The lock and its note are regular files the pipeline made: a link or anything else there is
    not ours, and is neither followed nor replaced."""
    if os.path.lexists(path) and not stat.S_ISREG(path.lstat().st_mode):
        kind = f"a symbolic link to {os.readlink(path)[:200]!r}" if path.is_symlink() else "not a regular file"
        raise CmmmError("output-not-ours", str(path),
                        f"is {kind}, which the pipeline did not create; it is neither followed nor replaced, so "
                        "nothing was run.",
                        "remove that entry (the lock files are recreated), or choose another --warehouse, then run "
                        "again.")


def _write_no_follow(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)

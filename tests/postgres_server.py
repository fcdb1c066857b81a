"""A throwaway PostgreSQL 15 server for the tests and benchmarks that need Dagster's production
instance: Debian's `postgresql-15` (/usr/lib/postgresql/15/bin) initialised in a temporary folder,
listening on 127.0.0.1 on a free port with password authentication, stopped by its own pid file and
deleted at the end. Run as root (as CI does), the server runs as the `postgres` user."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT_SECONDS = 60
DATABASE = "dagster"
USER = "cmmm_test"


class PostgresUnavailable(RuntimeError):
    """Why no local server can run here: the caller skips, or says so."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root without `runuser`: cannot start PostgreSQL as an unprivileged user")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no `postgres` user to run the server as") from None
    return [runuser, "-u", "postgres", "--"]


@dataclass(frozen=True)
class PostgresServer:
    root: Path
    data: Path
    port: int
    password: str
    run_as: tuple[str, ...]

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.run_as, str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args],
                              capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS + 30, check=False)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root / 'socket'}"
        done = self._pg_ctl("-l", str(self.root / "server.log"), "-w", "-t", str(START_TIMEOUT_SECONDS),
                            "-o", options, "start")
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace") if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}{log[-2000:]}")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def env(self) -> dict[str, str]:
        """The variables `deploy/dagster.yaml` reads."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": DATABASE,
                "DAGSTER_PG_USERNAME": USER, "DAGSTER_PG_PASSWORD": self.password}

    def connect(self, database: str = DATABASE):  # noqa: ANN201 - a psycopg2 connection
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password,
                                dbname=database, connect_timeout=10)


@contextmanager
def local_postgres() -> Iterator[PostgresServer]:
    """A running server with an empty `DATABASE`; raises `PostgresUnavailable` where none can start."""
    if not (PG_BIN / "initdb").is_file():
        raise PostgresUnavailable(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing; Debian package "
                                  "postgresql-15)")
    run_as = tuple(_run_as())
    root = Path(tempfile.mkdtemp(prefix="cmmm-pg-"))  # not under pytest's root-only tmp: postgres must reach it
    try:
        root.chmod(0o755)
        (root / "socket").mkdir()
        password = secrets.token_hex(16)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n", encoding="utf-8")
        if run_as:
            shutil.chown(root, user="postgres")
            shutil.chown(root / "socket", user="postgres")
            shutil.chown(pwfile, user="postgres")
        server = PostgresServer(root, root / "data", free_port(), password, run_as)
        init = subprocess.run([*run_as, str(PG_BIN / "initdb"), "-D", str(server.data), "-U", USER, "-E", "UTF8",
                               "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"],
                              capture_output=True, text=True, timeout=120, check=False)
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb could not initialise a cluster: {(init.stderr or init.stdout)[-500:]}")
        try:
            server.start()
        except RuntimeError as error:
            raise PostgresUnavailable(f"PostgreSQL could not start on 127.0.0.1:{server.port}: "
                                      f"{str(error)[-500:]}") from None
        try:
            con = server.connect("postgres")
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f"CREATE DATABASE {DATABASE}")
            con.close()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

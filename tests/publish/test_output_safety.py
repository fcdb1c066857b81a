"""The pipeline deletes only what it created and never follows a link out of its folders; an output
folder, warehouse or data path that cannot take a run is refused with a rule before anything is
written. Every deleting path (pruning, repair, the cleanup of an earlier attempt and of a failed
write) is tried against symbolic links, hard links and foreign files, with a stand-in folder that
holds copies of system-like files (never a system folder)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cmmm_pipeline.cli import main
from cmmm_pipeline.data import warehouse
from cmmm_pipeline.data.ingest import read_data_file
from cmmm_pipeline.core.errors import DataError
from cmmm_pipeline.publish import outputs, preflight
from tests.publish.test_publication import first_run, publish_b, stage_run_b, world  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]


def stand_in(base: Path) -> Path:
    """A folder like /etc: files, a sub-folder and a nested file, all of which must survive."""
    folder = base / "stand_in_etc"
    (folder / "ssl").mkdir(parents=True)
    (folder / "cron.d").mkdir()
    (folder / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (folder / "hosts").write_text("127.0.0.1 localhost\n")
    (folder / "ssl" / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (folder / "cron.d" / "job").write_text("* * * * * true\n")
    return folder


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


def run_folders(out: Path) -> set[str]:
    return {p.name for p in (out / outputs.RUNS_DIR).iterdir()}


# --- symlinked entries are refused and nothing is touched ------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("entry", [outputs.RUNS_DIR, outputs.CURRENT, "estimates.csv", "report.html"])
def test_a_symlinked_entry_it_did_not_create_is_refused_and_nothing_is_touched(world: Path, entry: str) -> None:
    out = world / "out"
    target = stand_in(world)
    before = digest(target)
    path = out / entry
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)
    os.symlink(target if entry in (outputs.RUNS_DIR, outputs.CURRENT) else target / "passwd", path)
    with pytest.raises(outputs.PublicationError) as refused:
        publish_b(world)
    assert refused.value.rule == "output-not-ours"
    assert str(path) in str(refused.value) and "symbolic link" in str(refused.value)
    assert digest(target) == before
    assert os.readlink(path) == str(target if entry in (outputs.RUNS_DIR, outputs.CURRENT) else target / "passwd")
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        assert warehouse.published_run(con).run_id != "run-b"


@pytest.mark.parametrize("name", outputs.USER_FILES)
def test_every_published_name_refuses_a_link_it_did_not_create(tmp_path: Path, name: str) -> None:
    """Every name a publication can replace or remove (feedback.csv and dag_suggestions.csv included):
    a link of someone else's there, to a stand-in folder's file, is refused before anything is touched."""
    target = stand_in(tmp_path)
    before = digest(target)
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(target / "passwd", out / name)
    with pytest.raises(outputs.PublicationError) as refused:
        outputs.check_output_folder(out)
    assert refused.value.rule == "output-not-ours" and "symbolic link" in str(refused.value)
    assert digest(target) == before and os.readlink(out / name) == str(target / "passwd")


@pytest.mark.slow
def test_the_reported_attack_a_symlinked_runs_folder_leaves_its_target_whole(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture) -> None:
    """`cmmm run --output out; rm -rf out/runs; ln -s /some/folder out/runs; cmmm run --output out`
    emptied /some/folder; now the second run is refused with the rule and the folder is whole."""
    from tests.publish.test_publication import fast_sample_config

    config = fast_sample_config(tmp_path / "config")
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--output", str(out)]) == 0
    shutil.rmtree(out / outputs.RUNS_DIR)
    target = stand_in(tmp_path)
    before = digest(target)
    os.symlink(target, out / outputs.RUNS_DIR)
    capsys.readouterr()
    assert main(["run", "--config", str(config), "--output", str(out)]) != 0
    err = capsys.readouterr().err
    assert "[output-not-ours]" in err and str(out / outputs.RUNS_DIR) in err
    assert digest(target) == before


# --- pruning and cleanup remove only our own folders -----------------------------------------------

@pytest.mark.slow
def test_pruning_removes_our_old_run_folders_and_nothing_foreign(world: Path) -> None:
    out = world / "out"
    runs = out / outputs.RUNS_DIR
    target = stand_in(world)
    before = digest(target)
    os.symlink(target, runs / "0a000000-0000-4000-8000-00000000dead")  # a link named like a run
    (runs / "user-notes").mkdir()                                      # a foreign folder
    (runs / "user-notes" / "keep.txt").write_text("mine\n")
    (runs / "1b000000-0000-4000-8000-000000000001").mkdir()           # named like a run, no marker
    (runs / "1b000000-0000-4000-8000-000000000001" / "data.csv").write_text("a,b\n")
    (runs / "README.txt").write_text("a user's file\n")
    [first] = [p for p in runs.iterdir() if outputs.is_own_run_folder(p)]
    os.link(target / "hosts", first / "hosts-hardlink")               # a foreign name in our folder
    hard = world / "hard.txt"
    hard.write_text("hard-linked content\n")
    os.link(hard, first / "estimate_changes.csv.user")

    for i in range(3):
        stage_run_b(out / "cmmm.duckdb") if i else None
        with duckdb.connect(str(out / "cmmm.duckdb")) as con:
            from cmmm_pipeline.core.loading import load_config
            import datetime as dt

            outputs.publish_run(con, out, load_config(world / "config" / "config.yaml"), f"run-{i}",
                                dt.datetime(2026, 1, 5 + i, 6, 0), staging="staging_b", keep=1)

    assert digest(target) == before
    assert (runs / "user-notes" / "keep.txt").read_text() == "mine\n"
    assert (runs / "1b000000-0000-4000-8000-000000000001" / "data.csv").read_text() == "a,b\n"
    assert (runs / "README.txt").read_text() == "a user's file\n"
    assert (runs / "0a000000-0000-4000-8000-00000000dead").is_symlink()
    assert hard.read_text() == "hard-linked content\n"
    # The first run's folder lost every file a run writes but keeps the two foreign names, so it stays.
    assert sorted(p.name for p in first.iterdir()) == ["estimate_changes.csv.user", "hosts-hardlink"]
    ours = [p.name for p in runs.iterdir() if outputs.is_own_run_folder(p)]
    assert ours == ["run-2"]
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        assert outputs.verify_publication(con, out).ok


@pytest.mark.slow
def test_a_folder_named_like_this_run_but_not_ours_is_refused_not_removed(world: Path) -> None:
    runs = world / "out" / outputs.RUNS_DIR
    (runs / "run-b").mkdir()
    (runs / "run-b" / "thesis.tex").write_text("years of work\n")
    with pytest.raises(outputs.PublicationError) as refused:
        publish_b(world)
    assert refused.value.rule == "output-not-ours"
    assert (runs / "run-b" / "thesis.tex").read_text() == "years of work\n"


@pytest.mark.slow
def test_a_users_regular_file_at_a_published_name_is_set_aside_never_deleted(world: Path) -> None:
    out = world / "out"
    (out / "report.html").unlink()
    (out / "report.html").write_text("<p>my own report</p>\n")
    publish_b(world)
    assert (out / "report.html.before-links").read_text() == "<p>my own report</p>\n"
    assert os.readlink(out / "report.html") == "current/report.html"
    with duckdb.connect(str(out / "cmmm.duckdb"), read_only=True) as con:
        assert outputs.verify_publication(con, out).ok


def test_an_empty_folder_named_like_a_run_is_removed_and_a_link_never_followed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".run-x.partial").mkdir()
    assert outputs._remove_run_folder(runs / ".run-x.partial") and not (runs / ".run-x.partial").exists()
    target = stand_in(tmp_path)
    os.symlink(target, runs / "run-y")
    assert outputs._remove_run_folder(runs / "run-y") is False
    assert (runs / "run-y").is_symlink() and (target / "passwd").is_file()


def test_the_lock_refuses_a_symlinked_lock_file(tmp_path: Path) -> None:
    from resources.lock import WarehouseLock

    target = stand_in(tmp_path)
    before = digest(target)
    database = tmp_path / "cmmm.duckdb"
    os.symlink(target / "passwd", f"{database}.lock.json")
    with pytest.raises(Exception) as refused:
        WarehouseLock(str(database), timeout=0).acquire("0f000000-0000-4000-8000-000000000001")
    assert "[output-not-ours]" in str(refused.value)
    assert digest(target) == before


def test_the_writability_probe_never_removes_a_link_planted_at_its_name(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    target = stand_in(tmp_path)
    before = digest(target)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(preflight.secrets, "token_hex", lambda _: "planted")
    os.symlink(target / "passwd", out / ".cmmm-probe-planted")  # the probe's next name, taken by a link
    with pytest.raises(preflight.OutputError) as refused:
        preflight.check_output_folder_usable(out)
    assert refused.value.rule == "output-not-writable"
    assert (out / ".cmmm-probe-planted").is_symlink() and digest(target) == before
    os.unlink(out / ".cmmm-probe-planted")
    preflight.check_output_folder_usable(out)  # its own probe is made and removed
    assert list(out.iterdir()) == [] and digest(target) == before


def test_replacing_current_never_removes_a_link_planted_at_its_temporary_name(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = stand_in(tmp_path)
    before = digest(target)
    monkeypatch.setattr(outputs.secrets, "token_hex", lambda _: "planted")
    planted = tmp_path / f".{outputs.CURRENT}.planted.tmp"
    os.symlink(target, planted)
    with pytest.raises(FileExistsError):
        outputs._replace_symlink(tmp_path / outputs.CURRENT, "runs/run-a")
    assert planted.is_symlink() and os.readlink(planted) == str(target) and digest(target) == before
    assert not os.path.lexists(tmp_path / outputs.CURRENT)


# --- unusable output folders, warehouses and data files: a rule each, nothing written ------------

def refused(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    from tests.publish.test_publication import fast_sample_config  # noqa: F401

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def test_an_output_path_that_is_a_file_is_refused_with_a_rule(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "out"
    target.write_text("not a folder\n")
    err = refused(["run", "--output", str(target)], capsys)
    assert "[output-not-a-folder]" in err and str(target) in err and "Traceback" not in err
    assert target.read_text() == "not a folder\n"


def test_a_garbage_warehouse_is_refused_and_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    garbage = tmp_path / "cmmm.duckdb"
    garbage.write_bytes(bytes(range(256)) * 40)
    err = refused(["run", "--output", str(tmp_path / "out"), "--warehouse", str(garbage)], capsys)
    assert "[warehouse-invalid]" in err and "not a DuckDB database" in err
    assert garbage.read_bytes() == bytes(range(256)) * 40
    assert not (tmp_path / "out" / outputs.RUNS_DIR).exists()


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_a_data_path_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "weekly.csv"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(DataError) as refused_read:
        read_data_file(path)
    words = {"fifo": "named pipe (FIFO)", "device": "a device", "folder": "a folder"}[kind]
    assert refused_read.value.rule == "data-not-a-file" and words in str(refused_read.value)


def test_cmmm_run_names_a_fifo_as_data_without_blocking(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((REPO / "cmmm_pipeline" / "sample" / "config.yaml").read_text(encoding="utf-8"))
    os.mkfifo(tmp_path / "weekly.csv")  # opening it for reading would block forever
    code = main(["run", "--config", str(config), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "[data-not-a-file]" in err and "named pipe" in err and "no such file" not in err


def test_disk_space_bound_counts_the_warehouse_and_the_data(tmp_path: Path) -> None:
    warehouse_file = tmp_path / "w.duckdb"
    warehouse_file.write_bytes(b"x" * 1000)
    data = tmp_path / "d.csv"
    data.write_bytes(b"y" * 100)
    need = preflight.space_need(tmp_path, warehouse_file, data)
    assert need.needed == preflight.MIN_FREE_BYTES + 2 * 1000 + 16 * 100
    assert preflight.is_disk_full_message("TransactionException: cannot rollback - no transaction is active")
    assert preflight.is_disk_full_message("IO Error: Could not write file: No space left on device")
    assert not preflight.is_disk_full_message("Binder Error: column x not found")


# --- small and read-only filesystems (mounted for the test where the machine allows it) ----------

def _mount(point: Path, options: str) -> bool:
    point.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
    return done.returncode == 0


@pytest.fixture()
def mounted(tmp_path: Path):  # type: ignore[no-untyped-def]
    points: list[Path] = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        if not _mount(point, options):
            pytest.skip("cannot mount a small tmpfs here (needs root and mount)")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_is_named_with_what_is_needed_and_free(mounted, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    small = mounted("small", "size=200k")
    err = refused(["run", "--output", str(small / "out")], capsys)
    assert "[disk-full]" in err and "KB free" in err and "a run needs about" in err and "MB" in err
    assert sorted(p.name for p in (small / "out").iterdir()) == []  # only the (empty) folder it was asked for


def test_a_read_only_output_folder_is_refused_before_the_lock(mounted, capsys: pytest.CaptureFixture) -> None:  # type: ignore[no-untyped-def]
    readonly = mounted("ro", "ro,size=1m")
    err = refused(["run", "--output", str(readonly)], capsys)
    assert "[output-not-writable]" in err and "Read-only file system" in err and "cmmm.duckdb.lock" not in err


@pytest.mark.slow
def test_a_folder_without_write_permission_is_refused_for_a_user_without_roots_override() -> None:
    import tempfile

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root to drop to an unprivileged user")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if subprocess.run([*drop, "-c", "import cmmm_pipeline.cli"], capture_output=True, env=env,
                      cwd="/", timeout=120).returncode != 0:
        pytest.skip("the checkout or the venv is not readable by an unprivileged user here")
    base = Path(tempfile.mkdtemp(prefix="cmmm-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        out = base / "out"
        out.mkdir(mode=0o555)
        os.chmod(out, 0o555)
        home = base / "home"
        home.mkdir()
        os.chmod(home, 0o777)
        script = "import sys; from cmmm_pipeline.cli import main; sys.exit(main(sys.argv[1:]))"
        done = subprocess.run([*drop, "-c", script, "run", "--output", str(out)], capture_output=True, text=True,
                              timeout=300, cwd=str(home), env={**env, "HOME": str(home)})
        assert done.returncode == 2, done.stderr
        assert "[output-not-writable]" in done.stderr and "Permission denied" in done.stderr
        assert "Traceback" not in done.stderr and list(out.iterdir()) == []
    finally:
        shutil.rmtree(base)

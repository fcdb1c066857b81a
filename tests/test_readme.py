"""The README is a short front door whose quoted figures are what the pipeline prints."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block(name: str) -> str:
    match = re.search(rf"<!-- {name} -->\n```\n(.*?)\n```\n<!-- /{name} -->", README, re.S)
    assert match, f"README lacks the {name} block"
    return match.group(1)


def test_the_readme_is_a_short_front_door_whose_links_resolve() -> None:
    assert len(README.encode("utf-8")) <= 15_000
    for target in re.findall(r"\]\(((?!https?://|#)[^)#]+)", README):
        assert (ROOT / target).exists(), target
    assert README.index("pip install -e .") < README.index("pip install -e '.[test]'") < README.index("## ")


def test_the_quoted_sample_summary_is_what_the_run_prints(sample_run: Path, sample_truth: pd.DataFrame) -> None:
    from cmmm_pipeline.data import warehouse
    from cmmm_pipeline.run import summary_table

    with duckdb.connect(str(sample_run / "cmmm.duckdb"), read_only=True) as con:
        published = warehouse.read_table(con, "estimates", warehouse.PUBLISHED)
    assert _block("sample-summary") == summary_table(published)

    # The sentences under the table quote the same run and the simulator's truth.
    rows = published.set_index(["channel", "effect"])
    truth = sample_truth.set_index(["channel", "effect"])["roi"]
    tv_total = rows.loc[("tv", "total")]
    quoted = (f"TV's total ROI, {tv_total['roi']:.3f}, is within 1% of the truth ({truth[('tv', 'total')]:.3f}); "
              f"the naive regression's\n  {tv_total['naive_roi']:.3f} misses TV's halo through search (TV's indirect "
              f"effect, {rows.loc[('tv', 'indirect'), 'roi']:.3f}).")
    assert quoted in README
    assert tv_total["roi"] == pytest.approx(truth[("tv", "total")], rel=0.01)
    extrapolated = sorted(c for (c, e), r in rows.iterrows() if e == "total" and r["roi_support"] == "extrapolated")
    assert extrapolated == ["digital", "email", "search"]
    assert "Digital, email and search are\n  always on in the sample" in README


def signals_ignored(pid: int) -> set[int]:
    """The signals a process ignores (SigIgn in /proc/<pid>/status)."""
    mask = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("SigIgn:")).split()[1], 16)
    return {n for n in range(1, 65) if mask & (1 << (n - 1))}


def group_members(pgid: int) -> list[int]:
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


def _wait_for_exec(pid: int, program: str, timeout_s: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}/cmdline").read_text().split("\0")[0] != program:
        assert time.monotonic() < deadline, f"{pid} never became {program}"
        time.sleep(0.05)


def background_lines() -> tuple[str, str, str]:
    """The README's way to run `dagster dev` in the background: the start line, the line saving its pid
    to dagster.pid, and the stop (the block's remaining lines, one shell script)."""
    match = re.search(r"<!-- dagster-background -->\n```bash\n(.*?)\n```\n<!-- /dagster-background -->", README, re.S)
    assert match, "README lacks the dagster-background block"
    start, save, *stop = match.group(1).splitlines()
    assert ".venv/bin/dagster dev -w workspace.yaml" in start and "dagster.pid" in save
    return start, save, "\n".join(stop)


def test_the_quoted_background_start_keeps_sigterm_and_the_quoted_stop_ends_the_group(tmp_path: Path) -> None:
    """The README's lines, run by non-interactive shells as scripts would run them, with a stand-in for
    `dagster dev` that leads a child as it leads its code servers: the process leads its own group,
    neither SIGINT nor SIGTERM is ignored (`dagster dev` maps SIGTERM to whatever SIGINT does), the
    quoted stop signals the leader while its child still runs (`dagster dev` restarts a code server that
    exits before it has stopped its daemon), then ends what the leader left. The same start without the
    reset leaves SIGINT ignored: the case in which `dagster dev` ignored SIGTERM."""
    import os
    import signal
    import subprocess
    import time

    start, save, stop = background_lines()
    # On SIGTERM the stand-in takes half a second (`dagster dev` stops its webserver and daemon first), notes
    # whether its child is still running, then exits and leaves the child behind.
    stand_in = "bash -c \"trap 'sleep 0.5; kill -0 \\$! && echo alone > leader_stopped; exit' TERM; sleep 600 & wait\""
    script = "\n".join([start.replace(".venv/bin/dagster dev -w workspace.yaml", stand_in), save])
    subprocess.run(["bash", "-c", script], cwd=tmp_path, check=True, timeout=30)
    pid = int((tmp_path / "dagster.pid").read_text())
    try:
        # `$!` is known before setsid and env have exec'd the command: a group led by the pid, with the
        # stand-in's child in it, means both have (and the trap is set).
        deadline = time.monotonic() + 10
        while len(group_members(pid)) < 2:
            assert time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.05)
        assert os.getpgid(pid) == pid  # setsid did not fork: the pid is the group's id
        assert not {signal.SIGINT, signal.SIGTERM} & signals_ignored(pid)
        subprocess.run(["bash", "-c", stop], cwd=tmp_path, check=True, timeout=30)
        assert (tmp_path / "leader_stopped").exists(), "the stop signalled the leader's child along with it"
        assert (tmp_path / "leader_stopped").read_text() == "alone\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_members(pid):
            time.sleep(0.1)
        assert not group_members(pid)
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    plain = subprocess.run(["bash", "-c", "sleep 600 > /dev/null 2>&1 &\necho $!"], capture_output=True, text=True,
                           check=True, timeout=30)
    bare = int(plain.stdout.split()[-1])
    try:
        _wait_for_exec(bare, "sleep")
        assert signal.SIGINT in signals_ignored(bare)
    finally:
        os.kill(bare, signal.SIGKILL)

"""SIGTERM and SIGHUP end a CLI run like Ctrl-C (SIGINT to the process group): exit 128 + signal, no
worker process left, committed work kept, no temporary file left; a re-run resumes to the table of an
uninterrupted run.

The run is ``diverseg score --workers 2`` in its own session (its process group holds the pool's
workers), slowed down by the ``slowtest`` scorer so that the signal lands mid-run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import mixed_folder, rows_of

from diverseg_hf.storage import ScoreTable

TESTS = Path(__file__).resolve().parent
DRIVER = """
import sys
from diverseg_hf.cli import main
from diverseg_hf.scoring import register_scorer
register_scorer("slowtest", "pipeline_helpers:SlowScorer")
sys.exit(main(["score", sys.argv[1], "--out", sys.argv[2], "--scorers", "blockiness,slowtest", "--unit-size", "3",
               "--workers", sys.argv[3]]))
"""

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def start(src: Path, out: Path, log: Path, workers: int = 2) -> subprocess.Popen:
    """``diverseg score`` in a new session (stderr to ``log``: a pipe would stay open in orphaned workers)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(out), str(workers)], env=env,
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)


def wait_for_first_unit(proc: subprocess.Popen, out: Path, log: Path) -> None:
    deadline = time.monotonic() + 120
    while not list((out / "units").glob("*.parquet")) if (out / "units").exists() else True:
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "no unit committed in 120 s"
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "message"), [(signal.SIGTERM, "terminated (SIGTERM)"),
                                                 (signal.SIGHUP, "terminated (SIGHUP)"),
                                                 (signal.SIGINT, "interrupted")], ids=["SIGTERM", "SIGHUP", "Ctrl-C"])
def test_signal_ends_the_whole_run_and_a_rerun_resumes(tmp_path, signum, message):
    mixed_folder(tmp_path / "src", n_good=30)
    out = tmp_path / "scores"
    log = tmp_path / "stderr"
    proc = start(tmp_path / "src", out, log)
    try:
        wait_for_first_unit(proc, out, log)
        assert len(group_members(proc.pid)) >= 3  # the driver and its two workers
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C in a terminal: the whole process group
        else:
            proc.send_signal(signum)  # to the main process only, as `kill PID` does
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30  # the workers are ended before the main process exits; allow reaping
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = group_members(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left (none, unless the test fails)
        proc.wait()
    assert not left, f"worker processes left behind: {left}"
    assert proc.returncode == 128 + signum, log.read_text()[-2000:]
    assert f"diverseg score: {message}" in log.read_text()
    assert not ScoreTable.open(out).complete and list((out / "units").glob("*.parquet"))  # committed work kept
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]

    for target in (out, tmp_path / "clean"):
        proc = start(tmp_path / "src", target, log)
        assert proc.wait(timeout=300) == 0, log.read_text()[-2000:]
    assert rows_of(ScoreTable.open(out).read()) == rows_of(ScoreTable.open(tmp_path / "clean").read())

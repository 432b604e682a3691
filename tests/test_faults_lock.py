"""Two runs writing one folder at once: the second refuses in one line naming the holder; a lock left by a
killed run is not in force (issue 20 item 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf import cli
from diverseg_hf.files import LOCK_NAME, folder_lock
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import DatasetDir

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

#: Holds the lock of argv[1] until its standard input closes.
HOLD = """
import sys
from diverseg_hf.files import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def run(argv: list, capsys) -> tuple[int, list[str]]:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip() and "%|" not in line]


@pytest.fixture
def holder():
    """Start a process holding the lock of a folder; yields a function folder -> the process."""
    procs = []

    def hold(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def selection(tmp_path) -> Path:
    write_files(tmp_path / "src", good_images(3))
    score(str(tmp_path / "src"), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel")
    return tmp_path / "sel"


def test_a_second_writer_refuses_naming_the_holder_and_a_killed_holder_frees_the_folder(selection, tmp_path,
                                                                                       capsys, holder):
    ds = tmp_path / "ds"
    proc = holder(ds)
    argv = ["publish", selection, "--out", ds, "--name", "mine"]
    code, lines = run(argv, capsys)
    assert code == 2 and len(lines) == 1, lines
    holder_line = f"diverseg publish: error: {ds} is being written by another run (pid {proc.pid}, since "
    assert lines[0].startswith(holder_line), lines
    assert lines[0].endswith("let it finish (or stop it), then run again"), lines
    assert os.listdir(ds) == [LOCK_NAME]  # nothing written
    proc.kill()
    proc.wait()
    assert (ds / LOCK_NAME).exists()  # the killed run's lock file is left, but not in force
    assert run(argv, capsys)[0] == 0
    assert not (ds / LOCK_NAME).exists() and (ds / "README.md").exists()


def test_curate_and_score_take_the_lock_of_their_folders(selection, tmp_path, capsys, holder):
    holder(tmp_path / "ds")
    code, lines = run(["curate", tmp_path / "src", "--out", tmp_path / "ds", "--name", "mine"], capsys)
    assert code == 2 and "is being written by another run" in lines[0], lines
    holder(tmp_path / "scores")
    code, lines = run(["score", tmp_path / "src", "--out", tmp_path / "scores", "--overwrite"], capsys)
    assert code == 2 and "is being written by another run" in lines[0], lines
    assert (tmp_path / "scores" / "scores.json").exists()  # --overwrite was refused before it cleared anything


def test_the_same_process_may_nest_and_the_lock_file_goes_with_the_last_exit(tmp_path):
    with folder_lock(tmp_path / "ds"), folder_lock(tmp_path / "ds"):
        assert (tmp_path / "ds" / LOCK_NAME).read_text().startswith(f"pid {os.getpid()}, since ")
    assert not (tmp_path / "ds").exists()  # made by the lock, left empty: removed
    (tmp_path / "kept").mkdir()
    with folder_lock(tmp_path / "kept"):
        pass
    assert os.listdir(tmp_path / "kept") == []


def test_two_publish_processes_at_once_never_crash(selection, tmp_path):
    """Both start together; each ends with 0, or with the one-line refusal (2); the folder is complete."""
    ds = tmp_path / "ds"
    for trial in range(3):
        argv = [sys.executable, "-m", "diverseg_hf", "publish", str(selection), "--out", str(ds), "--name",
                f"c{trial}", "--format", "parquet,webdataset"]
        procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT) for _ in range(2)]
        for proc in procs:
            err = proc.communicate(timeout=300)[1]
            lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
            assert "Traceback" not in err, err
            if proc.returncode:
                assert proc.returncode == 2 and len(lines) == 1, err
                assert "is being written by another run" in lines[0], err
        assert any(proc.returncode == 0 for proc in procs) or cli.main(argv[3:]) == 0
    assert not (ds / LOCK_NAME).exists()
    assert DatasetDir(ds).config_names() == ["c0", "c1", "c2"] and not DatasetDir(ds).incomplete_publish()

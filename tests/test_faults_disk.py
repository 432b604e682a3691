"""A full, read-only or forbidden disk ends a run in one line, exit 1, with no temporary file left, and the
same command finishes once there is space (issue 20 item 10).

The full disk is simulated in-process (``fsync`` failing with ENOSPC, a tar whose writes fail) and, where
this machine lets root mount a tmpfs, made real: a small tmpfs that fills up, and one mounted read-only
(root ignores permission bits, so a read-only mount is the honest unwritable folder).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_helpers import run_cli, write_files
from sr_folder import phase_inputs

from diverseg_hf.errors import disk_problem
from diverseg_hf.files import TEMP_GLOB
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage.shards import TarShardWriter


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    """A source folder, its score table and selection, a published folder."""
    return phase_inputs(tmp_path, published=1)


def commands(inputs: dict[str, Path], out: Path) -> dict[str, list]:
    """Every writing command, writing into ``out``."""
    return {
        "score": ["score", inputs["src"], "--out", out / "scores"],
        "select": ["select", inputs["scores"], "--out", out / "sel"],
        "publish": ["publish", inputs["sel"], "--out", out / "ds", "--name", "mine", "--format", "parquet,webdataset"],
        "curate": ["curate", inputs["src"], "--out", out / "cur", "--name", "mine"],
        "export": ["export", inputs["pub"], "--config", "I", "--out", out / "exp", "--quiet"],
        "calibrate": ["calibrate", inputs["src"], "--out", out / "basis", "--qualities", "100,50"],
        "blockiness": ["blockiness", inputs["src"], "-o", out / "b.tsv"],
        "sample": ["sample", out / "demo", "--scenes", "2", "--compressed", "1"],
    }


def temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob(TEMP_GLOB))


@pytest.mark.parametrize("command", ["score", "select", "publish", "curate", "export", "calibrate", "blockiness",
                                     "sample"])
def test_no_space_at_fsync_is_one_line_and_leaves_no_temp_file(inputs, tmp_path, capsys, monkeypatch, command):
    out = tmp_path / "out"
    argv = commands(inputs, out)[command]
    real_fsync = os.fsync

    def full(fd):
        if str(out) in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    code, lines = run_cli(argv, capsys)
    assert code == 1, lines
    assert len(lines) == 1 and lines[0].startswith(f"diverseg {command}: error: No space left on device; "
                                                   "free some space and run the command again"), lines
    assert not temps(out)
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed: the same command finishes
    assert run_cli(argv, capsys)[0] == 0
    assert not temps(out)


class _FullFile(io.FileIO):
    """A file on a full disk: every write fails."""

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)


def test_tar_writer_on_a_full_disk_raises_once_and_removes_its_temp_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tarfile, "bltn_open", lambda name, mode: _FullFile(name, mode.replace("b", "")))
    with pytest.raises(OSError) as caught, TarShardWriter(tmp_path / "s.tar") as tar:
        tar.write({"__key__": "a", "png": b"x" * 2000})
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.__context__ is None  # no second traceback chained from the abort
    assert list(tmp_path.iterdir()) == []


def test_disk_problem_names_the_file_and_what_to_do():
    assert disk_problem(OSError(errno.EROFS, "Read-only file system", "/ds/x")) == \
        "/ds/x: Read-only file system; choose a writable output folder"
    assert disk_problem(OSError(errno.EACCES, "Permission denied", "/ds")).startswith("/ds: Permission denied; check")
    chained = RuntimeError("worker failed")
    chained.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert disk_problem(chained) == "Disk quota exceeded; free some space and run the command again"
    assert disk_problem(OSError(errno.ENOENT, "No such file")) is None


@pytest.fixture
def tmpfs(tmp_path):
    """A mount point and a function that (re)mounts a tmpfs there with the given options (skip where root
    cannot mount)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def mount(options: str) -> Path:
        args = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)]
        if mounted:
            args = ["mount", "-o", f"remount,{options}", str(mnt)]
        proc = subprocess.run(args, capture_output=True, text=True)
        if proc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
        mounted.append(options)
        return mnt

    yield mount
    if mounted:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_really_full_disk_then_freed(tmp_path, tmpfs, capsys):
    noise = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    files = {}
    for i in range(4):
        buf = io.BytesIO()
        Image.fromarray(np.roll(noise, i, axis=0)).save(buf, "PNG")
        files[f"n{i}.png"] = buf.getvalue()  # about 200 kB each: more than the disk holds
    write_files(tmp_path / "src", files)
    score(str(tmp_path / "src"), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel")
    out = tmpfs("size=400k") / "ds"
    argv = ["publish", tmp_path / "sel", "--out", out, "--name", "mine", "--format", "parquet,webdataset",
            "--shard-size", "300kB"]
    code, lines = run_cli(argv, capsys)
    assert code == 1 and len(lines) == 1, lines
    assert "No space left on device; free some space and run the command again" in lines[0], lines
    assert not temps(out)
    tmpfs("size=8m")
    assert run_cli(argv, capsys)[0] == 0
    assert not temps(out) and len(list((out / "wds").rglob("*.tar"))) >= 2


def test_a_read_only_output_folder_in_every_writing_command(inputs, tmpfs, capsys):
    mnt = tmpfs("size=1m,ro")
    for command, argv in commands(inputs, mnt).items():
        code, lines = run_cli(argv, capsys)
        assert code == 1, (command, lines)
        assert len(lines) == 1 and lines[0].startswith(f"diverseg {command}: error: {mnt}/"), lines
        assert lines[0].endswith("Read-only file system; choose a writable output folder"), lines
    assert list(mnt.iterdir()) == []

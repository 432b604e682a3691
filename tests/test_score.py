"""Phase 1: the score table is exact, records bad images with reasons, and resumes exactly once."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from image_zoo import INVALID, VALID, textured
from pipeline_helpers import FakeGpuScorer, encode, good_images, mixed_folder, rows_of, write_files
from shared_data import SHARED_IMAGES

from diverseg_hf import __version__
from diverseg_hf.decode.images import decode_rgb, probe
from diverseg_hf.errors import DiversegError
from diverseg_hf.quality.blockiness import score_image
from diverseg_hf.score import score
from diverseg_hf.scoring.run import run_scorer, score_unit
from diverseg_hf.scoring.specs import scorer_specs
from diverseg_hf.sources import open_source
from diverseg_hf.storage import ScoreTable

SHARED = SHARED_IMAGES
TESTS = Path(__file__).resolve().parent


def read(out: Path):
    return ScoreTable.open(out).read()


def test_zoo_folder_scored_exactly_and_errors_recorded(tmp_path):
    paths = mixed_folder(tmp_path / "src", n_good=6)
    summary = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=4, progress=False)
    rows = {r["origin"]: r for r in read(tmp_path / "scores").to_pylist()}
    assert set(rows) == set(paths)
    for rel, path in paths.items():
        row, data = rows[rel], path.read_bytes()
        assert row["bytes"] == len(data)
        expected = score_image(data)  # the foundation's per-image path (decode_gray -> B)
        if path.name in INVALID.values():
            assert row["error"] and row["blockiness"] is None
            assert row["error"] == expected.reason
            continue
        rgb = decode_rgb(data)
        assert (row["height"], row["width"]) == rgb.shape[:2]
        assert row["format"] == probe(data).format
        if expected.ok:
            assert row["error"] is None
            assert row["blockiness"] == expected.value  # bit-identical, not approximately
        else:
            assert math.isnan(row["blockiness"]) and row["error"] == expected.reason
    assert summary.rows == len(paths)
    assert summary.errors == len(INVALID)
    assert summary.errors_by_kind == {"corrupt": 1, "empty": 1, "too-large": 1, "truncated": 1}
    assert summary.undefined == 2  # the 1x1 image and the flat one
    assert summary.scored == 6 + len(VALID) - 2


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/images is absent")
def test_real_images_match_released_scorer(tmp_path):
    reference = dict(line.split("\t") for line in (SHARED / "REFERENCE_BLOCKINESS.tsv").read_text().splitlines())
    names = sorted(reference)[:6]
    write_files(tmp_path / "src", {n: (SHARED / n).read_bytes() for n in names})
    score(str(tmp_path / "src"), tmp_path / "scores", progress=False)
    for row in read(tmp_path / "scores").to_pylist():
        assert row["blockiness"] == pytest.approx(float(reference[row["origin"]]), rel=1e-9)


def test_manifest_and_parquet_metadata(tmp_path):
    write_files(tmp_path / "src", good_images(5))
    score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    manifest = json.loads((tmp_path / "scores" / "scores.json").read_text())
    assert manifest["complete"] is True
    assert manifest["package_version"] == __version__
    assert manifest["header"]["source"]["kind"] == "folder"
    assert manifest["header"]["scorers"][0]["name"] == "blockiness"
    assert manifest["header"]["scorers"][0]["settings"]["block"] == 8
    assert [u["id"] for u in manifest["units"]] == ["folder-00000", "folder-00001", "folder-00002"]
    assert manifest["totals"]["rows"] == 5
    meta = pq.read_schema(tmp_path / "scores" / "units" / "folder-00001.parquet").metadata
    recorded = json.loads(meta[b"diverseg"])
    assert recorded["unit"] == "folder-00001"
    assert recorded["scorers"] == manifest["header"]["scorers"]
    assert read(tmp_path / "scores").column_names == [
        "key", "origin", "sha256", "bytes", "width", "height", "format", "blockiness", "error"]


def test_workers_equal_single_process(tmp_path):
    mixed_folder(tmp_path / "src", n_good=8)
    score(str(tmp_path / "src"), tmp_path / "one", unit_size=3, progress=False)
    score(str(tmp_path / "src"), tmp_path / "two", unit_size=3, workers=2, progress=False)
    assert rows_of(read(tmp_path / "one")) == rows_of(read(tmp_path / "two"))


def test_resume_rules(tmp_path):
    write_files(tmp_path / "src", good_images(5))
    first = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    again = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    assert again.units_done_before == 3 and again.rows == first.rows
    with pytest.raises(DiversegError, match="different"):
        score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, limit=3, progress=False)
    redo = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, limit=3, overwrite=True, progress=False)
    assert redo.rows == 3 and redo.units_done_before == 0
    (tmp_path / "src" / "aaa.png").write_bytes(next(iter(good_images(1).values())))  # shifts every unit
    shifted = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, limit=3, progress=False)
    assert shifted.units_done_before == 0 and shifted.rows == 3  # changed units are scored again
    assert "aaa" in read(tmp_path / "scores").column("key").to_pylist()


def test_incomplete_table_refuses_to_read(tmp_path):
    write_files(tmp_path / "src", good_images(4))
    score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    (tmp_path / "scores" / "units" / "folder-00001.parquet").unlink()
    with pytest.raises(DiversegError, match="incomplete"):
        ScoreTable.open(tmp_path / "scores").read()
    resumed = score(str(tmp_path / "src"), tmp_path / "scores", unit_size=2, progress=False)
    assert resumed.units_done_before == 1 and resumed.rows == 4


def test_bad_arguments(tmp_path):
    write_files(tmp_path / "src", good_images(2))
    with pytest.raises(DiversegError, match="unknown scorer 'nope'"):
        score(str(tmp_path / "src"), tmp_path / "scores", scorers=["nope"], progress=False)
    with pytest.raises(DiversegError, match="no such file"):
        score(str(tmp_path / "missing"), tmp_path / "scores", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiversegError, match="no image files"):
        score(str(tmp_path / "empty"), tmp_path / "scores", progress=False)
    assert not (tmp_path / "scores").exists()


def test_checks_before_work_output_file_and_missing_extras(tmp_path, monkeypatch):
    import sys

    from diverseg_hf.errors import MissingExtraError, ParameterError

    write_files(tmp_path / "src", good_images(2))
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "scores"):
        with pytest.raises(ParameterError, match="cannot be a folder"):
            score(str(tmp_path / "src"), out, progress=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if the [sam] and [detect] extras were absent
    for name in ("sam", "detect"):
        with pytest.raises(MissingExtraError, match=rf'pip install "diverseg-hf\[{name}\]"'):
            score(str(tmp_path / "src"), tmp_path / "scores", scorers=["blockiness", name], progress=False)
    assert not (tmp_path / "scores").exists() and (tmp_path / "file").read_text() == "x"


def test_scorer_specs_pass_only_accepted_options():
    specs = scorer_specs(["blockiness"], common={"device": "cuda", "batch_size": 4})
    assert specs == [("blockiness", {})]


def test_gpu_scorer_oom_halves_batch_and_isolates_failures(tmp_path, caplog):
    files = {f"{i}.png": b for i, b in enumerate(good_images(7).values())}
    files["marked.png"] = encode(textured(77, 50, 3), "PNG")
    write_files(tmp_path, files)
    unit = open_source(str(tmp_path)).units()[0]
    scorer = FakeGpuScorer(max_batch=2)
    with caplog.at_level(logging.WARNING):
        table = score_unit(unit, [scorer], batch_size=8)
    rows = table.to_pylist()
    assert len(rows) == 8
    assert "out of memory" in caplog.text
    assert max(scorer.calls[-3:]) <= 2
    for row in rows:
        if row["height"] == 77:
            assert row["pixels"] is None and "bad image height 77" in row["error"]
        else:
            assert row["error"] is None and row["pixels"] == row["width"] * row["height"]


def test_run_scorer_records_failure_at_batch_size_one():
    scorer = FakeGpuScorer(max_batch=0)
    out = run_scorer(scorer, [np.zeros((4, 4, 3), np.uint8)], batch_size=4)
    assert out["pixels"] == [None] and out["error"][0].startswith("oom: fakegpu")


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from diverseg_hf.scoring import register_scorer
    register_scorer("slowtest", "pipeline_helpers:SlowScorer")
    from diverseg_hf.score import score
    score({src!r}, {out!r}, scorers=["blockiness", "slowtest"], unit_size=3, workers={workers},
          progress=False)
    """
)


@pytest.mark.slow
def test_kill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    mixed_folder(tmp_path / "src", n_good=20)
    n_units = len(open_source(str(tmp_path / "src"), unit_size=3).units())
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}

    def run(out: Path, workers: int, kill_after: float | None) -> int:
        """Run to the end, or SIGKILL the process group ``kill_after`` s after a new unit lands."""
        code = KILL_SCRIPT.format(tests=str(TESTS), src=str(tmp_path / "src"), out=str(out), workers=workers)
        before = len(list((out / "units").glob("*.parquet"))) if (out / "units").exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_after is None:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()
            return 0
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if len(list((out / "units").glob("*.parquet"))) > before:
                break
            time.sleep(0.01)
        time.sleep(kill_after)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return proc.returncode

    killed_mid_run = 0
    for attempt in range(4):
        code = run(tmp_path / "killed", workers=1 + attempt % 2, kill_after=rng.uniform(0.0, 0.3))
        done = len(list((tmp_path / "killed" / "units").glob("*.parquet")))
        if code == -signal.SIGKILL and 0 < done < n_units:
            killed_mid_run += 1
    assert killed_mid_run >= 1, "no kill landed between units; slow the scorer down"
    run(tmp_path / "killed", workers=1, kill_after=None)

    run(tmp_path / "clean", workers=1, kill_after=None)
    assert rows_of(read(tmp_path / "killed")) == rows_of(read(tmp_path / "clean"))
    assert not list((tmp_path / "killed" / "units").glob(".*.tmp"))


def test_gpu_scorer_with_decode_pool_equals_in_process(tmp_path, register_scorer):
    register_scorer("fakegpu", "pipeline_helpers:FakeGpuScorer")
    mixed_folder(tmp_path / "src", n_good=6)
    common = {"scorers": ["blockiness", "fakegpu"], "device": "cpu", "unit_size": 5, "progress": False}
    score(str(tmp_path / "src"), tmp_path / "one", **common)
    score(str(tmp_path / "src"), tmp_path / "two", workers=2, **common)
    one = read(tmp_path / "one")
    assert rows_of(one) == rows_of(read(tmp_path / "two"))
    assert one.column_names[-3:] == ["blockiness", "pixels", "error"]
    decoded = [r for r in one.to_pylist() if r["width"] and r["error"] is None]
    assert decoded and all(r["pixels"] == r["width"] * r["height"] for r in decoded)

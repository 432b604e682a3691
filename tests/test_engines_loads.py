"""Scorer settings are known without loading weights; models load only in the processes that score, once each.

Counted with the tiny SAM (``tests/load_helpers.py`` logs the pid of every weight load) on the local
engine's paths: in this process, the decode pool (``--workers 2``: SAM here), one process per GPU
(``--gpus 0,1``: forked here, the model kept on the CPU). The Ray engine's count is in test_engine_ray.py.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from load_helpers import loads
from PIL import Image
from sam_helpers import shape_images

from diverseg_hf import processes
from diverseg_hf.score import score
from diverseg_hf.scoring.sam import SamMaskCounter
from diverseg_hf.scoring.specs import build_scorers
from diverseg_hf.storage import ScoreTable


@pytest.fixture
def registry(register_scorer):
    register_scorer("counted_sam", "load_helpers:CountedSamScorer")


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    for i, rgb in enumerate(shape_images(4, seed=1, low=40, high=64)):
        Image.fromarray(rgb).save(root / f"{i}.png")
    return root


def test_settings_are_known_without_loading_weights(tmp_path, registry):
    log = tmp_path / "loads"
    [scorer] = build_scorers([("counted_sam", {"load_log": str(log)})])
    assert scorer.settings()["points_per_side"] == 4 and scorer.settings()["model"].endswith("tiny_sam")
    assert loads(log) == []
    scorer.load()
    scorer.load()
    assert loads(log) == [os.getpid()]


@pytest.mark.parametrize("paths", [{"workers": 1}, {"workers": 2}, {"gpus": [0, 1]}], ids=["here", "pool", "gpus"])
def test_each_model_loads_once_in_each_process_that_scores(tmp_path, registry, images, monkeypatch, paths):
    monkeypatch.setattr(processes, "start_method", lambda fork=True: "fork")  # workers see the test registry
    to = SamMaskCounter.to

    def to_cpu(self, device):  # no GPU here; one torch thread (a forked child cannot use the parent's pool)
        import torch

        torch.set_num_threads(1)
        return to(self, "cpu")

    monkeypatch.setattr(SamMaskCounter, "to", to_cpu)
    log = tmp_path / "loads"
    score(str(images), tmp_path / "scores", ["blockiness", "counted_sam"], unit_size=2, device="cpu",
          scorer_options={"counted_sam": {"load_log": str(log)}}, progress=False, **paths)
    rows = ScoreTable.open(tmp_path / "scores").read().to_pylist()
    assert len(rows) == 4 and all(r["error"] is None and r["sam_masks"] is not None for r in rows)
    pids = loads(log)
    if "gpus" in paths:
        assert len(pids) == len(set(pids)) == 2 and os.getpid() not in pids  # one load per GPU process
    else:
        assert pids == [os.getpid()]  # SAM scores here (the pool only decodes): loaded here, once

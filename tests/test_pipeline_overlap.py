"""The CPU stage (decode, CPU scorers, preparers) of the next batches overlaps the GPU stage, with
rows identical to the sequential path and the out-of-memory halving still exact."""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest
from image_zoo import textured
from pipeline_helpers import (
    FakeGpuScorer,
    OverlapProbe,
    encode,
    indexed_images,
    mixed_folder,
    rows_of,
    write_files,
)

from diverseg_hf.engines.local import run_local
from diverseg_hf.scoring.blockiness import BlockinessScorer
from diverseg_hf.scoring.run import Batch, pin_inputs, score_units
from diverseg_hf.sources import open_source


@pytest.fixture
def registry(register_scorer):
    register_scorer("overlap", "pipeline_helpers:OverlapProbe")
    register_scorer("fakegpu", "pipeline_helpers:FakeGpuScorer")


def _local(units, specs, workers: int) -> dict:
    tables: dict = {}
    run_local(units, specs, lambda uid, t: tables.setdefault(uid, t), workers=workers, device="cpu",
              batch_size=4, progress=False)
    return tables


@pytest.mark.parametrize("workers", [1, 2])  # 1: a background thread; 2: the decode pool of spawned processes
def test_next_batch_is_prepared_while_the_gpu_scorer_runs(tmp_path, registry, workers):
    n = 14
    write_files(tmp_path / "src", indexed_images(n))
    (tmp_path / "marks").mkdir()
    units = open_source(str(tmp_path / "src"), unit_size=6).units()  # batches also cross unit boundaries
    specs = [("blockiness", {}), ("overlap", {"marker_dir": str(tmp_path / "marks"), "total": n})]
    tables = _local(units, specs, workers)
    rows = [r for u in units for r in tables[u.id].to_pylist()]
    assert [r["height"] for r in rows] == [40 + i for i in range(n)]
    # every call saw the first image of the batch after it already prepared: batch k+1 was decoded
    # and prepared before the scoring of batch k ended (a sequential pipeline fails at every batch end)
    assert all(r["next_ready"] for r in rows)
    assert all(r["error"] is None and r["pixels"] == r["height"] * 48 for r in rows)


def _units_and_scorers(root, marked: bool = True):
    mixed_folder(root, n_good=9)
    if marked:
        write_files(root, {"marked.png": encode(textured(77, 50, 3), "PNG")})
    units = open_source(str(root), unit_size=5).units()
    return units, [BlockinessScorer(), FakeGpuScorer(max_batch=2), OverlapProbe(max_batch=3)]


def test_rows_equal_the_sequential_path(tmp_path, registry):
    units, scorers = _units_and_scorers(tmp_path / "src")
    sequential = {uid: rows_of(t) for uid, t in score_units(units, scorers, 8, ahead=0)}
    for ahead in (1, 3):
        assert {uid: rows_of(t) for uid, t in score_units(units, scorers, 8, ahead=ahead)} == sequential
    specs = [("blockiness", {}), ("fakegpu", {"max_batch": 2}), ("overlap", {"max_batch": 3})]
    for workers in (1, 2):
        assert {uid: rows_of(t) for uid, t in _local(units, specs, workers).items()} == sequential
    rows = [r for unit_rows in sequential.values() for r in unit_rows]
    marked = next(r for r in rows if r["origin"] == "marked.png")
    assert marked["pixels"] is None and marked["error"].startswith(
        "prepare: overlap: ValueError: cannot prepare height 77; scorer: fakegpu")
    assert marked["blockiness"] is not None  # the CPU scorer's value is kept
    decoded = [r for r in rows if r["width"] and r["error"] is None]
    assert decoded and all(r["pixels"] == r["width"] * r["height"] for r in decoded)


def test_oom_halving_exact_with_the_cpu_stage_ahead(tmp_path, caplog):
    write_files(tmp_path, indexed_images(11))
    units = open_source(str(tmp_path), unit_size=11).units()
    probe = OverlapProbe(max_batch=2)
    with caplog.at_level(logging.WARNING):
        (_, table), = score_units(units, [probe], 8, ahead=2)
    assert "out of memory; retrying with batch size 4" in caplog.text
    assert "retrying with batch size 2" in caplog.text
    # batch 1 (8 images): 8 OOM, 4 OOM, then 2+2+2+2; batch 2 (3 images): 3 OOM, then 1+1+1
    assert probe.calls == [8, 4, 2, 2, 2, 2, 3, 1, 1, 1]
    assert [r["pixels"] for r in table.to_pylist()] == [(40 + i) * 48 for i in range(11)]


def test_a_failing_cpu_stage_is_raised_not_lost(tmp_path):
    write_files(tmp_path, indexed_images(3))
    units = open_source(str(tmp_path)).units()

    def broken(records):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(score_units(units, [OverlapProbe()], 2, prepare=broken, ahead=1))


def test_pin_inputs_pins_tensors_when_cuda_is_present(monkeypatch):
    class Tensor:
        def __init__(self, pinned: bool = False):
            self.pinned = pinned

        def pin_memory(self):
            return Tensor(pinned=True)

    fake = types.SimpleNamespace(Tensor=Tensor, cuda=types.SimpleNamespace(is_available=lambda: True))
    monkeypatch.setitem(sys.modules, "torch", fake)
    batch = pin_inputs(Batch([{}] * 3, [None] * 3, {"s": [Tensor(), (Tensor(), 7), None]}))
    single, (pair, seven), none = batch.inputs["s"]
    assert single.pinned and pair.pinned and seven == 7 and none is None


def test_pin_inputs_leaves_cpu_batches_alone():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only case")
    items = [torch.zeros(2), np.zeros(2)]
    assert pin_inputs(Batch([{}, {}], [None, None], {"s": items})).inputs["s"] == items

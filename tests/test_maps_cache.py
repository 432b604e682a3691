"""``scorer_map`` with ``datasets``' cache and processes: small deterministic pickles, cache hits, lazy loads per rank.

The helper scorers of :mod:`scorer_helpers` record every construction (process id, device) in a folder,
so these tests count model loads: none in the parent, one per mapping process, none on a cache hit.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_helpers import good_images
from scorer_helpers import loads

datasets = pytest.importorskip("datasets")

import diverseg_hf  # noqa: E402


@pytest.fixture
def load_log(tmp_path, monkeypatch, register_scorer):
    folder = tmp_path / "loads"
    folder.mkdir()
    monkeypatch.setenv("DIVERSEG_TEST_LOADS", str(folder))
    register_scorer("mean_level", "scorer_helpers:MeanLevel")  # registrations end with the test
    register_scorer("fake_model", "scorer_helpers:FakeModelCounter")
    return folder


@pytest.fixture
def cached(tmp_path):
    """A cache-backed dataset (loaded from Parquet into an Arrow cache file) of 8 images."""
    cells = [{"bytes": b, "path": None} for b in good_images(8).values()]
    features = datasets.Features({"image": datasets.Image(decode=False)})
    datasets.Dataset.from_dict({"image": cells}, features=features).to_parquet(str(tmp_path / "src.parquet"))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "src.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert ds.cache_files
    return ds.cast_column("image", datasets.Image(decode=False))


def test_the_callable_pickles_small_without_its_model(load_log):
    f = diverseg_hf.scorer_map("mean_level", offset=0.5)
    assert loads(load_log) == []  # nothing built to create it
    f({"image": [next(iter(good_images(1).values()))]})
    assert len(loads(load_log)) == 1
    data = pickle.dumps(f)
    assert len(data) < 600 and b"MeanLevel" in data and b"_loaded" not in data
    clone = pickle.loads(data)
    assert clone.scorers == f.scorers and clone.options == f.options and clone._loaded is None
    assert pickle.dumps(clone) == data
    assert len(loads(load_log)) == 1


def test_the_same_map_twice_hits_the_cache_and_other_settings_do_not(cached, load_log):
    first = cached.map(diverseg_hf.scorer_map("mean_level"), batched=True)
    assert len(loads(load_log)) == 1
    again = cached.map(diverseg_hf.scorer_map("mean_level"), batched=True)  # a new, equal callable
    assert len(loads(load_log)) == 1  # not run: read from the cache
    assert again.cache_files == first.cache_files and again._fingerprint == first._fingerprint
    other = cached.map(diverseg_hf.scorer_map("mean_level", offset=1.0), batched=True)
    assert len(loads(load_log)) == 2
    assert other.cache_files != first.cache_files
    assert [b - a for a, b in zip(first["mean_level"], other["mean_level"])] == [1.0] * len(cached)
    blockiness = cached.map(diverseg_hf.scorer_map("blockiness"), batched=True)
    assert blockiness.cache_files != first.cache_files


def test_with_rank_puts_each_process_on_its_gpu_and_loads_there_once(cached, load_log, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # forked workers inherit the stand-in
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    f = diverseg_hf.scorer_map("fake_model")
    out = cached.map(f, batched=True, batch_size=2, with_rank=True, num_proc=2)
    seen = [load for load in loads(load_log) if load[0] == "FakeModelCounter"]
    assert sorted(device for _, _, device in seen) == ["cuda:0", "cuda:1"]
    assert len({pid for _, pid, _ in seen}) == 2 and os.getpid() not in {pid for _, pid, _ in seen}
    assert out["fake_model_error"] == [""] * len(cached) and all(n >= 0 for n in out["bright_pixels"])
    assert out.features["bright_pixels"] == datasets.Value("int32")


def test_a_missing_count_is_minus_one_and_typed(load_log):
    f = diverseg_hf.scorer_map("fake_model", device="cpu")
    ds = datasets.Dataset.from_dict({"image": [None, None]}, features=datasets.Features({"image": datasets.Image()}))
    out = ds.map(f, batched=True, batch_size=1)
    assert out["bright_pixels"] == [-1, -1] and out.features["bright_pixels"] == datasets.Value("int32")
    assert loads(load_log) and all(device == "cpu" for _, _, device in loads(load_log))


SPAWNED = """
import sys, multiprocess, datasets, diverseg_hf
multiprocess.set_start_method("spawn", force=True)
diverseg_hf.register_scorer("mean_level", "scorer_helpers:MeanLevel")  # not in the spawned workers' registry
ds = datasets.load_from_disk(sys.argv[1])
out = ds.map(diverseg_hf.scorer_map("mean_level", offset=1.0), batched=True, batch_size=2, num_proc=2, with_rank=True)
print(sorted(out["mean_level"]) == sorted(v + 1.0 for v in ds.map(diverseg_hf.scorer_map("mean_level"))["mean_level"]))
"""


@pytest.mark.slow
def test_spawned_map_workers_rebuild_the_function_from_its_pickle(cached, tmp_path):
    cached.save_to_disk(str(tmp_path / "saved"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
           "HF_DATASETS_CACHE": str(tmp_path / "cache2")}
    run = subprocess.run([sys.executable, "-c", SPAWNED, str(tmp_path / "saved")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "True"

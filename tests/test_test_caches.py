"""The test suite keeps every Hugging Face cache in one temporary folder (the root conftest.py), never in ``~/.cache``:
in this process, in subprocesses, and for what ``load_dataset`` of a generic folder name writes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import datasets
import huggingface_hub.constants

#: The session's cache folder, as the root conftest.py made it: a fresh folder under the system's temp folder.
TEST_CACHE = Path(os.environ["XDG_CACHE_HOME"])


def inside(path: str | Path) -> bool:
    return TEST_CACHE in Path(path).resolve().parents


def test_caches_point_into_the_test_folder() -> None:
    assert TEST_CACHE.is_dir() and TEST_CACHE.name.startswith("diverseg-tests-cache-")
    assert Path(tempfile.gettempdir()).resolve() in TEST_CACHE.resolve().parents
    assert Path.home() not in TEST_CACHE.resolve().parents
    assert all(inside(p) for p in (datasets.config.HF_DATASETS_CACHE, datasets.config.HF_CACHE_HOME,
                                   huggingface_hub.constants.HF_HUB_CACHE, huggingface_hub.constants.HF_HOME))


def test_subprocesses_inherit_the_test_caches() -> None:
    code = ("import datasets, huggingface_hub.constants as c, os; "
            "print(datasets.config.HF_DATASETS_CACHE, c.HF_HUB_CACHE, c.HF_HOME, os.environ['XDG_CACHE_HOME'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == 4 and all(inside(p) or Path(p) == TEST_CACHE for p in out)


def test_load_dataset_of_a_generic_name_writes_into_the_test_caches(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "diverseg"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"key": ["a", "b"]}).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    before = set(TEST_CACHE.rglob("*"))
    monkeypatch.chdir(tmp_path)
    ds = datasets.load_dataset("diverseg", split="train")  # the generic name, read from the folder beside
    assert ds["key"] == ["a", "b"]
    assert ds.cache_files and all(inside(f["filename"]) for f in ds.cache_files)
    assert set(TEST_CACHE.rglob("*")) - before

"""Shared helpers of the pipeline tests: small generated sources and a slow test scorer."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
from conftest import encode
from image_zoo import textured, write_zoo

from diverseg_hf.scoring.base import Scorer


def good_images(n: int, seed: int = 0) -> dict[str, bytes]:
    """``n`` scorable images (relative file name -> bytes): PNGs, JPEGs at several qualities, subfolders."""
    out = {}
    for i in range(n):
        rgb = textured(48 + 8 * (i % 5), 56 + 4 * (i % 7), seed + i)
        if i % 3 == 0:
            out[f"png/img.{i:03d}.png"] = encode(rgb, "PNG")
        else:
            out[f"jpg/sub/img_{i:03d}.jpg"] = encode(rgb, "JPEG", quality=(95, 60)[i % 2])
    return out


def write_files(folder: Path, files: dict[str, bytes]) -> dict[str, Path]:
    paths = {}
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[rel] = path
    return paths


def mixed_folder(folder: Path, n_good: int = 12, seed: int = 0) -> dict[str, Path]:
    """Good images plus every zoo case (under ``zoo/``): relative path -> file."""
    paths = write_files(folder, good_images(n_good, seed))
    for case, path in write_zoo(folder / "zoo", seed).items():
        paths[f"zoo/{path.name}"] = path
        del case
    return paths


class SlowScorer(Scorer):
    """Mean intensity, slowly: lets a test kill a scoring run in the middle."""

    name: ClassVar[str] = "slowtest"
    columns: ClassVar[dict[str, str]] = {"mean": "float64"}

    def __init__(self, delay: float = 0.05):
        self.delay = delay

    def settings(self) -> dict:
        return {"delay": self.delay}

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        time.sleep(self.delay * len(images))
        return {"mean": [float(im.mean()) for im in images], "error": [None] * len(images)}


class FakeGpuScorer(Scorer):
    """A 'GPU' scorer that runs out of memory above ``max_batch`` images and fails on a marked image."""

    name: ClassVar[str] = "fakegpu"
    columns: ClassVar[dict[str, str]] = {"pixels": "int64"}
    uses_gpu: ClassVar[bool] = True

    def __init__(self, max_batch: int = 2, device: str = "cpu", batch_size: int = 8):
        self.max_batch = max_batch
        self.device = device
        self.default_batch_size = batch_size
        self.calls: list[int] = []

    def to(self, device: str) -> FakeGpuScorer:
        self.device = device
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        self.calls.append(len(images))
        if len(images) > self.max_batch:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if any(im.shape[0] == 77 for im in images):  # the marked image breaks the model
            raise ValueError("bad image height 77")
        return {"pixels": [int(im.shape[0] * im.shape[1]) for im in images], "error": [None] * len(images)}


def rows_of(table) -> list[dict]:
    """Table rows with NaN replaced by the string "nan", so equal tables compare equal."""
    return [{k: ("nan" if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in table.to_pylist()]


def synthetic_scores(out: Path, n: int, seed: int = 0, units: int = 3, with_masks: bool = True) -> None:
    """A score table of ``n`` made-up rows (no images): blockiness, sam_masks, some errors and NaN."""
    import pyarrow as pa

    from diverseg_hf.storage import BASE_SCHEMA, ScoreTable

    rng = np.random.default_rng(seed)
    blockiness = rng.gamma(2.0, 8.0, n)
    errors = np.where(rng.random(n) < 0.05, "corrupt: broken", None)
    undefined = rng.random(n) < 0.03
    blockiness[undefined] = np.nan
    errors = [("undefined: flat" if u else e) for u, e in zip(undefined, errors)]
    blockiness[[e is not None and not str(e).startswith("undefined") for e in errors]] = np.nan
    columns = {
        "key": [f"k{i:07d}" for i in range(n)],
        "origin": [f"f{i}.png" for i in range(n)],
        "sha256": ["0" * 64] * n,
        "bytes": rng.integers(1000, 5000, n),
        "width": rng.integers(64, 512, n).astype(np.int32),
        "height": rng.integers(64, 512, n).astype(np.int32),
        "format": ["PNG"] * n,
        "blockiness": blockiness,
    }
    fields = [*list(BASE_SCHEMA), pa.field("blockiness", pa.float64())]
    scorers = [{"name": "blockiness", "options": {}, "settings": {}, "columns": {"blockiness": "float64"}}]
    if with_masks:
        masks = rng.poisson(80, n).astype(float)
        masks[np.array([e is not None for e in errors])] = np.nan
        columns["sam_masks"] = pa.array([None if np.isnan(m) else int(m) for m in masks], pa.int32())
        fields.append(pa.field("sam_masks", pa.int32()))
        scorers.append({"name": "sam", "options": {}, "settings": {}, "columns": {"sam_masks": "int32"}})
    columns["error"] = errors
    fields.append(pa.field("error", pa.string()))
    table = pa.table(columns, schema=pa.schema(fields))
    bounds = np.linspace(0, n, units + 1).astype(int)
    header = {"source": {"kind": "folder", "spec": str(out / "nowhere")}, "limit": None, "scorers": scorers,
              "columns": [f.name for f in fields]}
    unit_list = [{"id": f"u-{i:05d}", "size": int(b - a), "max_records": None}
                 for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    store = ScoreTable.create(out, header, unit_list)
    for unit, a, b in zip(unit_list, bounds[:-1], bounds[1:]):
        store.commit(unit["id"], table.slice(a, b - a))

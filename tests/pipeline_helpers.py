"""Shared helpers of the pipeline tests: small generated sources and test scorers (slow, fake-GPU, probes)."""

from __future__ import annotations

import functools
import itertools
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from image_zoo import textured, write_zoo
from shared_data import encode

from diverseg_hf.scoring.base import ENGINE_OPTIONS, Scorer


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
    engine_options: ClassVar[frozenset[str]] = frozenset({"device", "batch_size"})

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


class OptionsProbe(Scorer):
    """A 'GPU' scorer that takes every engine option and reports, per image, what reached it."""

    name: ClassVar[str] = "optprobe"
    columns: ClassVar[dict[str, str]] = {"got_batch_size": "int32", "got_points_per_batch": "int32",
                                          "got_image_batch_size": "int32", "got_compile": "bool",
                                          "got_dtype": "string", "call_size": "int32"}
    uses_gpu: ClassVar[bool] = True
    engine_options: ClassVar[frozenset[str]] = frozenset(ENGINE_OPTIONS)

    def __init__(self, device: str = "cpu", dtype: str = "float32", batch_size: int | None = None,
                 points_per_batch: int | None = None, image_batch_size: int | None = None, compile: bool = False):
        self.options = {"dtype": dtype, "batch_size": batch_size, "points_per_batch": points_per_batch,
                        "image_batch_size": image_batch_size, "compile": compile}

    def settings(self) -> dict:
        return dict(self.options)

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        n = len(images)
        out: dict[str, list] = {f"got_{k}": [v] * n for k, v in self.options.items()}
        return {**out, "call_size": [n] * n, "error": [None] * n}


#: Height of the image of index 0 in :func:`indexed_images` (image ``i`` is ``BASE_HEIGHT + i`` rows high).
BASE_HEIGHT = 40


def indexed_images(n: int) -> dict[str, bytes]:
    """``n`` 48-pixel-wide PNGs whose height tells their index (``BASE_HEIGHT + i``), named in source order."""
    return {f"img-{i:03d}.png": encode(textured(BASE_HEIGHT + i, 48, i), "PNG") for i in range(n)}


def prepare_index(rgb: np.ndarray, marker_dir: str | None = None) -> tuple[int, int]:
    """OverlapProbe's preparer (runs in the CPU stage): ``(index, pixels)``; leaves a marker file per image.

    Raises for an image 77 rows high (a prepare failure)."""
    index = rgb.shape[0] - BASE_HEIGHT
    if marker_dir:
        Path(marker_dir, f"prepared-{index}").touch()
    if rgb.shape[0] == 77:
        raise ValueError("cannot prepare height 77")
    return index, int(rgb.shape[0] * rgb.shape[1])


class OverlapProbe(Scorer):
    """A 'GPU' scorer with a preparer that proves the CPU stage runs ahead of it.

    With ``marker_dir`` and ``total``: a call on the images up to index ``m`` waits (up to ``wait_s``)
    for the marker of image ``m + 1``, left by the preparer in the CPU stage, and reports in
    ``next_ready`` whether it came. A sequential pipeline prepares batch k+1 only after scoring batch
    k, so it reports False at every batch end. Runs out of memory above ``max_batch`` images.
    """

    name: ClassVar[str] = "overlap"
    columns: ClassVar[dict[str, str]] = {"pixels": "int64", "next_ready": "bool"}
    uses_gpu: ClassVar[bool] = True
    engine_options: ClassVar[frozenset[str]] = frozenset({"batch_size"})

    def __init__(self, marker_dir: str | None = None, total: int = 0, wait_s: float = 60.0,
                 max_batch: int = 1000, batch_size: int = 8):
        self.marker_dir, self.total, self.wait_s, self.max_batch = marker_dir, total, wait_s, max_batch
        self.default_batch_size = batch_size
        self.calls: list[int] = []

    def preparer(self) -> Any:
        return functools.partial(prepare_index, marker_dir=self.marker_dir)

    def _next_ready(self, last: int) -> bool:
        if not self.marker_dir or last + 1 >= self.total:
            return True
        marker = Path(self.marker_dir, f"prepared-{last + 1}")
        deadline = time.monotonic() + self.wait_s  # a deadlock guard, not a speed bar
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        return marker.exists()

    def __call__(self, items: list[tuple[int, int]]) -> dict[str, list]:
        self.calls.append(len(items))
        if len(items) > self.max_batch:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        ready = self._next_ready(max(index for index, _ in items))
        return {"pixels": [pixels for _, pixels in items], "next_ready": [ready] * len(items),
                "error": [None] * len(items)}


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


def one_line(code: int, lines: list[str], command: str, message: str, exit_code: int = 2) -> None:
    """A CLI call that failed as misuse must: exit ``exit_code``, one ``diverseg COMMAND: error:`` line naming
    ``message``."""
    assert code == exit_code, lines
    assert len(lines) == 1 and lines[0].startswith(f"diverseg {command}: error: "), lines
    assert message in lines[0], lines


def run_cli(argv: list, capsys) -> tuple[int, list[str]]:
    """Exit code and the non-empty stderr lines (progress bars left out) of an in-process ``diverseg`` call;
    an argparse exit counts as its code."""
    from diverseg_hf import cli

    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip() and "%|" not in line]

"""``ds.map(scorer_map("blockiness"), batched=True)`` against ``diverseg score`` on the same Parquet corpus.

Writes ``--images`` rendered scenes (``diverseg_hf.quality.sample.render_scene``, 512x384; half PNG,
half JPEG q75) to one Parquet file with the ``datasets`` Image feature, then measures, in images/s
(CPU time of this process, ``time.process_time``, robust on a shared machine; wall time beside it),
the median of ``--repeats`` interleaved rounds:

- ``score``: :func:`diverseg_hf.score.score` (what ``diverseg score --scorers blockiness`` runs: hash,
  probe, strict decode, blockiness, Parquet table);
- ``map, Image(decode=False)``: ``Dataset.map`` with the column cast to undecoded bytes (the
  documented path: each image decoded once, strictly);
- ``map, Image()``: the default feature (``datasets`` decodes a PIL image first, the map converts it);
- ``score_dataset``: the same columns through :func:`diverseg_hf.score_dataset`.

The maps write no cache (``load_from_cache_file=False``, in-memory dataset). Checks that every route
gives the same values.

    python benchmarks/maps.py [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np

import diverseg_hf
from diverseg_hf.quality.sample import render_scene
from diverseg_hf.storage import ScoreTable


def corpus(folder: Path, n: int) -> Path:
    cells = []
    for i in range(n):
        buf = io.BytesIO()
        render_scene(i).save(buf, *(("PNG",) if i % 2 else ("JPEG",)), **({} if i % 2 else {"quality": 75}))
        cells.append({"bytes": buf.getvalue(), "path": None})
    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()})
    ds = datasets.Dataset.from_dict({"key": [f"k{i:05d}" for i in range(n)], "image": cells}, features=features)
    ds.to_parquet(str(folder / "corpus.parquet"))
    return folder / "corpus.parquet"


def timed(fn) -> tuple[float, float, list[float]]:
    cpu, wall = time.process_time(), time.perf_counter()
    values = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        path = corpus(Path(tmp), args.images)
        ds = datasets.Dataset.from_parquet(str(path), keep_in_memory=True)
        raw = ds.cast_column("image", datasets.Image(decode=False))
        runs = 0

        def cli() -> list[float]:
            nonlocal runs
            runs += 1
            diverseg_hf.score(str(path), Path(tmp) / f"scores{runs}", ["blockiness"], progress=False)
            return ScoreTable.open(Path(tmp) / f"scores{runs}").read().column("blockiness").to_pylist()

        def mapped(data) -> list[float]:
            f = diverseg_hf.scorer_map("blockiness")
            return data.map(f, batched=True, load_from_cache_file=False, keep_in_memory=True)["blockiness"]

        routes = {"score": cli, "map, Image(decode=False)": lambda: mapped(raw), "map, Image()": lambda: mapped(ds),
                  "score_dataset": lambda: diverseg_hf.score_dataset(raw, ["blockiness"])["blockiness"]}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in routes}
        reference = None
        for _ in range(args.repeats):
            for name, fn in routes.items():
                cpu, wall, values = timed(fn)
                times[name].append((cpu, wall))
                values = np.asarray(values, dtype=np.float64)
                reference = values if reference is None else reference
                assert np.array_equal(values, reference, equal_nan=True), name
    result = {name: {"cpu_images_per_s": args.images / statistics.median(c for c, _ in t),
                     "wall_images_per_s": args.images / statistics.median(w for _, w in t)}
              for name, t in times.items()}
    print(json.dumps({"images": args.images, "repeats": args.repeats, "routes": result}, indent=1))
    print("\n| route | images/s (CPU time) | images/s (wall) |\n|---|---:|---:|")
    for name, r in result.items():
        print(f"| {name} | {r['cpu_images_per_s']:.1f} | {r['wall_images_per_s']:.1f} |")


if __name__ == "__main__":
    main()

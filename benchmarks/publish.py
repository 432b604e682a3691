"""Benchmark: `publish` throughput (MB/s of original image bytes) with 1 and 2 workers, CPU and wall time.

Run: python benchmarks/publish.py [--images 600] [--size 256] [--unit-size 50] [--shard-size 5MB] [--repeat 3]

Generates JPEGs (random texture, quality 95) in a folder, scores them (blockiness) in units of
``--unit-size`` files and selects them all, then times publish() of Parquet + WebDataset shards into
a fresh folder per run (after one warm-up run), without the scores config, figures included. CPU
time is this process's plus its reaped workers' (``resource.getrusage``); MB/s per CPU-second does
not depend on what else the machine runs, wall MB/s does. The best of ``--repeat`` runs is printed.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def make_corpus(folder: Path, images: int, size: int) -> int:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    total = 0
    for i in range(images):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((8, 8, 1), np.uint8)) + rng.integers(0, 24, (size, size, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=95)
        (folder / f"{i:06d}.jpg").write_bytes(buf.getvalue())
        total += buf.tell()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--unit-size", type=int, default=50, help="files per source unit")
    parser.add_argument("--shard-size", default="5MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mb = make_corpus(root / "src", args.images, args.size) / 1e6
        score(str(root / "src"), root / "scores", unit_size=args.unit_size, progress=False)
        select(root / "scores", root / "sel")
        options = {"formats": ["parquet", "webdataset"], "shard_size": args.shard_size, "progress": False,
                   "include_scores": False}
        publish(root / "sel", root / "warm", "bench", **options)  # warm-up: imports, page cache
        print(f"{args.images} images, {mb:.1f} MB of JPEG, units of {args.unit_size} files, "
              f"shards of {args.shard_size}, Parquet + WebDataset")
        for workers in (1, 2):
            best = None
            for run in range(args.repeat):
                out = root / f"out{workers}-{run}"
                cpu, wall = cpu_seconds(), time.perf_counter()
                result = publish(root / "sel", out, "bench", workers=workers, **options)
                cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
                best = min(best or (wall, cpu), (wall, cpu))
                shutil.rmtree(out)
            wall, cpu = best
            print(f"workers={workers}: {len(result.files)} files, wall {wall:.2f} s = {mb / wall:.1f} MB/s, "
                  f"CPU {cpu:.2f} s = {mb / cpu:.1f} MB per CPU-second")


if __name__ == "__main__":
    main()

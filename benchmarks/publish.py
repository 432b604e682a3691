"""Benchmark: `publish` throughput (MB/s of original image bytes) to Parquet and WebDataset tars.

Run: python benchmarks/publish.py [--images 400] [--size 256]
Generates JPEGs in a folder, scores and selects them all, then times publish() per format
(after one warm-up run; each timing includes the card and plots).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diverseg_hf.publish import publish
from diverseg_hf.score import score
from diverseg_hf.select import select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        total = 0
        for i in range(args.images):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(
                buf, "JPEG", quality=95)
            (root / "src" / f"{i:06d}.jpg").write_bytes(buf.getvalue())
            total += buf.tell()
        score(str(root / "src"), root / "scores", progress=False)
        select(root / "scores", root / "sel")
        mb = total / 1e6
        publish(root / "sel", root / "ds", "bench", progress=False, include_scores=False)  # warm-up: imports
        for formats in (["parquet"], ["webdataset"], ["parquet", "webdataset"]):
            t = time.perf_counter()
            publish(root / "sel", root / "ds", "bench", formats=formats, shard_size="50MB", progress=False,
                    include_scores=False)
            dt = time.perf_counter() - t
            print(f"{'+'.join(formats):20s} {args.images} images, {mb:.1f} MB in {dt:.2f} s: {mb / dt:.1f} MB/s")


if __name__ == "__main__":
    main()

"""Ray engine vs local engine on one machine: wall time per image of ``score`` with blockiness.

Run:  python benchmarks/engine_ray.py [--images 200] [--workers 2] [--unit-size 50] [--rows-per-block 32]

Writes a folder of generated ImageNet-sized JPEGs (500x375, q90), scores it with the local engine
(1 and N worker processes) and the Ray engine (N actors on a fresh local cluster), checks that the
tables are equal, and prints a Markdown table. Ray's cluster start-up is timed apart from the run:
it is paid once per driver, not per image. Needs the [ray] extra.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the blockiness benchmark's generated images
from blockiness import generated_corpus

from diverseg_hf.errors import require
from diverseg_hf.score import score
from diverseg_hf.storage import ScoreTable


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--unit-size", type=int, default=50)
    parser.add_argument("--rows-per-block", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ray = require("ray", "ray")
    from diverseg_hf.score import score_with_ray

    work = Path(tempfile.mkdtemp(prefix="bench-ray"))
    try:
        src = work / "images"
        src.mkdir()
        generated_corpus(src, args.images, "JPEG")  # blockiness.py's 500x375 JPEG q90 images, written to src
        n, w = args.images, args.workers
        common = {"unit_size": args.unit_size, "progress": False}
        rows = [("local", 1, timed(lambda: score(str(src), work / "local1", **common)))]
        rows.append(("local", w, timed(lambda: score(str(src), work / "localN", workers=w, **common))))
        cpus = os.cpu_count() or 1
        start = timed(lambda: ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING"))
        try:
            # Leave reading a CPU: actors share the rest.
            per_actor = max(0.25, (cpus - 1) / w)
            for label, actors in (("ray", 1), ("ray", w)):
                out = work / f"ray{actors}"
                rows.append((label, actors, timed(lambda out=out, actors=actors: score_with_ray(
                    str(src), out, workers=actors, cpus_per_worker=per_actor,
                    rows_per_block=args.rows_per_block, **common))))
        finally:
            ray.shutdown()
        reference = ScoreTable.open(work / "local1").read().to_pandas()
        for name in ("localN", "ray1", f"ray{w}"):
            assert ScoreTable.open(work / name).read().to_pandas().equals(reference), name
        print(f"{n} generated 500x375 JPEG q90 images, blockiness, {cpus} CPUs, unit size {args.unit_size}, "
              f"rows per block {args.rows_per_block}; Ray cluster start-up {start:.1f} s (not included)\n")
        print("| engine | workers | wall s | ms / image | images / s |")
        print("|---|---|---|---|---|")
        for engine, workers, seconds in rows:
            print(f"| {engine} | {workers} | {seconds:.2f} | {1000 * seconds / n:.1f} | {n / seconds:.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

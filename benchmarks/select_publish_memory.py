"""Benchmark: peak memory (RSS) of `select` and `publish` over a large score table in the product's schema.

Builds a synthetic score table of ``--rows`` rows (1,000 rows a unit, the columns `diverseg score
--scorers blockiness,sam` writes: key, origin, sha256, bytes, width, height, format, blockiness,
sam_masks, error; 1% errors) plus one unit of ``REAL`` tiny real PNGs (in ``--dir``/images, the only rows
with ``sam_masks`` >= 1000), then runs `select` in a fresh process per rule set and prints its peak RSS
(the child's own ``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and wall time; then `publish` (Parquet and
tars, with the `scores` config and the card's figures) of a selection that keeps the real images. The table
is kept in ``--dir`` so a second run (or another checkout, via PYTHONPATH) measures the same table.

Run: python benchmarks/select_publish_memory.py --rows 10000000 --dir /tmp/t10m
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image
from selection import make_table  # the score table builder of benchmarks/selection.py (this script's folder)

REAL = 8
PUBLISH = "thetas={'sam_masks': 1000}"  # keeps the REAL images only

CASES = {
    "max_blockiness=10": "max_blockiness=10",
    "theta sam_masks>=80 + quality estimate": "thetas={'sam_masks': 80}, estimate=True",
    "keep=0.2 by sam_masks": "keep=0.2, by='sam_masks'",
}


def real_images(folder: Path) -> pa.Table:
    """Write ``REAL`` tiny PNGs into ``folder``; their score rows (sam_masks 1000, blockiness 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(REAL):
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(buf, format="PNG")
        data = buf.getvalue()
        (folder / f"real{i}.png").write_bytes(data)
        rows.append({"key": f"real{i}", "origin": f"real{i}.png", "sha256": hashlib.sha256(data).hexdigest(),
                     "bytes": len(data), "width": 8, "height": 8, "format": "PNG", "blockiness": 1.0,
                     "sam_masks": 1000, "error": None})
    return pa.Table.from_pylist(rows)


def measure(scores: Path, out: Path, kwargs: str) -> tuple[float, float, int]:
    """(peak RSS MB, wall s, rows kept) of one select in a child process."""
    code = (f"import resource; from diverseg_hf.select import select; r = select({str(scores)!r}, {str(out)!r}, "
            f"{kwargs}); print(r.kept, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    return _child(code)


def measure_publish(folder: Path) -> tuple[float, float, int]:
    """(peak RSS MB, wall s, rows published) of one publish of ``folder``/sel_pub in a child process."""
    shutil.rmtree(folder / "ds", ignore_errors=True)
    code = ("import resource; from diverseg_hf.publish.from_selection import publish; "
            f"r = publish({str(folder / 'sel_pub')!r}, {str(folder / 'ds')!r}, 'bench', "
            f"source={str(folder / 'images')!r}, formats=['parquet', 'webdataset'], progress=False); "
            "print(r.num_examples, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    return _child(code)


def _child(code: str) -> tuple[float, float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    kept, peak = done.stdout.split()[-2:]
    return int(peak) / 1024, time.perf_counter() - start, int(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", required=True, help="where the score table is built (kept for re-runs)")
    parser.add_argument("--case", choices=[*CASES, "publish"], nargs="+", default=None,
                        help="only these rule sets (publish: select the real images, then publish them)")
    args = parser.parse_args()
    scores = Path(args.dir) / "scores"
    if not (scores / "scores.json").exists():
        start = time.perf_counter()
        make_table(scores, args.rows, max(1, args.rows // 1000), extra=real_images(Path(args.dir) / "images"))
        print(f"built {args.rows:,} rows in {time.perf_counter() - start:.0f} s")
    for name, kwargs in CASES.items():
        if args.case and name not in args.case:
            continue
        peak, wall, kept = measure(scores, Path(args.dir) / "sel", kwargs)
        print(f"{args.rows:>11,} rows  {name:40s} peak RSS {peak:7.0f} MB  {wall:6.1f} s  kept {kept:,}")
    if not args.case or "publish" in args.case:
        measure(scores, Path(args.dir) / "sel_pub", PUBLISH)
        peak, wall, kept = measure_publish(Path(args.dir))
        print(f"{args.rows:>11,} rows  {'publish (parquet + tars, scores, figures)':40s} peak RSS {peak:7.0f} MB  "
              f"{wall:6.1f} s  published {kept:,}")


if __name__ == "__main__":
    main()

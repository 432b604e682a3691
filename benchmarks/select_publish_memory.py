"""Benchmark: peak memory (RSS) of `select` over a large score table in the product's schema.

Builds a synthetic score table of ``--rows`` rows (1,000 rows a unit, the columns `diverseg score
--scorers blockiness,sam` writes: key, origin, sha256, bytes, width, height, format, blockiness,
sam_masks, error; 1% errors), then runs `select` in a fresh process per rule set and prints its peak RSS
(the child's own ``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and wall time. The table is kept in ``--dir`` so a
second run (or another checkout, via PYTHONPATH) measures the same table.

Run: python benchmarks/select_publish_memory.py --rows 10000000 --dir /tmp/t10m
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from selection import make_table  # the score table builder of benchmarks/selection.py (this script's folder)

CASES = {
    "max_blockiness=10": "max_blockiness=10",
    "theta sam_masks>=80 + quality estimate": "thetas={'sam_masks': 80}, estimate=True",
    "keep=0.2 by sam_masks": "keep=0.2, by='sam_masks'",
}


def measure(scores: Path, out: Path, kwargs: str) -> tuple[float, float, int]:
    """(peak RSS MB, wall s, rows kept) of one select in a child process."""
    code = (f"import resource; from diverseg_hf.select import select; r = select({str(scores)!r}, {str(out)!r}, "
            f"{kwargs}); print(r.kept, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    kept, peak = done.stdout.split()[-2:]
    return int(peak) / 1024, time.perf_counter() - start, int(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", required=True, help="where the score table is built (kept for re-runs)")
    parser.add_argument("--case", choices=list(CASES), nargs="+", default=None, help="only these rule sets")
    args = parser.parse_args()
    scores = Path(args.dir) / "scores"
    if not (scores / "scores.json").exists():
        start = time.perf_counter()
        make_table(scores, args.rows, max(1, args.rows // 1000))
        print(f"built {args.rows:,} rows in {time.perf_counter() - start:.0f} s")
    for name, kwargs in CASES.items():
        if args.case and name not in args.case:
            continue
        peak, wall, kept = measure(scores, Path(args.dir) / "sel", kwargs)
        print(f"{args.rows:>11,} rows  {name:40s} peak RSS {peak:7.0f} MB  {wall:6.1f} s  kept {kept:,}")


if __name__ == "__main__":
    main()

"""Benchmark: the cost of committing one unit to a score table, against the number of units it has.

For each table size N, a table of N units is created and every unit committed (a one-row table, so the
figure is the commit's own cost: unit file written atomically + the bookkeeping); the mean CPU and wall
time of the last ``--window`` commits before the last one (the table then holds ~N units) is printed,
then the final commit (which folds the journal into the manifest, once per table) and the whole run.

Run: python benchmarks/score_table_commit.py [--units 100 1000 5000 20000] [--window 100] [--dir DIR]
(``--dir`` on a tmpfs such as /dev/shm leaves out the disk's fsync latency.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from diverseg_hf.storage import ScoreTable, table_schema

HEADER = {"source": {"kind": "folder", "spec": "synthetic"}, "limit": None, "scorers": [], "columns": []}


def one_row() -> pa.Table:
    row = {"key": "k", "origin": "k.jpg", "sha256": "0" * 64, "bytes": 1, "width": 1, "height": 1,
           "format": "JPEG", "error": None}
    return pa.Table.from_pylist([row], schema=table_schema([]))


def run(root: Path, units: int, window: int) -> tuple[float, float, float, float]:
    """(CPU ms, wall ms) per commit over the window, the final commit's wall ms, the whole run's wall s."""
    unit_list = [{"id": f"u-{i:06d}", "size": 1, "max_records": None, "fingerprint": f"{i:016x}"}
                 for i in range(units)]
    start = time.perf_counter()
    store = ScoreTable.create(root, HEADER, unit_list)
    table = one_row()
    first = units - 1 - min(window, units - 1)
    for unit in unit_list[:first]:
        store.commit(unit["id"], table)
    cpu, wall = time.process_time(), time.perf_counter()
    for unit in unit_list[first:-1]:
        store.commit(unit["id"], table)
    n = units - 1 - first
    cpu_ms, wall_ms = (time.process_time() - cpu) * 1e3 / n, (time.perf_counter() - wall) * 1e3 / n
    last = time.perf_counter()
    store.commit(unit_list[-1]["id"], table)
    assert store.complete
    return cpu_ms, wall_ms, (time.perf_counter() - last) * 1e3, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, nargs="+", default=[100, 1000, 5000, 20000])
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    print(f"{'units':>7} {'commit CPU ms':>14} {'commit wall ms':>15} {'final commit ms':>16} {'run s':>8}")
    for units in args.units:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            cpu_ms, wall_ms, final_ms, total = run(Path(tmp) / "scores", units, args.window)
        print(f"{units:>7,} {cpu_ms:>14.3f} {wall_ms:>15.3f} {final_ms:>16.1f} {total:>8.1f}")


if __name__ == "__main__":
    main()

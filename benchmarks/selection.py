"""Benchmark: `select` on a synthetic 1.3M-row score table (ImageNet-1k size), several thresholds.

(Named selection.py: a select.py in this folder would shadow the standard library module for every
script here.)

Run: python benchmarks/selection.py [--rows 1281167] [--units 1282]
Prints the first (cold) select, then the best of 3 re-runs per rule set (cached table + rules + write).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from diverseg_hf.select import select
from diverseg_hf.storage import BASE_SCHEMA, ScoreTable


def make_table(out: Path, rows: int, units: int, seed: int = 0, extra: pa.Table | None = None) -> None:
    """A score table of ``rows`` synthetic rows in ``units`` units, and ``extra`` (rows of the same schema,
    e.g. real images) as one more unit at the end."""
    rng = np.random.default_rng(seed)
    schema = pa.schema([*BASE_SCHEMA, ("blockiness", pa.float64()), ("sam_masks", pa.int32()),
                        ("error", pa.string())])
    header = {"source": {"kind": "folder", "spec": "synthetic"}, "limit": None, "columns": schema.names,
              "scorers": [{"name": "blockiness", "options": {}, "settings": {}, "columns": {}},
                          {"name": "sam", "options": {}, "settings": {}, "columns": {}}]}
    bounds = np.linspace(0, rows, units + 1).astype(int)
    unit_list = [{"id": f"u-{i:05d}", "size": int(b - a), "max_records": None}
                 for i, (a, b) in enumerate(itertools.pairwise(bounds))]
    if extra is not None:
        unit_list.append({"id": "u-extra", "size": extra.num_rows, "max_records": None})
    store = ScoreTable.create(out, header, unit_list)
    if extra is not None:
        store.commit("u-extra", extra.select(schema.names).cast(schema))
    for unit, a, b in zip(unit_list, bounds[:-1], bounds[1:]):
        n = int(b - a)
        bad = rng.random(n) < 0.01
        blockiness = rng.gamma(2.0, 6.0, n)
        blockiness[bad] = np.nan
        masks = rng.poisson(70, n).astype(np.int32)
        table = pa.table({
            "key": [f"n{a + i:09d}" for i in range(n)],
            "origin": [f"train/n{a + i:09d}.JPEG" for i in range(n)],
            "sha256": [f"{a + i:064x}" for i in range(n)],
            "bytes": rng.integers(20_000, 200_000, n),
            "width": np.full(n, 500, np.int32),
            "height": np.full(n, 375, np.int32),
            "format": ["JPEG"] * n,
            "blockiness": blockiness,
            "sam_masks": pa.array(masks, mask=bad),
            "error": pa.array(np.where(bad, "corrupt: x", None)),
        }, schema=schema)
        store.commit(unit["id"], table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_281_167)
    parser.add_argument("--units", type=int, default=1282)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores"
        t = time.perf_counter()
        make_table(scores, args.rows, args.units)
        print(f"built {args.rows:,} rows in {args.units} units: {time.perf_counter() - t:.1f} s")
        cases = {
            "max_blockiness=10": {"max_blockiness": 10},
            "theta sam_masks>=80": {"thetas": {"sam_masks": 80}},
            "max_blockiness=20 + theta 75": {"max_blockiness": 20, "thetas": {"sam_masks": 75}},
            "keep=0.2 by sam_masks": {"keep": 0.2, "by": "sam_masks"},
        }
        t = time.perf_counter()
        select(scores, Path(tmp) / "sel", max_blockiness=10)
        print(f"first select (reads {args.units} unit files, builds the table cache): "
              f"{time.perf_counter() - t:.3f} s")
        for name, kwargs in cases.items():
            times = []
            for _ in range(3):
                t = time.perf_counter()
                result = select(scores, Path(tmp) / "sel", **kwargs)
                times.append(time.perf_counter() - t)
            print(f"{name:32s} best {min(times):.3f} s  (kept {result.kept:,}, thetas {result.thetas})")


if __name__ == "__main__":
    main()

"""Quality-estimate and calibration speed, on one core.

Run:  taskset -c 1 python benchmarks/quality.py [--basis DIR|FILE] [--sizes 3450,30000,300000,1281167]

Prints a Markdown table: seconds per :func:`estimate_quality` call for targets of several sizes and two
distributions, next to the straightforward scipy ``gaussian_kde`` evaluation for the sizes where it is
affordable; then seconds per image for :func:`calibrate` at five qualities on generated textured images.

The distributions: ``narrow`` resamples the basis q95 set (jittered), as a clean corpus gives; ``broad``
is a web-like mix (each value drawn from one of the five basis sets with shares 30/30/20/10/10 %, jittered,
plus 10 % spread evenly over 0-300), where the values span the whole range the estimator keeps;
``uniform`` spreads all values evenly over 0-300 (the widest windows: the worst case).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from PIL import Image
from scipy.special import kl_div
from scipy.stats import gaussian_kde

from diverseg_hf import calibrate, estimate_quality, load_basis
from diverseg_hf.quality.estimate import EPSILON, GRID_POINTS, weighted_quality

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_zoo import textured


def scipy_estimate(values: np.ndarray, basis: dict[int, np.ndarray]) -> float:
    """The released estimator with scipy's evaluation, for comparison only."""
    values = values[values < 300]
    kde = gaussian_kde(values)
    kl = {}
    for q, b in basis.items():
        grid = np.linspace(min(values.min(), b.min()), max(values.max(), b.max()), GRID_POINTS)
        kl[q] = float(np.sum(kl_div(kde(grid) + EPSILON, gaussian_kde(b)(grid) + EPSILON)))
    return weighted_quality(kl)


def target(kind: str, basis: dict[int, np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` synthetic blockiness values of one distribution (module docstring)."""
    if kind == "narrow":
        return rng.choice(basis[95], n) + rng.normal(0.0, 0.5, n)
    if kind == "uniform":
        return rng.uniform(0.0, 300.0, n)
    qualities = sorted(basis, reverse=True)
    shares = np.array([0.3, 0.3, 0.2, 0.1, 0.1][: len(qualities)])
    which = rng.choice(len(qualities), n, p=shares / shares.sum())
    values = np.concatenate([rng.choice(basis[q], int((which == i).sum())) for i, q in enumerate(qualities)])
    values = np.abs(values + rng.normal(0.0, 0.5, n))
    spread = rng.random(n) < 0.1
    values[spread] = rng.uniform(0.0, 300.0, int(spread.sum()))
    return rng.permutation(values)


def timed(fn, *args) -> tuple[float, object]:
    """CPU seconds of one call (the machine is shared, so wall-clock time is noisy) and its result."""
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--basis", help="basis folder or file (default: the packaged DF2K basis)")
    parser.add_argument("--sizes", default="3450,30000,300000,1281167")
    parser.add_argument("--scipy-max", type=int, default=30000, help="largest size also timed with scipy")
    parser.add_argument("--distributions", default="narrow,broad,uniform")
    parser.add_argument("--images", type=int, default=12, help="generated images per calibration size")
    args = parser.parse_args()

    basis = load_basis(args.basis)
    rng = np.random.default_rng(0)
    estimate_quality(basis[95], basis)  # compile the kernel once
    print("| distribution | target values | estimate_quality CPU s | scipy gaussian_kde CPU s | quality | abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in args.distributions.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            values = target(kind, basis, n, rng)
            t_fast, est = timed(estimate_quality, values, basis)
            row = f"| {kind} | {n} | {t_fast:.2f} |"
            if n <= args.scipy_max:
                t_ref, ref = timed(scipy_estimate, values, basis)
                print(f"{row} {t_ref:.2f} | {est.quality:.10f} | {abs(est.quality - ref):.1e} |", flush=True)
            else:
                print(f"{row} - | {est.quality:.10f} | - |", flush=True)
    if args.images <= 0:
        return

    print("\n| calibrate image size | images | qualities | CPU s per image |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in ((128, 128), (480, 500), (1020, 1356)):
            ref = Path(tmp) / f"ref{h}x{w}"
            ref.mkdir()
            for i in range(args.images):
                Image.fromarray(textured(h, w, i)).save(ref / f"{i}.png")
            seconds, _ = timed(calibrate, ref, Path(tmp) / f"basis{h}x{w}")
            print(f"| {h}x{w} | {args.images} | 5 | {seconds / args.images:.3f} |")


if __name__ == "__main__":
    main()

"""Blockiness speed: ns per pixel for decode, decode + score, and the score kernels, on one core.

Run:  python benchmarks/blockiness.py [--images SET5_SET14_DIR] [--generated 20] [--repeat 5]

Prints a Markdown table. "ratio" is (decode + score) / (decode only), the cost of scoring relative to
just reading the images. Baselines: a plain vectorised NumPy float64 version (einsum DCT) and the torch
float64 batch path (CPU, and CUDA when available).
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
from PIL import Image

from diverseg_hf.blockiness import DCT8, block_counts, blockiness_of_gray
from diverseg_hf.images import decode_gray, decode_rgb, find_image_files, rgb_to_gray


def numpy_baseline(gray: np.ndarray) -> float:
    """Plain vectorised NumPy float64 blockiness (einsum block DCT), for comparison only."""
    hb, wb = block_counts(*gray.shape)

    def mean_v(img):
        x = img[: hb * 8, : wb * 8].astype(np.float64).reshape(hb, 8, wb, 8)
        c = np.einsum("ui,aibj,vj->abuv", DCT8, x, DCT8, optimize=True)
        a = c[2 : hb - 1, 2 : wb - 1]
        h = c[2 : hb - 1, 1 : wb - 2] + c[2 : hb - 1, 3:wb] - 2 * a
        v = c[1 : hb - 2, 2 : wb - 1] + c[3:hb, 2 : wb - 1] - 2 * a
        return np.sqrt(h**2 + v**2).sum(axis=(0, 1)) / ((hb - 2) * (wb - 2))

    aligned, shifted = mean_v(gray), mean_v(gray[4:, 4:])
    return float(np.abs((shifted - aligned) / aligned).sum())


def best_time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def generated_corpus(count: int, fmt: str) -> list[bytes]:
    """ImageNet-sized (500x375) smooth-noise images encoded as PNG or JPEG q90."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(small).resize((500, 375), Image.BICUBIC)).astype(int)
        rgb = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append(buf.getvalue())
    return out


def measure(name: str, blobs: list[bytes], repeat: int) -> dict[str, float]:
    pixels = 0
    totals = dict.fromkeys(["decode", "decode+score", "kernel", "gray+kernel", "numpy", "torch-cpu"], 0.0)
    torch_path = _torch_path()
    for data in blobs:
        rgb = decode_rgb(data)
        gray = rgb_to_gray(rgb)
        pixels += gray.size
        totals["decode"] += best_time(lambda d=data: decode_rgb(d), repeat)
        totals["decode+score"] += best_time(lambda d=data: blockiness_of_gray(decode_gray(d)), repeat)
        totals["kernel"] += best_time(lambda g=gray: blockiness_of_gray(g), repeat)
        totals["gray+kernel"] += best_time(lambda r=rgb: blockiness_of_gray(rgb_to_gray(r)), repeat)
        totals["numpy"] += best_time(lambda g=gray: numpy_baseline(g), max(1, repeat // 2))
        if torch_path:
            totals["torch-cpu"] += best_time(lambda g=gray: torch_path([g], device="cpu"), max(1, repeat // 2))
    row = {key: value / pixels * 1e9 for key, value in totals.items()}
    row["ratio"] = totals["decode+score"] / totals["decode"]
    row["images"] = len(blobs)
    row["name"] = name
    return row


def _torch_path():
    try:
        import torch

        torch.set_num_threads(1)
        from diverseg_hf.blockiness_torch import blockiness_torch
    except ImportError:
        return None
    return blockiness_torch


def cuda_throughput(blobs: list[bytes]) -> float | None:
    """Images per second of the torch path on CUDA for a batch of equal-sized images, if available."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from diverseg_hf.blockiness_torch import blockiness_torch

    grays = [torch.from_numpy(decode_gray(b)).cuda() for b in blobs] * 8
    blockiness_torch(grays, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    blockiness_torch(grays, device="cuda")
    torch.cuda.synchronize()
    return len(grays) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="a folder of Set5/Set14 PNGs and their JPEG variants")
    parser.add_argument("--generated", type=int, default=20, help="generated 500x375 images per format")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    corpora = []
    if args.images:
        files = find_image_files([args.images])
        for suffix, label in ((".png", "Set5/Set14 PNG"), (".jpg", "Set5/Set14 JPEG variants")):
            corpora.append((label, [p.read_bytes() for p in files if p.suffix == suffix]))
    for fmt in ("PNG", "JPEG"):
        corpora.append((f"generated 500x375 {fmt}", generated_corpus(args.generated, fmt)))

    columns = ["decode", "decode+score", "ratio", "kernel", "gray+kernel", "numpy", "torch-cpu"]
    print("| corpus | images | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name, blobs in corpora:
        row = measure(name, blobs, args.repeat)
        cells = [f"{row[c]:.2f}x" if c == "ratio" else f"{row[c]:.1f}" for c in columns]
        print(f"| {name} | {row['images']} | " + " | ".join(cells) + " |")
    print("\nAll columns but ratio in ns per pixel (best of repeats, one core).")
    rate = cuda_throughput(corpora[-1][1])
    if rate:
        print(f"torch CUDA float64: {rate:.0f} images/s (500x375, batched)")


if __name__ == "__main__":
    main()

"""Blockiness speed and decode memory, on one core, in CPU time (the machine may be shared).

Run:  python benchmarks/blockiness.py [--images DIR] [--generated 20] [--repeat 7] [--memory]

Prints Markdown tables, all in nanoseconds of CPU time per pixel (best of ``--repeat`` runs, one
thread) unless marked otherwise. Every file is read from disk by every path, as ``cv2.imread`` does:

- ``cv2.imread``: OpenCV's decode only (the released scorer's decoder): the reference denominator.
- ``decode``: the package's strict decode (``decode_rgb``), and ``strict checks``: what the damage
  checks alone cost (the PNG chunk/CRC walk; libjpeg's strict mode costs nothing measurable, see the
  JPEG row), with their share of ``decode``.
- ``gray``, ``kernel``: OpenCV's gray conversion and the blockiness kernel on a decoded image.
- ``end to end``: ``blockiness(path)``: decode + gray + score.
- ``vs imread`` = end to end / ``cv2.imread``; ``vs own decode`` = end to end / ``decode``.

``--memory`` decodes one large JPEG and PNG in fresh subprocesses and prints the peak resident memory
added per pixel (``ru_maxrss`` after minus before).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from PIL import Image

from diverseg_hf import blockiness
from diverseg_hf.blockiness import blockiness_of_gray
from diverseg_hf.containers import check_container
from diverseg_hf.images import decode_rgb, find_image_files, rgb_to_gray

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
COLUMNS = ["cv2.imread", "decode", "strict checks", "gray", "kernel", "end to end", "vs imread", "vs own decode"]


def cpu_best(fn, repeat: int) -> float:
    """Smallest CPU time of ``repeat`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def generated_corpus(folder: Path, count: int, fmt: str) -> list[Path]:
    """ImageNet-sized (500x375) smooth-noise images encoded as PNG or JPEG q90, written to ``folder``."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(small).resize((500, 375), Image.BICUBIC)).astype(int)
        rgb = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{index}.{fmt.lower()}"
        Image.fromarray(rgb).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def measure(paths: list[Path], repeat: int) -> dict[str, float]:
    import cv2

    cv2.setNumThreads(1)
    totals = dict.fromkeys(COLUMNS[:6], 0.0)
    pixels = 0
    for path in paths:
        data = path.read_bytes()
        rgb = decode_rgb(path)
        gray = rgb_to_gray(rgb)
        pixels += gray.size
        totals["cv2.imread"] += cpu_best(lambda p=str(path): cv2.imread(p), repeat)
        totals["decode"] += cpu_best(lambda p=path: decode_rgb(p), repeat)
        totals["strict checks"] += cpu_best(lambda d=data: check_container(d), repeat)
        totals["gray"] += cpu_best(lambda r=rgb: rgb_to_gray(r), repeat)
        totals["kernel"] += cpu_best(lambda g=gray: blockiness_of_gray(g), repeat)
        totals["end to end"] += cpu_best(lambda p=path: blockiness(p), repeat)
    row = {key: value / pixels * 1e9 for key, value in totals.items()}
    row["vs imread"] = totals["end to end"] / totals["cv2.imread"]
    row["vs own decode"] = totals["end to end"] / totals["decode"]
    row["strict share"] = totals["strict checks"] / totals["decode"]
    return row


def jpeg_strict_mode_cost(paths: list[Path], repeat: int) -> float:
    """CPU time of libjpeg-turbo decoding with strict=True over strict=False, minus one (same files)."""
    import simplejpeg

    blobs = [p.read_bytes() for p in paths]
    strict = sum(cpu_best(lambda d=d: simplejpeg.decode_jpeg(d, "RGB", strict=True), repeat) for d in blobs)
    lenient = sum(cpu_best(lambda d=d: simplejpeg.decode_jpeg(d, "RGB", strict=False), repeat) for d in blobs)
    return strict / lenient - 1


def print_speed(corpora: list[tuple[str, list[Path]]], repeat: int) -> None:
    print("| corpus | images | " + " | ".join(COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    for name, paths in corpora:
        row = measure(paths, repeat)
        cells = []
        for column in COLUMNS:
            if column.startswith("vs "):
                cells.append(f"{row[column]:.2f}x")
            elif column == "strict checks":
                cells.append(f"{row[column]:.2f} ({row['strict share']:.1%})")
            else:
                cells.append(f"{row[column]:.2f}")
        print(f"| {name} | {len(paths)} | " + " | ".join(cells) + " |")
    jpegs = [p for _, paths in corpora for p in paths if p.suffix.lower() in (".jpg", ".jpeg")]
    if jpegs:
        cost = jpeg_strict_mode_cost(jpegs, repeat)
        print(f"\nlibjpeg strict mode vs lenient on the same {len(jpegs)} JPEGs: {cost:+.1%} CPU time")


MEMORY_CHILD = """
import resource, sys
from diverseg_hf.images import decode_gray
decode_gray(sys.argv[2])  # warm-up on a small file: imports and compiled code are in the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
decode_gray(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def print_memory() -> None:
    """Peak resident memory added by one decode_gray of a large image, per pixel, in fresh processes."""
    width, height = 6000, 4000
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (height // 50, width // 50, 3), dtype=np.uint8)
    rgb = np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR))
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.png"
        Image.fromarray(rgb[:64, :64]).save(tiny)
        print("| format | pixels | file bytes/px | baseline RSS | peak added | bytes/px |")
        print("|---|---:|---:|---:|---:|---:|")
        for fmt, options in (("JPEG", {"quality": 90}), ("PNG", {"compress_level": 1})):
            path = Path(tmp) / f"big.{fmt.lower()}"
            Image.fromarray(rgb).save(path, fmt, **options)
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), str(tiny)], capture_output=True,
                                 text=True, check=True).stdout.split()
            before, after = (int(v) * 1024 for v in out)  # ru_maxrss is in KiB on Linux
            pixels = width * height
            print(f"| {fmt} | {pixels:,} | {path.stat().st_size / pixels:.2f} | {before / 2**20:.0f} MiB | "
                  f"{(after - before) / 2**20:.0f} MiB | {(after - before) / pixels:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--generated", type=int, default=20, help="generated 500x375 images per format")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory per pixel")
    args = parser.parse_args()
    print(f"CPU time per pixel (ns), best of {args.repeat}, {os.cpu_count()} CPUs visible, one thread used.\n")
    with tempfile.TemporaryDirectory() as tmp:
        corpora = []
        if args.images.exists():
            files = find_image_files([args.images])
            corpora.append(("Set5/Set14 PNG", [p for p in files if p.suffix == ".png"]))
            corpora.append(("Set5/Set14 JPEG variants", [p for p in files if p.suffix == ".jpg"]))
        for fmt in ("PNG", "JPEG"):
            corpora.append((f"generated 500x375 {fmt}", generated_corpus(Path(tmp), args.generated, fmt)))
        print_speed(corpora, args.repeat)
    if args.memory:
        print()
        print_memory()


if __name__ == "__main__":
    main()

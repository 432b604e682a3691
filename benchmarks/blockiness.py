"""Blockiness speed and decode memory, on one core, in CPU time (the machine may be shared).

Run:  python benchmarks/blockiness.py [--images SET5_SET14_DIR] [--generated 20] [--repeat 7] [--memory]

Prints Markdown tables, all in nanoseconds of CPU time per pixel (best of ``--repeat`` runs, one
thread) unless marked otherwise. Every file is read from disk by every path, as ``cv2.imread`` does:

- ``cv2.imread``: OpenCV's decode only (the released scorer's decoder): the reference denominator.
- ``decode``: the package's strict decode (``decode_rgb``), and ``strict checks``: what the damage
  checks alone cost, with their share of ``decode``: for PNG the chunk/CRC walk; for JPEG libjpeg-turbo
  decoding in strict mode minus the same decode in lenient mode (within noise, so it may come out
  negative).
- ``gray``, ``kernel``: OpenCV's gray conversion and the blockiness kernel on a decoded image.
- ``end to end``: ``blockiness(path)``: decode + gray + score.
- ``vs imread`` = end to end / ``cv2.imread``; ``vs own decode`` = end to end / ``decode``.

``--gray-decode`` records a tried shortcut for JPEG: libjpeg's own gray output (the Y channel) against
``BGR2GRAY`` of the RGB decode (equal pixels, whole images equal, speed of the two decodes).

``--memory`` decodes one large JPEG and PNG (``decode_gray``) in fresh subprocesses and prints the peak
resident memory the decode adds, per pixel (Linux: VmHWM after the peak mark is reset, minus VmRSS before).
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
from diverseg_hf.decode.containers import check_container
from diverseg_hf.decode.images import decode_rgb, find_image_files, rgb_to_gray
from diverseg_hf.quality.blockiness import blockiness_of_gray

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
        totals["strict checks"] += strict_cost(data, repeat)
        totals["gray"] += cpu_best(lambda r=rgb: rgb_to_gray(r), repeat)
        totals["kernel"] += cpu_best(lambda g=gray: blockiness_of_gray(g), repeat)
        totals["end to end"] += cpu_best(lambda p=path: blockiness(p), repeat)
    row = {key: value / pixels * 1e9 for key, value in totals.items()}
    row["vs imread"] = totals["end to end"] / totals["cv2.imread"]
    row["vs own decode"] = totals["end to end"] / totals["decode"]
    row["strict share"] = totals["strict checks"] / totals["decode"]
    return row


def strict_cost(data: bytes, repeat: int) -> float:
    """CPU seconds the damage checks add to one decode (see the module docstring)."""
    if data[:3] != b"\xff\xd8\xff":
        return cpu_best(lambda: check_container(data), repeat)
    import simplejpeg

    strict = cpu_best(lambda: simplejpeg.decode_jpeg(data, "RGB", strict=True), repeat)
    return strict - cpu_best(lambda: simplejpeg.decode_jpeg(data, "RGB", strict=False), repeat)


def print_gray_decode(paths: list[Path], repeat: int) -> None:
    """libjpeg's gray output (``simplejpeg`` ``"GRAY"``) against ``BGR2GRAY`` of the RGB decode: equality, speed."""
    import simplejpeg

    from diverseg_hf.decode.images import decode_gray

    equal = total = whole = 0
    t_rgb = t_gray = 0.0
    for path in paths:
        data = path.read_bytes()
        diff = decode_gray(data) != simplejpeg.decode_jpeg(data, "GRAY", strict=True)[..., 0]
        equal, total, whole = equal + int((~diff).sum()), total + diff.size, whole + int(not diff.any())
        t_rgb += cpu_best(lambda d=data: rgb_to_gray(simplejpeg.decode_jpeg(d, "RGB", strict=True)), repeat)
        t_gray += cpu_best(lambda d=data: simplejpeg.decode_jpeg(d, "GRAY", strict=True), repeat)
    print(f"\nJPEG decoded straight to gray: {equal / total:.1%} of pixels equal to BGR2GRAY, {whole}/{len(paths)} "
          f"images equal; {t_gray / t_rgb:.2f}x the time of RGB decode + BGR2GRAY")


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


def cuda_throughput(paths: list[Path]) -> float | None:
    """Images per second of the float64 torch path on CUDA for a batch of equal-sized images, if available."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    from diverseg_hf.decode.images import decode_gray
    from diverseg_hf.quality.blockiness_torch import blockiness_torch

    grays = [torch.from_numpy(decode_gray(p)).cuda() for p in paths] * 8
    blockiness_torch(grays, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    blockiness_torch(grays, device="cuda")
    torch.cuda.synchronize()
    return len(grays) / (time.perf_counter() - start)


MEMORY_CHILD = """
import sys
from diverseg_hf.decode.images import decode_gray

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key + ":"))

decode_gray(sys.argv[2])  # warm-up on a small file: imports and compiled code are in the baseline
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
before = status("VmRSS")
decode_gray(sys.argv[1])
print(before, status("VmHWM"))
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
        rgba = np.dstack([rgb, rgb[..., :1]])
        cases = (("JPEG", rgb, {"quality": 90}), ("PNG", rgb, {"compress_level": 1}),
                 ("PNG RGBA", rgba, {"compress_level": 1}))
        for fmt, pixels_in, options in cases:
            path = Path(tmp) / f"big_{fmt.replace(' ', '_').lower()}.{fmt.split()[0].lower()}"
            Image.fromarray(pixels_in).save(path, fmt.split()[0], **options)
            out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), str(tiny)], capture_output=True,
                                 text=True, check=True).stdout.split()
            before, after = (int(v) for v in out)
            pixels = width * height
            print(f"| {fmt} | {pixels:,} | {path.stat().st_size / pixels:.2f} | {before / 2**20:.0f} MiB | "
                  f"{(after - before) / 2**20:.0f} MiB | {(after - before) / pixels:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="a folder of Set5/Set14 PNGs and their JPEG variants")
    parser.add_argument("--generated", type=int, default=20, help="generated 500x375 images per format")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory per pixel")
    parser.add_argument("--gray-decode", action="store_true", help="also check decoding JPEGs straight to gray")
    args = parser.parse_args()
    print(f"CPU time per pixel (ns), best of {args.repeat}, {os.cpu_count()} CPUs visible, one thread used.\n")
    with tempfile.TemporaryDirectory() as tmp:
        corpora = []
        if args.images:
            files = find_image_files([args.images])
            corpora.append(("Set5/Set14 PNG", [p for p in files if p.suffix == ".png"]))
            corpora.append(("Set5/Set14 JPEG variants", [p for p in files if p.suffix == ".jpg"]))
        for fmt in ("PNG", "JPEG"):
            corpora.append((f"generated 500x375 {fmt}", generated_corpus(Path(tmp), args.generated, fmt)))
        print_speed(corpora, args.repeat)
        rate = cuda_throughput(corpora[-1][1])
        if rate:
            print(f"\ntorch CUDA float64: {rate:.0f} images/s (generated 500x375 JPEGs, batched, wall clock)")
        if args.gray_decode:
            print_gray_decode([p for _, paths in corpora for p in paths if p.suffix in (".jpg", ".jpeg")], args.repeat)
    if args.memory:
        print()
        print_memory()


if __name__ == "__main__":
    main()

"""SRPairs streaming speed: (LR, HR) pairs per second per DataLoader worker vs decode-only.

Run:  python benchmarks/sr_stream.py [--images 160] [--shards 4] [--workers 0 1 2] [--patch 192]

Writes a synthetic published folder (ImageNet-sized 500x375 images, half PNG, half JPEG q90, in
Parquet and WebDataset shards) to a temp dir, then times one epoch of ``SRPairs`` through a
``DataLoader`` (batch 16, x4, 192x192 HR patches, augmentation on) for each format and worker count
(0 = in the main process). "decode-only" is ``decode_rgb`` on the same bytes held in memory, one
core, measured again right before each row (the machine may be shared: compare within a row).
"ratio" = pairs/s per worker / decode-only images/s: the share of a core's decode rate that survives
reading shards, cropping, MATLAB bicubic LR and collation. Epoch times include worker start. Each
figure is the best of ``--repeat`` runs. The CPU-time lines (main process, no workers) give the same
ratio without the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch

from diverseg_hf.images import decode_rgb
from diverseg_hf.sr import SRPairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # reuse the test folder writer
from image_zoo import textured
from sr_folder import encode, write_published_folder


def build(root: Path, count: int, shards: int) -> list[bytes]:
    records = []
    for i in range(count):
        fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
        records.append((f"img{i:05d}", encode(textured(375, 500, seed=i), fmt), ext))
    write_published_folder(root, records, config="I", shards=shards)
    return [b for _, b, _ in records]


def decode_rate(blobs: list[bytes]) -> float:
    start = time.perf_counter()
    for b in blobs:
        decode_rgb(b)
    return len(blobs) / (time.perf_counter() - start)


def pairs_rate(root: Path, fmt: str, workers: int, patch: int) -> tuple[float, int]:
    pairs = SRPairs.from_folder(root, "I", format=fmt, scale=4, patch_size=patch)
    loader = torch.utils.data.DataLoader(pairs, batch_size=16, num_workers=workers)
    start = time.perf_counter()
    n = sum(len(batch["key"]) for batch in loader)
    return n / (time.perf_counter() - start), n


def cpu_ms(fn, count: int) -> float:
    """CPU milliseconds per item of ``fn()`` in this process (insensitive to other load on the machine)."""
    start = time.process_time()
    fn()
    return (time.process_time() - start) / count * 1e3


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--patch", type=int, default=192)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        blobs = build(root, args.images, args.shards)
        decode_rate(blobs[:8])  # warm up
        print(f"{args.images} images 500x375 (PNG/JPEG q90), {args.shards} shards, {os.cpu_count()} CPUs\n")
        decode_ms = min(cpu_ms(lambda: decode_rate(blobs), len(blobs)) for _ in range(args.repeat))
        for fmt in ("parquet", "webdataset"):
            one_epoch = functools.partial(pairs_rate, root, fmt, 0, args.patch)
            pair_ms = min(cpu_ms(one_epoch, len(blobs)) for _ in range(args.repeat))
            print(f"CPU per image, in process, {fmt}: decode-only {decode_ms:.2f} ms, SRPairs pair {pair_ms:.2f} ms "
                  f"-> ratio {decode_ms / pair_ms:.2f}")
        print()
        print("| format | workers | decode-only img/s (1 core) | pairs/s | pairs/s per worker | ratio |")
        print("|---|---|---|---|---|---|")
        for fmt in ("parquet", "webdataset"):
            for workers in args.workers:
                base = max(decode_rate(blobs) for _ in range(args.repeat))
                rate, n = max(pairs_rate(root, fmt, workers, args.patch) for _ in range(args.repeat))
                assert n == args.images, (n, args.images)
                per = rate / max(workers, 1)
                print(f"| {fmt} | {workers} | {base:.1f} | {rate:.1f} | {per:.1f} | {per / base:.2f} |")


if __name__ == "__main__":
    main()

"""SRPairs streaming speed: (LR, HR) pairs per CPU-second per DataLoader worker vs decode-only images.

Run:  python benchmarks/sr_stream.py [--images 160] [--shards 4] [--workers 0 1 2] [--patch 192]

Writes a synthetic published folder (ImageNet-sized 500x375 images, half PNG, half JPEG q90, in
Parquet shards laid out as publish writes them and WebDataset shards) to a temp dir, then runs one
epoch of ``SRPairs`` through a ``DataLoader`` (batch 16, x4, 192x192 HR patches, augmentation on)
for each format, LR convention and worker count (0 = in the main process). Everything is measured
in CPU time, so that a shared machine does not lie: "decode-only" is ``decode_rgb`` on the same
bytes held in memory (this process's CPU time per image); a pair's cost is the CPU time of the
process(es) that made it (the main process for 0 workers; the workers, from
``getrusage(RUSAGE_CHILDREN)``, which they reach when they exit at the end of the epoch, worker
start included). "ratio" = decode-only ms per image / ms per pair: the share of a core's decode
rate that survives reading shards, cropping, the MATLAB bicubic LR, collation and the DataLoader; a
constant per-worker figure from 1 to 2 workers means linear scaling. Each figure is the best of
``--repeat`` runs. The rows "patch, partial" use ``partial_decode=True`` (PNGs decoded only down to the
patch's last row); their ratio is still against the full decode, so it may exceed 1.

Two reference lines follow the table: the DataLoader's own cost per pair (a dataset that yields
ready-made tensors of the same shapes: collation, and with workers the shared-memory batches and
queues), and the CPU cost of starting (and stopping) one worker (an empty epoch), which a short
epoch pays in full: rerun with more ``--images`` to amortise it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch

from diverseg_hf.decode.images import decode_rgb
from diverseg_hf.sr import SRPairs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # reuse the test folder writer
from image_zoo import textured
from sr_folder import encode, write_published_folder

warnings.filterwarnings("ignore", "This DataLoader will create")  # more workers than cores: on purpose


def build(root: Path, count: int, shards: int) -> list[bytes]:
    records = []
    for i in range(count):
        fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
        records.append((f"img{i:05d}", encode(textured(375, 500, seed=i), fmt), ext))
    write_published_folder(root, records, config="I", shards=shards)
    return [b for _, b, _ in records]


def decode_ms(blobs: list[bytes]) -> float:
    """CPU milliseconds per image of ``decode_rgb`` in this process."""
    start = time.process_time()
    for b in blobs:
        decode_rgb(b)
    return (time.process_time() - start) / len(blobs) * 1e3


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pair_ms(root: Path, fmt: str, workers: int, patch: int, lr_from: str) -> tuple[float, int]:
    """CPU milliseconds per pair of one epoch, in the process(es) that made the pairs; and the pair count.

    After the LR convention, ``", partial"`` sets ``partial_decode=True`` and ``", uint8"`` ``dtype="uint8"``
    (e.g. ``"patch, partial, uint8"``).
    """
    name, *flags = (part.strip() for part in lr_from.split(","))
    pairs = SRPairs.from_folder(root, "I", format=fmt, scale=4, patch_size=patch, lr_from=name,
                                partial_decode="partial" in flags, dtype="uint8" if "uint8" in flags else "float32")
    return loader_ms(pairs, workers)


class _ReadyPairs(torch.utils.data.IterableDataset):
    """``count`` ready-made examples shaped like SRPairs' (the DataLoader's share of the cost)."""

    def __init__(self, count: int, patch: int):
        self.count, self.patch = count, patch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = range(info.id, self.count, info.num_workers) if info else range(self.count)
        for i in mine:
            hr, lr = torch.empty(3, self.patch, self.patch), torch.empty(3, self.patch // 4, self.patch // 4)
            yield {"key": str(i), "lr": lr, "hr": hr, "pos": torch.tensor([0, 1, i, 0, 0])}


def loader_ms(dataset: Any, workers: int) -> tuple[float, int]:
    """CPU milliseconds per example of one epoch of ``dataset`` in the process(es) that made the batches."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, num_workers=workers)
    main0, child0 = time.process_time(), _children_cpu()
    n = sum(len(batch["key"]) for batch in loader)
    del loader  # workers exit: their CPU time reaches RUSAGE_CHILDREN
    spent = _children_cpu() - child0 if workers else time.process_time() - main0
    return spent / max(n, 1) * 1e3, n


def references(args: argparse.Namespace) -> None:
    for workers in args.workers:
        floor = min(loader_ms(_ReadyPairs(args.images, args.patch), workers)[0] for _ in range(args.repeat))
        start = 0.0
        if workers:
            start = min(loader_ms(_ReadyPairs(0, args.patch), workers)[0] for _ in range(args.repeat)) / workers
        print(f"- {workers} workers: DataLoader alone {floor:.2f} ms/pair per worker"
              + (f"; one worker's start and stop {start:.1f} ms CPU" if workers else ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--patch", type=int, default=192)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lr-from", nargs="+", default=["patch", "image", "patch, partial", "patch, uint8",
                                                      "patch, partial, uint8"])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        blobs = build(root, args.images, args.shards)
        decode_ms(blobs[:8])  # warm up
        print(f"{args.images} images 500x375 (PNG/JPEG q90), {args.shards} shards, {os.cpu_count()} CPUs, "
              f"x4, {args.patch}-pixel patches\n")
        print("| format | lr_from | workers | decode-only ms/img | ms/pair per worker | ratio |")
        print("|---|---|---|---|---|---|")
        for fmt in ("parquet", "webdataset"):
            for lr_from in args.lr_from:
                for workers in args.workers:
                    base = min(decode_ms(blobs) for _ in range(args.repeat))
                    cost, n = min(pair_ms(root, fmt, workers, args.patch, lr_from) for _ in range(args.repeat))
                    assert n == args.images, (n, args.images)
                    print(f"| {fmt} | {lr_from} | {workers} | {base:.2f} | {cost:.2f} | {base / cost:.2f} |")
        print()
        references(args)


if __name__ == "__main__":
    main()

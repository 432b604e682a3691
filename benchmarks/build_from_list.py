"""Benchmark: `build --from-list` (match a list against an ImageNet-like tree, decode-check, publish) and
reading the result with the ``DiverSegBuilder`` class vs ``load_dataset``.

Run: python benchmarks/build_from_list.py [--images 1500] [--listed 1000] [--height 375] [--width 500]
Writes ``train/<synset>/<synset>_<n>.JPEG`` (q90 textures, ImageNet's typical 500x375), lists
``--listed`` of them plus 1% absent names, then times each step once.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diverseg_hf.subsets.build import build


def texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC)).astype(np.int16)
    return np.clip(big + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--listed", type=int, default=1000)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    args = parser.parse_args()
    import datasets

    from diverseg_hf.subsets.builder import DiverSegBuilder

    datasets.disable_progress_bars()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rels, total = [], 0
        for i in range(args.images):
            synset = f"n{1440764 + i % 50:08d}"
            rel = f"{synset}/{synset}_{i}.JPEG"
            buf = io.BytesIO()
            Image.fromarray(texture(rng, args.height, args.width)).save(buf, "JPEG", quality=90)
            (root / "train" / synset).mkdir(parents=True, exist_ok=True)
            (root / "train" / rel).write_bytes(buf.getvalue())
            rels.append(rel)
            total += buf.tell()
        listed = sorted(rng.choice(rels, args.listed, replace=False).tolist())
        absent = [f"n09999999/n09999999_{i}.JPEG" for i in range(max(1, args.listed // 100))]
        (root / "list.txt").write_text("\n".join(listed + absent) + "\n")
        print(f"tree: {args.images} JPEGs {args.width}x{args.height}, {total / 1e6:.1f} MB; "
              f"list: {args.listed} present + {len(absent)} absent")

        start = time.perf_counter()
        result = build("I", root / "diverseg", source=str(root / "train"), from_list=root / "list.txt",
                       progress=False)
        took = time.perf_counter() - start
        mb = sum(p.stat().st_size for p in (root / "diverseg" / "data" / "I").glob("*.parquet")) / 1e6
        print(f"build --from-list: {result.num_examples} published, {len(result.missing)} reported missing, "
              f"{took:.2f} s = {result.num_examples / took:.0f} img/s, {mb / took:.1f} MB/s")

        start = time.perf_counter()
        ds = datasets.load_dataset(str(root / "diverseg"), "I", split="train", cache_dir=str(root / "c1"))
        print(f"load_dataset(folder, 'I'): {len(ds)} rows in {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        builder = DiverSegBuilder(config_name="I", data_dir=str(root / "diverseg"), cache_dir=str(root / "c2"))
        builder.download_and_prepare()
        ds = builder.as_dataset(split="train")
        print(f"DiverSeg builder download_and_prepare + as_dataset: {len(ds)} rows in "
              f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()

"""Write a tiny published dataset folder the way the publish phase lays it out (for SR tests).

Layout: ``data/<config>/train-XXXXX-of-YYYYY.parquet`` (an ``image`` column typed as ``datasets``
Image, i.e. ``struct<bytes, path>`` with the ``huggingface`` schema metadata, plus ``key`` and a
score column), ``wds/<config>/train-XXXXX.tar`` (``<key>.<ext>`` + ``<key>.json``) and a README whose
YAML declares the config, so ``load_dataset(folder, config)`` reads it. Built here with pyarrow and
``datasets.Features`` only, independent of the package's publish code.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shared_data

FEATURES = datasets.Features(
    {"key": datasets.Value("string"), "image": datasets.Image(), "blockiness": datasets.Value("float64")}
)


def encode(rgb: np.ndarray, fmt: str = "PNG") -> bytes:
    """PNG, or JPEG at quality 95."""
    return shared_data.encode(rgb, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def write_published_folder(
    root: str | Path, records: list[tuple[str, bytes, str]], config: str = "I", shards: int = 3
) -> Path:
    """``records`` = (key, encoded bytes, extension); split contiguously into ``shards`` shards."""
    root = Path(root)
    (root / "data" / config).mkdir(parents=True, exist_ok=True)
    (root / "wds" / config).mkdir(parents=True, exist_ok=True)
    bounds = [len(records) * i // shards for i in range(shards + 1)]
    for s in range(shards):
        part = records[bounds[s] : bounds[s + 1]]
        rows = {
            "key": [k for k, _, _ in part],
            "image": [{"bytes": b, "path": f"{k}.{ext}"} for k, b, ext in part],
            "blockiness": [1.5] * len(part),
        }
        table = pa.Table.from_pydict(rows, schema=FEATURES.arrow_schema)
        # as publish writes shards: images stored uncompressed, the rest zstd, 100-row row groups
        compression = {name: "none" if name == "image" else "zstd" for name in table.column_names}
        path = root / "data" / config / f"train-{s:05d}-of-{shards:05d}.parquet"
        pq.write_table(table, path, compression=compression, row_group_size=100)
        with tarfile.open(root / "wds" / config / f"train-{s:05d}.tar", "w") as tar:
            for key, data, ext in part:
                for name, payload in ((f"{key}.{ext}", data), (f"{key}.json", json.dumps({"key": key}).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    card = (
        "---\nconfigs:\n"
        f"- config_name: {config}\n  data_files:\n  - split: train\n    path: data/{config}/train-*.parquet\n---\n"
    )
    (root / "README.md").write_text(card)
    return root


def phase_inputs(root: Path, published: int = 1) -> dict[str, Path]:
    """Inputs of every writing command under ``root``: a source folder (3 images), its score table and
    selection, and a published folder of ``published`` (1 or 2) random images."""
    from pipeline_helpers import good_images, write_files

    from diverseg_hf.score import score
    from diverseg_hf.select import select

    write_files(root / "src", good_images(3))
    score(str(root / "src"), root / "scores", progress=False)
    select(root / "scores", root / "sel")
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    images = [("a", shared_data.encode(rgb), "png"), ("b", shared_data.encode(rgb[::-1]), "png")][:published]
    pub = write_published_folder(root / "pub", images, shards=1)
    return {"src": root / "src", "scores": root / "scores", "sel": root / "sel", "pub": pub}

"""One folder walk for every command that reads a folder (issue 19): ``score``, ``blockiness`` and
``calibrate`` see the same image set on a folder with hidden files, odd suffixes, links and special files."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from diverseg_hf.cli import main
from diverseg_hf.decode.images import find_image_files

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs symlinks and FIFOs")

TAKEN = {"a.png", "B.JPG", "sub/c.png", "pipe.png", "dangling.png", "empty.png", "deep/e.tif"}


def _png(seed: int, fmt: str = "PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    for rel, data in {"a.png": _png(0), "B.JPG": _png(1, "JPEG"), "sub/c.png": _png(2), "deep/e.tif": _png(3, "TIFF"),
                      ".hidden.png": _png(4), "sub/.d.png": _png(5), "notes.txt": b"x", "empty.png": b"",
                      ".git/f.png": _png(6)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    os.mkfifo(root / "pipe.png")
    (root / "dangling.png").symlink_to(root / "gone.png")
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link loop
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)  # a second way to sub/
    return root


def test_find_image_files_follows_the_score_rules(tricky: Path):
    assert {p.relative_to(tricky).as_posix() for p in find_image_files([tricky])} == TAKEN


def test_score_blockiness_and_calibrate_see_the_same_images(tricky: Path, tmp_path: Path):
    assert main(["score", str(tricky), "--out", str(tmp_path / "scores"), "--scorers", "blockiness"]) == 0
    table = pq.read_table(next((tmp_path / "scores").rglob("units/*.parquet")))
    scored = set(table.column("origin").to_pylist())

    assert main(["blockiness", str(tricky), "-o", str(tmp_path / "b.tsv")]) == 0
    tsv = {Path(line.split("\t")[0]).relative_to(tricky).as_posix()
           for line in (tmp_path / "b.tsv").read_text().splitlines()}

    assert main(["calibrate", str(tricky), "--out", str(tmp_path / "basis"), "--qualities", "100"]) == 0
    record = json.loads((tmp_path / "basis" / "basis.json").read_text())
    ok = {line.split("\t")[0] for line in (tmp_path / "basis" / "corpus.txt").read_text().splitlines()}
    failed = {example.split(" (q100)")[0] for example in record["failure_examples"]}

    assert scored == tsv == ok | failed == TAKEN
    assert record["images"] == len(TAKEN)
    errors = dict(zip(table.column("origin").to_pylist(), table.column("error").to_pylist()))
    assert errors["pipe.png"] == "unsupported: a FIFO, not a regular file (not opened)"
    assert errors["dangling.png"].startswith("missing: dangling symlink")


def test_parquet_shards_are_found_by_the_same_walk(tmp_path: Path):
    import pyarrow as pa

    from diverseg_hf.sources import open_source

    root = tmp_path / "shards"
    for rel in ("a.parquet", "sub/B.PARQUET", ".hidden.parquet", ".cache/c.parquet"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"key": [Path(rel).stem], "image": [_png(7)]}), root / rel)
    os.mkfifo(root / "pipe.parquet")  # never opened: it would block the run
    (root / "loop").symlink_to(root, target_is_directory=True)
    keys = [r.key for u in open_source(str(root)).units() for r in u.records()]
    assert keys == ["a", "B"]

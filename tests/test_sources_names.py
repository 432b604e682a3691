"""File names that are not valid UTF-8 (issue 20, item 1): every command that reads a folder gives a row
for each file, keys stay unique and decode back to the names, and what is written is valid UTF-8."""

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
from diverseg_hf.keys import decode_key, encode_key, printable_name

# bytes names: one not UTF-8, one spelling the same bytes as an escape, one plain
NAMES = (b"bad\xff.png", b"bad%FF.png", b"good.png", b"sub\xe9/x\xc3(.png")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs byte file names")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for seed, name in enumerate(NAMES):
        path = os.path.join(bytes(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        with open(path, "wb") as fh:
            fh.write(buf.getvalue())
    return root


def _stems() -> set[str]:
    return {os.path.splitext(os.fsdecode(n))[0] for n in NAMES}


def test_keys_of_non_utf8_names_are_unique_valid_and_reversible():
    names = [os.fsdecode(n) for n in NAMES] + ["bad%25FF.png", "a.b%2E"]
    keys = [encode_key(n) for n in names]
    assert len(set(keys)) == len(keys)
    assert [decode_key(k) for k in keys] == names
    for key in keys:
        key.encode("utf-8")  # no surrogate left
    assert encode_key(os.fsdecode(b"bad\xff.png")) == "bad%FF%2Epng"
    assert printable_name(os.fsdecode(b"x\xff/y")) == "x%FF/y"


def test_score_gives_a_row_for_every_name(folder: Path, tmp_path: Path):
    assert main(["score", str(folder), "--out", str(tmp_path / "scores"), "--scorers", "blockiness"]) == 0
    table = pq.read_table(next((tmp_path / "scores").rglob("*.parquet")))
    keys = table.column("key").to_pylist()
    assert {decode_key(k) for k in keys} == _stems()
    assert table.column("error").to_pylist() == [None] * len(NAMES)
    assert "bad%FF.png" in table.column("origin").to_pylist()


def test_curate_publishes_every_name(folder: Path, tmp_path: Path):
    out = tmp_path / "ds"
    assert main(["curate", str(folder), "--out", str(out), "--name", "m", "--scorers", "blockiness",
                 "--format", "parquet,webdataset"]) == 0
    table = pq.read_table(next((out / "data" / "m").glob("*.parquet")))
    assert {decode_key(k) for k in table.column("key").to_pylist()} == _stems()
    json.loads((out / ".diverseg" / "configs.json").read_text(encoding="utf-8"))


def test_blockiness_tsv_and_calibrate_write_every_name(folder: Path, tmp_path: Path):
    out = tmp_path / "b.tsv"
    assert main(["blockiness", str(folder), "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(NAMES)
    # a name that is not UTF-8 is written as an ASCII JSON string (the TSV escaping), which reads back exactly
    assert json.dumps(f"{folder}/" + os.fsdecode(b"bad\xff.png")) in [line.split("\t")[0] for line in lines]
    assert main(["calibrate", str(folder), "--out", str(tmp_path / "basis"), "--qualities", "100"]) == 0
    written = (tmp_path / "basis" / "src.txt").read_text(encoding="utf-8").splitlines()
    assert len(written) == len(NAMES)
    assert json.dumps(os.fsdecode(b"bad\xff.png")) in [line.split("\t")[0] for line in written]

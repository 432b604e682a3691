"""Nothing outside a source is read, and nothing but a bounded regular file (issue 20, items 3 and 6).

A hostile Parquet file names files by path cells (``bytes`` null): an absolute path, ``..``, a symlink
leading out of its folder, a FIFO, ``/dev/zero``. Each is an error row; nothing outside the folder is
read, nothing blocks, the good rows beside them are scored. A sparse 8 GB folder entry is refused
from its size before any byte is read.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from diverseg_hf.cli import main
from diverseg_hf.decode.folders import read_file
from diverseg_hf.decode.images import read_bytes
from diverseg_hf.errors import ImageError
from diverseg_hf.sources import open_source

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(seed: int = 90) -> bytes:
    """A textured 64x64 PNG (blockiness is defined for it)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _write_cells(path: Path, cells: list[dict]) -> None:
    keys = [f"k{i}" for i in range(len(cells))]
    pq.write_table(pa.table({"key": keys, "image": pa.array(cells, _IMAGE)}), path)


def _records(spec: Path) -> dict[str, tuple[bytes, str | None]]:
    return {r.key: (r.data, r.error) for u in open_source(str(spec)).units() for r in u.records()}


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A private image outside the source folder: it must never be read into a record."""
    path = tmp_path / "private" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(_png(7))
    return path


def test_path_cells_outside_the_parquet_folder_are_error_rows(tmp_path: Path, secret: Path):
    src = tmp_path / "src"
    (src / "imgs").mkdir(parents=True)
    (src / "imgs" / "good.png").write_bytes(_png())
    (src / "imgs" / "escape.png").symlink_to(secret)
    (src / "linkdir").symlink_to(secret.parent, target_is_directory=True)
    _write_cells(src / "hostile.parquet", [
        {"bytes": None, "path": str(secret)},  # absolute
        {"bytes": None, "path": "../private/secret.png"},  # ..
        {"bytes": None, "path": "imgs/../../private/secret.png"},  # .. after a real folder
        {"bytes": None, "path": "imgs/escape.png"},  # a symlink leading out
        {"bytes": None, "path": "linkdir/secret.png"},  # a directory link leading out
        {"bytes": None, "path": "file:///" + str(secret)},  # a URL
        {"bytes": None, "path": "imgs/good.png"},  # inside: read
        {"bytes": None, "path": str(src / "imgs" / "good.png")},  # absolute but inside: read
    ])
    records = _records(src / "hostile.parquet")
    for key in ("k0", "k1", "k2", "k3", "k4", "k5"):
        data, error = records[key]
        assert data == b"" and error.startswith("refused: image cell path"), (key, error)
        assert "outside the source folder" in error
    assert records["k6"] == (_png(), None)
    assert records["k7"] == (_png(), None)


def test_hub_source_path_cells_never_read_local_files(tmp_path: Path, secret: Path):
    from diverseg_hf.sources.base import cell_record

    record = cell_record("k", {"bytes": None, "path": str(secret)}, None, "org/ds:train#row=0")
    assert record.data == b"" and record.error.startswith("refused: ")


def test_score_publishes_no_file_from_outside_the_source(tmp_path: Path, secret: Path):
    src = tmp_path / "src"
    src.mkdir()
    _write_cells(src / "a.parquet", [{"bytes": _png(), "path": None}, {"bytes": None, "path": "../private/secret.png"}])
    out = tmp_path / "dataset"
    assert main(["curate", str(src), "--out", str(out), "--name", "mine", "--scorers", "blockiness",
                 "--format", "parquet"]) == 0
    published = b"".join(p.read_bytes() for p in out.rglob("*.parquet"))
    assert _png(7) not in published
    assert _png() in published


def test_special_files_named_by_path_cells_are_error_rows_without_blocking(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe.png")
    with open(src / "sparse.png", "wb") as fh:
        fh.truncate(8 << 30)  # 8 GB, sparse: no disk used
    (src / "zero.png").symlink_to("/dev/zero")
    _write_cells(src / "special.parquet", [
        {"bytes": None, "path": "pipe.png"},
        {"bytes": None, "path": "zero.png"},
        {"bytes": None, "path": "sparse.png"},
        {"bytes": _png(), "path": None},
    ])
    records = _records(src / "special.parquet")
    assert "a FIFO, not a regular file (not opened)" in records["k0"][1]
    # /dev/zero lies outside the folder (refused), and is a device: either way never read
    assert records["k1"][0] == b"" and records["k1"][1].startswith("refused: ")
    assert "exceeds the file size limit" in records["k2"][1]
    assert records["k3"] == (_png(), None)


def test_one_read_rule_for_files(tmp_path: Path):
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as fh:
        fh.truncate(8 << 30)
    os.mkfifo(tmp_path / "pipe.png")
    for read in (read_file, read_bytes):
        with pytest.raises(ImageError, match="too-large: 8,589,934,592 bytes exceeds the file size limit"):
            read(sparse)
        with pytest.raises(ImageError, match="unsupported: a FIFO"):
            read(tmp_path / "pipe.png")
        with pytest.raises(ImageError, match="unsupported: a character device"):
            read("/dev/zero")
    small = tmp_path / "small.png"
    small.write_bytes(b"12345")
    assert read_file(small, max_bytes=5) == b"12345"
    with pytest.raises(ImageError, match="too-large"):
        read_file(small, max_bytes=4)


def test_folder_source_refuses_a_sparse_8gb_entry_from_its_size(tmp_path: Path):
    (tmp_path / "good.png").write_bytes(_png())
    with open(tmp_path / "huge.png", "wb") as fh:
        fh.truncate(8 << 30)
    os.mkfifo(tmp_path / "pipe.png")
    records = _records(tmp_path)
    assert records["good"] == (_png(), None)
    assert records["huge"][1].startswith("too-large: 8,589,934,592 bytes exceeds the file size limit")
    assert records["pipe"][1] == "unsupported: a FIFO, not a regular file (not opened)"

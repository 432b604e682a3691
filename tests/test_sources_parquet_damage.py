"""A damaged Parquet file never aborts a run (issue 20, item 2): a row group whose pages cannot be read
gives one error row per row (keys kept), a file whose footer cannot be read gives one error row, and
every other row and file is scored; a re-run does the same."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from diverseg_hf.cli import main
from diverseg_hf.sources import open_source

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _write(path: Path, prefix: str, rows: int = 6, group: int = 3) -> None:
    cells = [{"bytes": _png(i), "path": None} for i in range(rows)]
    table = pa.table({"key": [f"{prefix}{i}" for i in range(rows)], "image": pa.array(cells, _IMAGE)})
    pq.write_table(table, path, row_group_size=group)


def _damage_page(path: Path, group: int, column: str) -> None:
    """Overwrite the first page header of ``column`` in row group ``group`` (the footer stays valid)."""
    meta = pq.ParquetFile(path).metadata.row_group(group)
    chunk = next(meta.column(c) for c in range(meta.num_columns) if meta.column(c).path_in_schema == column)
    offset = chunk.dictionary_page_offset or chunk.data_page_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 16)


def _records(spec: Path) -> dict[str, str | None]:
    return {r.key: r.error for u in open_source(str(spec)).units() for r in u.records()}


@pytest.mark.parametrize("column", ["image.bytes", "key"])
def test_a_damaged_row_group_gives_error_rows_and_the_rest_is_read(tmp_path: Path, column: str):
    path = tmp_path / "a.parquet"
    _write(path, "a")
    _damage_page(path, 0, column)
    with pytest.raises(OSError, match="thrift"):
        pq.read_table(path)  # the damage is real
    errors = _records(path)
    # a damaged key column: that group's keys are file + row; a damaged image column keeps the key cells
    damaged = ["a/00000000", "a/00000001", "a/00000002"] if column == "key" else ["a0", "a1", "a2"]
    assert list(errors) == [*damaged, "a3", "a4", "a5"]
    for key in damaged:
        assert errors[key].startswith("corrupt: Parquet row group 0 unreadable (Couldn't deserialize thrift")
    assert [errors[k] for k in ("a3", "a4", "a5")] == [None, None, None]


def test_a_damaged_footer_is_one_error_row(tmp_path: Path):
    path = tmp_path / "b.parquet"
    _write(path, "b")
    data = bytearray(path.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # footer length past the file start
    path.write_bytes(bytes(data))
    errors = _records(path)
    assert list(errors) == ["b"]
    assert errors["b"].startswith("corrupt: Parquet file unreadable")


def test_score_and_rerun_score_the_good_file_beside_a_damaged_one(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    _write(src / "bad.parquet", "bad")
    _damage_page(src / "bad.parquet", 1, "image.bytes")
    _write(src / "good.parquet", "good")
    out = tmp_path / "scores"
    for extra in ([], ["--resume"], ["--overwrite"]):
        assert main(["score", str(src), "--out", str(out), "--scorers", "blockiness", *extra]) == 0
        rows = pa.concat_tables(pq.read_table(p) for p in sorted(out.rglob("units/*.parquet"))).to_pylist()
        by_key = {r["key"]: r for r in rows}
        assert len(by_key) == 12
        assert all(by_key[f"good{i}"]["error"] is None for i in range(6))
        assert all(by_key[f"bad{i}"]["error"] is None for i in range(3))
        assert all(by_key[f"bad{i}"]["error"].startswith("corrupt: Parquet row group 1") for i in range(3, 6))

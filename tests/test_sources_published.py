"""One reader of a published folder (issue 19) with the path-cell rule (issue 20 item 6): ``export`` and the
SR readers read a published folder through ``sources.published``; a shard whose image cell names a file
outside the folder by path gives an error record, and that file is never exported nor streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")

from sr_folder import FEATURES, encode, write_published_folder

from diverseg_hf.sources.published import open_published
from diverseg_hf.sr.export import export_basicsr
from diverseg_hf.sr.readers import folder_reader


def _image(seed: int) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8))


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, bytes]:
    """A published folder whose second row holds only the absolute path of a private image."""
    secret = _image(99)
    (tmp_path / "private.png").write_bytes(secret)
    root = write_published_folder(tmp_path / "pub", [(f"k{i}", _image(i), "png") for i in range(3)], shards=1)
    shard = next((root / "data" / "I").glob("*.parquet"))
    rows = pq.read_table(shard).to_pylist()
    rows[1]["image"] = {"bytes": None, "path": str(tmp_path / "private.png")}
    pq.write_table(pq.read_table(shard).from_pylist(rows, schema=FEATURES.arrow_schema), shard)
    return root, secret


def test_published_source_keys_and_records(hostile):
    root, _ = hostile
    for fmt in ("parquet", "webdataset"):
        source = open_published(root, "I", fmt, prefix="I/")
        assert source.record_keys() == ["I/k0", "I/k1", "I/k2"]
        records = [r for u in source.units() for r in u.records()]
        assert [r.key for r in records] == source.record_keys()
    parquet = [r for u in open_published(root, "I").units() for r in u.records()]
    assert parquet[1].data == b"" and parquet[1].error.startswith("refused: image cell path")


def test_export_and_sr_never_read_a_path_outside_the_folder(hostile, tmp_path: Path):
    root, secret = hostile
    report = export_basicsr(root, "I", tmp_path / "exp", scales=(2,))
    assert report.images == 2
    assert [key for key, _ in report.skipped] == ["k1"] and report.skipped[0][1].startswith("refused: ")
    assert all(p.read_bytes() != secret for p in (tmp_path / "exp").rglob("*") if p.is_file())
    payloads = dict(folder_reader(root, "I").read_shard(0))
    assert payloads["k1"] is None and payloads["k0"] == _image(0)

"""One table of shard formats: publish, shard copy, card entries, the dataset folder and the SR readers all
take a format's folder, shard names, writer, reader and card module from it, so a new row is a new format."""

from __future__ import annotations

import dataclasses

import pyarrow.parquet as pq
import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.errors import DiversegError
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.sr.readers import folder_reader
from diverseg_hf.storage import SHARD_FORMATS, DatasetDir, load_selection, shard_format
from diverseg_hf.storage.formats import PARQUET, WEBDATASET


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    write_files(root / "src", good_images(6))
    score(str(root / "src"), root / "scores", unit_size=3, progress=False)
    select(root / "scores", root / "sel")
    return root


def test_a_new_row_in_the_table_is_published_registered_read_and_swept(selection, tmp_path, monkeypatch):
    copy = dataclasses.replace(PARQUET, name="parquet_copy", folder="data_copy")
    monkeypatch.setitem(SHARD_FORMATS, copy.name, copy)
    result = publish(selection / "sel", tmp_path / "ds", "mine", formats=["parquet", "parquet_copy"],
                     shard_size="4KB", progress=False)
    dataset = DatasetDir(tmp_path / "ds")
    copies = dataset.shards("parquet_copy", "mine")
    assert [p.name for p in copies] == [p.name for p in dataset.shards("parquet", "mine")]
    assert all(p.parent == tmp_path / "ds" / "data_copy" / "mine" for p in copies)
    assert set(copies) <= set(result.files)
    for original, copied in zip(dataset.shards("parquet", "mine"), copies):
        assert pq.read_table(copied).equals(pq.read_table(original))
    entry = dataset.configs()[0]
    assert {c["module"] for c in entry["yaml_configs"]} == {"parquet"}
    assert copy.pattern("mine", generation=entry["generation"]) in str(entry["yaml_configs"])
    assert [row["key"] for f in copies for row in copy.reader(f)] == load_selection(selection / "sel")[0].column(
        "key").to_pylist()
    publish(selection / "sel", tmp_path / "ds", "mine", formats=["parquet", "parquet_copy"], shard_size="1MB",
            progress=False)  # a new generation: the old one's files go from every format's folder
    assert not any(p.exists() for p in copies) and len(dataset.shards("parquet_copy", "mine")) == 1


def test_every_format_names_its_card_module_and_an_unknown_one_is_refused():
    assert [f.module for f in SHARD_FORMATS.values()] == ["parquet", "webdataset"]
    assert WEBDATASET.shard_name(3, 9, generation="g") == "train-00003-g.tar"
    with pytest.raises(DiversegError, match="unknown shard format 'zip'; known: parquet, webdataset"):
        shard_format("zip")
    with pytest.raises(DiversegError, match="format must be 'parquet', 'webdataset' or 'basicsr'"):
        folder_reader("/nonexistent", "I", format="zip")

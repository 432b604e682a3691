"""publish reads the score table one unit at a time (issue 22 item 3): never the whole table at once, with the
same `scores` config rows, figures and shards as the whole-table read gave."""

from __future__ import annotations

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import mixed_folder

from diverseg_hf.cards.entries import figure_columns
from diverseg_hf.publish import from_selection
from diverseg_hf.publish.from_selection import _figure_data, _shard_tables, generation, publish
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import DatasetDir, ScoreTable, load_selection


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("pubstream")
    mixed_folder(root / "src", n_good=14)
    score(str(root / "src"), root / "scores", unit_size=5, progress=False)
    select(root / "scores", root / "sel", max_blockiness=20)
    return root


def _no_whole_read(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("publish read the whole score table")

    monkeypatch.setattr(ScoreTable, "read", refuse)


def test_publish_never_reads_the_whole_score_table(scored, monkeypatch, tmp_path):
    whole = ScoreTable.open(scored / "scores").read()  # what publish read before (its num_bytes, too)
    assert len(ScoreTable.open(scored / "scores").units) > 2
    monkeypatch.setattr(from_selection, "SCORES_SHARD_ROWS", 4)  # shards cut inside and across units
    _no_whole_read(monkeypatch)
    publish(scored / "sel", tmp_path / "ds", "mine", shard_size="20KB", progress=False)
    dataset = DatasetDir(tmp_path / "ds")
    files = sorted(dataset.scores_dir("mine").glob("*.parquet"))
    count = -(-whole.num_rows // 4)
    gen = dataset.generation("mine")
    assert [f.name for f in files] == [DatasetDir.parquet_shard_name(n, count, generation=gen) for n in range(count)]
    assert [pq.read_metadata(f).num_rows for f in files] == [4] * (count - 1) + [whole.num_rows - 4 * (count - 1)]
    published = pa.concat_tables([pq.read_table(f) for f in files])
    assert repr(published.to_pylist()) == repr(whole.to_pylist())  # NaN blockiness compares by repr
    entry = next(c for c in dataset.configs() if c["name"] == "mine")
    features = datasets.Features._from_yaml_list(entry["scores"]["features"])
    assert entry["scores"]["split_info"]["num_bytes"] == whole.select(list(features)).cast(features.arrow_schema).nbytes
    assert entry["scores"]["split_info"]["num_examples"] == whole.num_rows
    assert {p["path"] for p in entry["plots"]} == {"assets/mine_blockiness.png"}


def test_figure_data_is_the_whole_tables(scored):
    table, info = load_selection(scored / "sel")
    info = {**info, "thetas": {"width": 1}}  # a count column too
    store = ScoreTable.open(scored / "scores")
    whole = store.read(cache=False)
    columns, kept = _figure_data(store, table, info)
    expected = figure_columns(whole, info)
    assert list(columns) == ["width", "blockiness"] == list(expected)
    for name in columns:
        np.testing.assert_array_equal(columns[name], expected[name])
    np.testing.assert_array_equal(kept, pc.is_in(whole.column("key"), value_set=table.column("key")).to_numpy())
    assert 0 < kept.sum() < len(kept)


def test_shard_tables_cuts_parts_into_fixed_row_counts():
    parts = [pa.table({"a": pa.array(range(i, i + n), pa.int64())}) for i, n in ((0, 3), (3, 0), (3, 5), (8, 1))]
    out = list(_shard_tables(iter(parts), 4))
    assert [t.column("a").to_pylist() for t in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert list(_shard_tables(iter([pa.table({"a": [1]}).slice(0, 0)]), 4)) == []


def test_generation_follows_every_unit_of_the_score_table():
    selected = pa.table({"key": ["a"]})
    units = [pa.table({"key": ["a", "b"], "v": [1.0, 2.0]}), pa.table({"key": ["c"], "v": [3.0]})]
    changed = [units[0], pa.table({"key": ["c"], "v": [4.0]})]
    assert generation(selected, iter(units), [(0, 1)]) == generation(selected, iter(units), [(0, 1)])
    assert generation(selected, iter(units), [(0, 1)]) != generation(selected, iter(changed), [(0, 1)])
    assert generation(selected, iter(units), [(0, 1)]) != generation(selected, None, [(0, 1)])


def test_republish_over_a_previous_layout_moves_to_the_new_generation(scored, monkeypatch, tmp_path):
    monkeypatch.setattr(from_selection, "LAYOUT_VERSION", from_selection.LAYOUT_VERSION - 1)
    publish(scored / "sel", tmp_path / "ds", "mine", shard_size="20KB", progress=False)
    old = DatasetDir(tmp_path / "ds").generation("mine")
    monkeypatch.undo()
    publish(scored / "sel", tmp_path / "ds", "mine", shard_size="20KB", progress=False)
    new = DatasetDir(tmp_path / "ds").generation("mine")
    assert old != new
    assert not [p for p in (tmp_path / "ds").rglob("*") if old in p.name]
    ds = datasets.load_dataset(str(tmp_path / "ds"), "mine", split="train")
    assert ds["key"][:] == load_selection(scored / "sel")[0].column("key").to_pylist()

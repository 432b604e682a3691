"""select streams the score table: it reads only the columns its rules use, one unit at a time, and never the
whole table; keys repeated across units are found exactly (hash collisions checked on the keys)."""

from __future__ import annotations

import importlib

import numpy as np
import pyarrow as pa
import pytest
from pipeline_helpers import synthetic_scores

from diverseg_hf.select import key_hashes, select
from diverseg_hf.storage import BASE_SCHEMA, ScoreTable, load_selection

# the module: `import diverseg_hf.select as m` gives the verb (the package keeps its verbs)
select_module = importlib.import_module("diverseg_hf.select")


def reference_keys(scores, **rules):
    """The kept keys by the whole-table rules (the table read at once)."""
    table = ScoreTable.open(scores).read().to_pylist()
    keys = [r["key"] for r in table]
    kept = []
    for row in table:
        if row["error"] is not None or keys.count(row["key"]) > 1:
            continue
        if rules.get("max_blockiness") is not None and not row["blockiness"] <= rules["max_blockiness"]:
            continue
        if any(row[c] is None or not row[c] >= t for c, t in rules.get("thetas", {}).items()):
            continue
        kept.append(row["key"])
    return kept


def test_select_never_reads_the_whole_table_and_keeps_the_same_rows(tmp_path, monkeypatch):
    synthetic_scores(tmp_path / "scores", 3000, units=7)
    expected = reference_keys(tmp_path / "scores", max_blockiness=20, thetas={"sam_masks": 60})
    read_columns = []
    original = ScoreTable.iter_units

    def spy(self, columns=None):
        read_columns.append(columns)
        return original(self, columns)

    monkeypatch.setattr(ScoreTable, "read", lambda *a, **k: pytest.fail("select read the whole table"))
    monkeypatch.setattr(ScoreTable, "iter_units", spy)
    result = select(tmp_path / "scores", tmp_path / "sel", max_blockiness=20, thetas={"sam_masks": 60})
    table, info = load_selection(tmp_path / "sel")
    assert table.column("key").to_pylist() == expected and result.kept == len(expected)
    assert "error" not in table.column_names and info["counts"]["kept"] == len(expected)
    assert read_columns[0] == ["key", "error", "blockiness", "sam_masks"]  # projected: no other column read


def write_units(root, unit_keys):
    n = sum(len(k) for k in unit_keys)
    units = [{"id": f"u{i}", "size": len(k), "max_records": None} for i, k in enumerate(unit_keys)]
    schema = pa.schema([*BASE_SCHEMA, ("blockiness", pa.float64()), ("error", pa.string())])
    header = {"source": {"kind": "test"}, "limit": None, "columns": schema.names,
              "scorers": [{"name": "blockiness", "columns": {"blockiness": "float64"}}]}
    store = ScoreTable.create(root, header, units)
    for unit, keys in zip(units, unit_keys):
        rows = [{"key": k, "origin": k, "sha256": "0", "bytes": 1, "width": 1, "height": 1, "format": "PNG",
                 "blockiness": 1.0, "error": None} for k in keys]
        store.commit(unit["id"], pa.Table.from_pylist(rows, schema=schema))
    return n


@pytest.mark.parametrize("collide", [False, True])
def test_keys_repeated_across_units_are_dropped_exactly(tmp_path, monkeypatch, collide):
    if collide:  # every key hashes alike: only the exact check on the keys tells them apart
        monkeypatch.setattr(select_module, "key_hashes", lambda keys: np.zeros(len(keys), np.uint64))
    write_units(tmp_path / "scores", [["a", "b", "c"], ["d", "a"], ["e", "", "é"]])
    result = select(tmp_path / "scores", tmp_path / "sel")
    assert load_selection(tmp_path / "sel")[0].column("key").to_pylist() == ["b", "c", "d", "e", "", "é"]
    assert result.dropped["duplicate_key"] == 2


def test_key_hashes_follow_the_bytes():
    keys = pa.chunked_array([["ab", "ba", "", "a\x00"], ["ab", "a", None]])
    h = key_hashes(keys)
    assert h[0] == h[4] and len({int(x) for x in h[:4]}) == 4 and h[5] != h[3] and h[6] == h[2]

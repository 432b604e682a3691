"""Engines carry a Record whole: every field of the dataclass survives the engines' record codec."""

from __future__ import annotations

import dataclasses

import pytest

from diverseg_hf.engines.records import pack_record, unpack_record
from diverseg_hf.sources import Record


def test_every_record_field_survives():
    values = {"key": "a%2Epng", "data": b"\x89PNG...", "origin": "cells.parquet#row=3",
              "extra": {"path": "n01/a.JPEG", "other_images": ["b.png"]}, "error": "missing: dangling symlink to x"}
    assert {f.name for f in dataclasses.fields(Record)} == set(values)  # a new field needs a value here
    record = Record(**values)
    assert unpack_record(pack_record(record)) == record


def test_unpack_refuses_other_objects():
    import pickle

    with pytest.raises(TypeError, match="not a packed Record"):
        unpack_record(pickle.dumps({"key": "k"}))

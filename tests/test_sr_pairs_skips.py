"""SRPairs counts every skipped image once a stream has been read to its end, and warns when a stream
yields no pair at all (issue 20, item 17: an all-too-small epoch was empty with ``skipped == 0``)."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from image_zoo import textured, zoo_bytes  # noqa: E402
from sr_folder import encode, write_published_folder  # noqa: E402

from diverseg_hf.sr import SRPairs  # noqa: E402

SCALE, PATCH = 4, 16


def folder(tmp_path, records):
    return write_published_folder(tmp_path, [(k, b, "png") for k, b in records], shards=1)


def pairs_of(root, **kw):
    return SRPairs.from_folder(root, "I", scale=SCALE, patch_size=PATCH, shuffle_buffer=1, **kw)


def warnings_of(caplog):
    return [r for r in caplog.records if r.name == "diverseg_hf.sr.pairs" and r.levelno == logging.WARNING]


def test_all_images_smaller_than_the_patch_are_counted_and_warned_once(tmp_path, caplog):
    root = folder(tmp_path, [(f"small{i}", encode(textured(12, 40 - i, seed=i))) for i in range(3)]
                  + [("broken", zoo_bytes()["text_as_png"])])
    pairs = pairs_of(root)
    with caplog.at_level(logging.WARNING, logger="diverseg_hf.sr.pairs"):
        assert list(torch.utils.data.DataLoader(pairs, batch_size=2, num_workers=0)) == []
    assert pairs.skipped == {"too_small": 3, "bad": 1}
    (record,) = warnings_of(caplog)
    assert "no pairs" in record.getMessage() and "3 images smaller than the 16-pixel patch, 1 undecodable" in (
        record.getMessage())
    pairs.set_epoch(1)  # a new epoch starts from nothing, and counts again
    assert pairs.skipped == {"too_small": 0, "bad": 0}
    assert list(pairs) == [] and pairs.skipped == {"too_small": 3, "bad": 1}


def test_skips_after_the_last_pair_count_once_the_stream_ends(tmp_path, caplog):
    root = folder(tmp_path, [("good", encode(textured(20, 20, seed=1))), ("tiny", encode(textured(8, 8, seed=2)))])
    pairs = pairs_of(root)
    with caplog.at_level(logging.WARNING, logger="diverseg_hf.sr.pairs"):
        examples = list(pairs)
    assert [ex["key"] for ex in examples] == ["good"]
    assert pairs.skipped == {"too_small": 1, "bad": 0}
    assert not warnings_of(caplog)  # the stream yielded a pair
    pairs.consumed(examples[0])  # consuming the last pair does not hide the skip after it
    assert pairs.skipped == {"too_small": 1, "bad": 0}
    assert pairs.state_dict()["workers"]["0"]["cursor"] == 1  # the resume record stays what was consumed


def test_a_stream_left_early_counts_only_what_was_consumed(tmp_path):
    root = folder(tmp_path, [("tiny", encode(textured(8, 8, seed=2))), ("good", encode(textured(20, 20, seed=1))),
                             ("tiny2", encode(textured(9, 9, seed=3)))])
    pairs = pairs_of(root)
    first = next(iter(pairs))  # the generator is left after the first pair: its end is never reached
    assert pairs.skipped == {"too_small": 0, "bad": 0}
    pairs.consumed(first)
    assert pairs.skipped == {"too_small": 1, "bad": 0}

"""``scorer_map("blockiness")`` on ``Dataset`` and ``IterableDataset``: the score table's values, bit for bit.

The same Parquet corpus (good PNGs and JPEGs, the shared reference images where present, corrupt and
truncated files, an empty cell) goes through ``diverseg score`` and through ``ds.map``; every row's
value must be the table's, as float64 bytes, and every undecodable row a reason instead of a failure.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from pipeline_helpers import good_images
from shared_data import SHARED_IMAGES

datasets = pytest.importorskip("datasets")

import diverseg_hf  # noqa: E402
from diverseg_hf.score import score  # noqa: E402
from diverseg_hf.storage.score_table import ScoreTable  # noqa: E402

BAD = {"k_corrupt": b"this is not an image", "k_empty": b""}


def _cells() -> dict[str, bytes]:
    good = {f"k{i:03d}": data for i, data in enumerate(good_images(9).values())}
    shared = sorted(p for p in SHARED_IMAGES.glob("*") if p.suffix in (".png", ".jpg"))[:6]
    good.update({f"s_{p.stem}": p.read_bytes() for p in shared})
    jpeg = good["k001"]
    # two undecodable rows first: the first map batch holds errors only
    return {**BAD, **good, "k_truncated": jpeg[: len(jpeg) // 2]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(parquet file, key -> bytes, key -> (blockiness, error) from ``diverseg score``)."""
    root = tmp_path_factory.mktemp("maps")
    cells = _cells()
    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()})
    ds = datasets.Dataset.from_dict(
        {"key": list(cells), "image": [{"bytes": b, "path": f"{k}.img"} for k, b in cells.items()]}, features=features)
    path = root / "corpus.parquet"
    ds.to_parquet(str(path))
    score(str(path), root / "scores", ["blockiness"], progress=False)
    table = ScoreTable.open(root / "scores").read().to_pylist()
    return path, cells, {row["key"]: (row["blockiness"], row["error"]) for row in table}


def _load(path, cache_dir, **kwargs):
    return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(cache_dir), **kwargs)


def _check_equal(rows, expected) -> None:
    """Each mapped row equals the table row: the same float64 bytes where the table has a value."""
    assert {r["key"] for r in rows} <= set(expected)
    for row in rows:
        value, error = expected[row["key"]]
        if value is None:  # the table could not score it: NaN and the reason here
            assert np.isnan(row["blockiness"]) and row["blockiness_error"], row["key"]
            assert row["blockiness_error"].split(":")[0] == error.split(":")[0]
        else:
            assert np.float64(row["blockiness"]).tobytes() == np.float64(value).tobytes(), row["key"]
            assert row["blockiness_error"] == (error or "")


def test_dataset_map_equals_the_score_table(corpus, tmp_path):
    path, cells, expected = corpus
    ds = _load(path, tmp_path).cast_column("image", datasets.Image(decode=False))
    out = ds.map(diverseg_hf.scorer_map("blockiness"), batched=True, batch_size=2)
    assert out.features["blockiness"] == datasets.Value("float64")
    assert out.features["blockiness_error"] == datasets.Value("string")
    assert len(out) == len(cells) == len(expected)
    _check_equal(out.remove_columns("image").to_list(), expected)
    assert out.filter(lambda r: r["blockiness_error"] == "")["key"] == [k for k, (v, e) in expected.items()
                                                                          if v is not None and not e]


def test_streaming_map_equals_the_score_table(corpus, tmp_path):
    path, cells, expected = corpus
    ds = _load(path, tmp_path, streaming=True).cast_column("image", datasets.Image(decode=False))
    rows = list(ds.map(diverseg_hf.scorer_map("blockiness"), batched=True, batch_size=2).remove_columns("image"))
    assert len(rows) == len(cells)
    assert all(isinstance(r["blockiness_error"], str) for r in rows)
    _check_equal(rows, expected)


def test_default_image_feature_reads_the_stored_bytes(corpus, tmp_path):
    """With the default ``Image()``, ``Dataset.map`` hands the function a lazy batch: the map reads the
    stored bytes (never decoded by ``datasets``), so a corrupt file is a row with a reason, the values are
    the table's, and the image column is written back byte for byte instead of re-encoded from PIL."""
    path, cells, expected = corpus
    out = _load(path, tmp_path).map(diverseg_hf.scorer_map("blockiness"), batched=True, batch_size=3)
    assert len(out) == len(cells)
    _check_equal(out.remove_columns("image").to_list(), expected)
    stored = out.cast_column("image", datasets.Image(decode=False))
    assert {r["key"]: r["image"]["bytes"] for r in stored} == cells


def test_decoded_pil_cells_equal_the_score_table(corpus, tmp_path):
    """A streaming dataset with the default ``Image()`` decodes before the function sees it: PIL images,
    converted with the CLI's semantics, give the same values."""
    path, _, expected = corpus
    good = _load(path, tmp_path).filter(lambda key: key not in (*BAD, "k_truncated"), input_columns="key")
    ds = good.to_iterable_dataset()
    rows = list(ds.map(diverseg_hf.scorer_map("blockiness"), batched=True, batch_size=3))
    assert rows and all(type(r["image"]).__module__.startswith("PIL") for r in rows)
    _check_equal([{k: v for k, v in r.items() if k != "image"} for r in rows], expected)


@pytest.mark.parametrize("streaming", [False, True])
def test_a_first_batch_of_errors_does_not_type_a_column_null(streaming):
    """``datasets`` types a new column from the first batch written: all-error batches first must still work."""
    cells = [None, {"bytes": b"junk", "path": None}, {"bytes": next(iter(good_images(1).values())), "path": None}]
    features = datasets.Features({"image": datasets.Image(decode=False)})
    ds = datasets.Dataset.from_dict({"image": cells}, features=features)
    if streaming:
        ds = ds.to_iterable_dataset()
    out = ds.map(diverseg_hf.scorer_map("blockiness"), batched=True, batch_size=1)
    rows = list(out)
    assert [r["blockiness_error"].split(":")[0] for r in rows] == ["missing", "corrupt", ""]
    assert np.isnan(rows[0]["blockiness"]) and np.isnan(rows[1]["blockiness"]) and rows[2]["blockiness"] >= 0
    if not streaming:
        assert out.features["blockiness"] == datasets.Value("float64")


def test_every_cell_form_and_image_column():
    good = next(iter(good_images(1).values()))
    from PIL import Image

    f = diverseg_hf.scorer_map("blockiness", image_column="jpg")
    out = f({"jpg": [good, {"bytes": good, "path": None}, Image.open(io.BytesIO(good)), None, 3]})
    assert out["blockiness"][0] == out["blockiness"][1] == out["blockiness"][2]
    assert [e.split(":")[0] for e in out["blockiness_error"]] == ["", "", "", "missing", "unsupported"]
    with pytest.raises(diverseg_hf.errors.DiversegError, match="no image column"):
        diverseg_hf.scorer_map("blockiness")({"pixels": [good]})
    with pytest.raises(diverseg_hf.errors.DiversegError, match="unknown scorer"):
        diverseg_hf.scorer_map("no_such_scorer")


def test_score_dataset_runs_several_scorers_with_the_same_columns(corpus, tmp_path, register_scorer):
    path, _, expected = corpus
    register_scorer("mean_level", "scorer_helpers:MeanLevel")  # the registration ends with the test
    ds = _load(path, tmp_path).cast_column("image", datasets.Image(decode=False))
    out = diverseg_hf.score_dataset(ds, ["blockiness", "mean_level"], batch_size=4)
    assert out.column_names == ["key", "image", "blockiness", "blockiness_error", "mean_level", "mean_level_error"]
    _check_equal(out.remove_columns("image").to_list(), expected)
    single = ds.map(diverseg_hf.scorer_map("mean_level"), batched=True)
    assert np.array_equal(np.array(out["mean_level"]), np.array(single["mean_level"]), equal_nan=True)


@pytest.mark.parametrize("streaming", [False, True])
def test_map_without_batched_gives_the_same_values(corpus, tmp_path, streaming):
    path, cells, expected = corpus
    ds = _load(path, tmp_path, streaming=streaming).cast_column("image", datasets.Image(decode=False))
    rows = list(ds.map(diverseg_hf.scorer_map("blockiness")).remove_columns("image"))
    assert len(rows) == len(cells) and all(isinstance(r["blockiness"], float) for r in rows)
    _check_equal(rows, expected)

"""``publish_dataset``: a scored ``datasets`` dataset published as a DiverSeg config equals what ``diverseg curate``
publishes from the same images with the same rule (shards: keys, bytes, score columns; the ``scores``
config; the quality estimate), for a ``Dataset`` and a streaming ``IterableDataset`` alike."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pipeline_helpers import good_images

from diverseg_hf.curate import curate
from diverseg_hf.errors import DiversegError
from diverseg_hf.from_dataset import publish_dataset
from diverseg_hf.score import score
from diverseg_hf.storage import DatasetDir, ScoreTable

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

NAME = "mine"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """A Parquet source (key column, Image feature, one corrupt image, one repeated key) curated by blockiness."""
    root = tmp_path_factory.mktemp("from_dataset")
    images = {f"k/{rel.replace('.', '_')}": data for rel, data in good_images(12).items()}
    keys = [*images, "k/broken", "k/png/img_000_png"]
    data = [*images.values(), b"\xff\xd8\xff not a jpeg", images["k/png/img_000_png"]]
    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()})
    path = root / "train.parquet"
    datasets.Dataset.from_dict({"key": keys, "image": [{"bytes": b, "path": None} for b in data]},
                               features=features).to_parquet(str(path))
    score(str(path), root / "scores", scorers=["blockiness"], progress=False)
    scores = ScoreTable.open(root / "scores").read().to_pylist()
    ceiling = float(np.nanmedian([r["blockiness"] for r in scores if r["blockiness"] is not None]))
    curate(str(path), root / "curated", NAME, score_options={"scorers": ["blockiness"]},
           select_options={"max_blockiness": ceiling}, formats=["parquet", "webdataset"], progress=False)
    by_key = {r["key"]: r for r in scores}
    return {"path": path, "root": root, "ceiling": ceiling, "scores": by_key}


def with_scores(ds, scores: dict) -> object:
    """``ds`` with the blockiness columns a scorer map adds (values from the curated score table, by key)."""
    ds = ds.cast_column("image", datasets.Image(decode=False))
    order = list(scores)  # the score table's keys, in row order (repeats made unique there)

    def add(batch, indices):
        rows = [scores[order[i]] for i in indices]
        return {"blockiness": [np.nan if r["blockiness"] is None else r["blockiness"] for r in rows],
                "blockiness_error": [r["error"] or "" for r in rows]}

    return ds.map(add, batched=True, with_indices=True)


def shard_rows(folder: Path) -> dict:
    """The published rows of config NAME: Parquet rows, tar members and the scores config (origin aside)."""
    d = DatasetDir(folder)
    parquet = [r for p in d.parquet_shards(NAME) for r in pq.read_table(p).to_pylist()]
    scores = [r for p in sorted(d.scores_dir(NAME).glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    members = {}
    for shard in d.tar_shards(NAME):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                data = tar.extractfile(m).read()
                if m.name.endswith(".json"):
                    data = {k: v for k, v in json.loads(data).items() if k != "origin"}
                members[m.name] = data
    for row in parquet + scores:
        row.pop("origin")
    entry = d.configs()[0]
    return {"parquet": parquet, "tars": members, "scores": scores, "quality": entry["quality"],
            "counts": (entry["counts"]["rows"], entry["counts"]["kept"])}


@pytest.mark.parametrize("streaming", [False, True], ids=["Dataset", "IterableDataset"])
@pytest.mark.parametrize("rule", ["select rules", "callable", "column"])
def test_published_dataset_equals_curate(source, tmp_path, streaming, rule) -> None:
    ds = with_scores(datasets.load_dataset("parquet", data_files=str(source["path"]), split="train",
                                           streaming=streaming), source["scores"])
    ceiling = source["ceiling"]
    keep = {"select rules": {"max_blockiness": ceiling}, "callable": lambda row: row["blockiness"] <= ceiling,
            "column": "sharp"}[rule]
    if rule == "column":
        ds = ds.map(lambda b: {"sharp": [v <= ceiling for v in b["blockiness"]]}, batched=True)
    result = publish_dataset(ds, tmp_path / "ds", name=NAME, keep=keep, progress=False)
    expected = shard_rows(source["root"] / "curated")
    got = shard_rows(tmp_path / "ds")
    assert 0 < result.num_examples == len(expected["parquet"]) < len(expected["scores"]) - 2
    assert got == expected
    assert got["quality"] and any(r["error"] for r in got["scores"])  # the corrupt image is in scores, not shards
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "blockiness ≤" in card if rule == "select rules" else "`sharp`" in card or "<lambda>" in card


def test_keep_none_publishes_every_row_without_an_error(source, tmp_path) -> None:
    ds = with_scores(datasets.load_dataset("parquet", data_files=str(source["path"]), split="train"),
                     source["scores"])
    publish_dataset(ds, tmp_path / "ds", name=NAME, format="parquet", progress=False)
    rows = [r for p in DatasetDir(tmp_path / "ds").parquet_shards(NAME) for r in pq.read_table(p).to_pylist()]
    good = [k for k, r in source["scores"].items() if not r["error"]]
    assert [r["key"] for r in rows] == good and len(rows) == len(source["scores"]) - 1
    src = dict(zip(*[datasets.load_dataset("parquet", data_files=str(source["path"]), split="train")
                     .cast_column("image", datasets.Image(decode=False))[c] for c in ("key", "image")]))
    assert rows[0]["image"]["bytes"] == src[rows[0]["key"]]["bytes"]  # the original bytes, not re-encoded


def test_decoded_images_without_bytes_are_refused(tmp_path) -> None:
    def rows():
        yield {"image": Image.new("RGB", (16, 16)), "blockiness": 1.0, "blockiness_error": ""}

    ds = datasets.IterableDataset.from_generator(rows)
    with pytest.raises(DiversegError, match=r"decoded images, not their original bytes; cast it first"):
        publish_dataset(ds, tmp_path / "ds", name=NAME, progress=False)


def test_a_dataset_without_scores_is_refused(tmp_path) -> None:
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b"x", "path": None}]},
                                    features=datasets.Features({"image": datasets.Image()}))
    with pytest.raises(DiversegError, match=r"no score columns .*scorer_map"):
        publish_dataset(ds, tmp_path / "ds", name=NAME)


def test_push_to_hub_pushes_as_push_does(source, hub_env, tmp_path) -> None:
    ds = with_scores(datasets.load_dataset("parquet", data_files=str(source["path"]), split="train"),
                     source["scores"])
    publish_dataset(ds, tmp_path / "ds", name="IP", format="parquet", push_to_hub="tester/pd", progress=False)
    files = {p: d for p, d in hub_env.files("tester/pd").items() if p != ".gitattributes"}
    local = {p.relative_to(tmp_path / "ds").as_posix() for p in (tmp_path / "ds").rglob("*")
             if p.is_file() and ".diverseg" not in p.parts}
    assert set(files) == local and 'load_dataset("tester/pd", "IP"' in files["README.md"].decode()
    assert hub_env.repos[("dataset", "tester/pd")].gated == "auto"  # ImageNet terms: never public and ungated


def test_public_names() -> None:
    import diverseg_hf
    from diverseg_hf.hub.push import push

    assert diverseg_hf.publish_dataset is publish_dataset and diverseg_hf.push is push
    assert {"publish_dataset", "push", "select_published"} <= set(diverseg_hf.__all__)
    assert diverseg_hf.select_published.__module__ == "diverseg_hf.rethreshold"


def test_a_row_the_map_could_not_score_holds_nulls_in_the_scores_config(tmp_path) -> None:
    """A scorer map marks a row it could not score with a sentinel (NaN; -1 for counts) and a reason in
    ``<name>_error``: the published ``scores`` config holds null and the reason there, as a score table does,
    and the row is not published; the other scorer's value of that row is kept."""
    good = [data for data in good_images(3).values()]
    ds = datasets.Dataset.from_dict({
        "key": ["a", "b", "c"], "image": [{"bytes": b, "path": None} for b in good],
        "blockiness": [1.5, 2.5, 3.5], "blockiness_error": ["", "", ""],
        "sam_masks": [120, -1, 130], "sam_error": ["", "out-of-memory: even one image", ""],
    }, features=datasets.Features({"key": datasets.Value("string"), "image": datasets.Image(decode=False),
                                   "blockiness": datasets.Value("float64"),
                                   "blockiness_error": datasets.Value("string"),
                                   "sam_masks": datasets.Value("int64"), "sam_error": datasets.Value("string")}))
    publish_dataset(ds, tmp_path / "out", name=NAME, format="parquet", progress=False)
    scores = {r["key"]: r for r in datasets.load_dataset(str(tmp_path / "out"), "scores", split=NAME)}
    assert scores["b"]["sam_masks"] is None and "out-of-memory" in scores["b"]["error"]
    assert scores["b"]["blockiness"] == 2.5
    assert scores["a"]["sam_masks"] == 120 and scores["a"]["error"] is None
    published = datasets.load_dataset(str(tmp_path / "out"), NAME, split="train")
    assert sorted(published["key"]) == ["a", "c"]

"""Phase 3: byte-exact Parquet + WebDataset shards that plain `datasets` loads, and the generated card."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard
from image_zoo import INVALID
from pipeline_helpers import mixed_folder

from diverseg_hf.cards.entries import webdataset_features
from diverseg_hf.errors import DiversegError
from diverseg_hf.keys import decode_key
from diverseg_hf.publish.from_selection import parse_size, plan_shards, publish, rerender_card
from diverseg_hf.publish.shard_copy import image_extension
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import DatasetDir, ScoreTable, load_selection

SHARD = 20_000


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub")
    files = mixed_folder(root / "src", n_good=14)
    score(str(root / "src"), root / "scores", unit_size=5, progress=False)
    select(root / "scores", root / "sel", max_blockiness=1000)
    select(root / "scores", root / "sel_strict", max_blockiness=20)
    publish(root / "sel", root / "ds", "mine", formats=["parquet", "webdataset"], shard_size=SHARD, progress=False)
    return root, files


def source_bytes(root: Path, files: dict[str, Path]) -> dict[str, bytes]:
    """Selected key -> original file bytes, from the selection's origins."""
    table, _ = load_selection(root / "sel")
    return {row["key"]: files[row["origin"]].read_bytes() for row in table.to_pylist()}


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_parquet_shards_load_byte_exact(pipeline):
    root, files = pipeline
    expected = source_bytes(root, files)
    shards = sorted((root / "ds" / "data" / "mine").iterdir())
    assert len(shards) > 1 and shards == DatasetDir(root / "ds").parquet_shards("mine")
    gen = DatasetDir(root / "ds").generation("mine")
    assert gen and [p.name for p in shards] == [f"train-{i:05d}-of-{len(shards):05d}-{gen}.parquet"
                                                for i in range(len(shards))]
    ds = datasets.load_dataset(str(root / "ds"), "mine", split="train")
    assert ds.features["image"] == datasets.Image()
    assert ds["key"][:] == list(expected)
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for row in raw:
        assert row["image"]["bytes"] == expected[row["key"]]
    first = ds[0]["image"]
    assert first.size == (ds[0]["width"], ds[0]["height"]) or first.size == (ds[0]["height"], ds[0]["width"])
    for shard in shards:  # each shard within the size limit unless it holds a single image
        rows = pq.read_table(shard, columns=["bytes"]).column("bytes").to_pylist()
        assert sum(rows) <= SHARD or len(rows) == 1


def test_streaming_decodes_to_pil(pipeline):
    root, files = pipeline
    expected = source_bytes(root, files)
    stream = datasets.load_dataset(str(root / "ds"), "mine", split="train", streaming=True)
    rows = list(stream)
    assert [r["key"] for r in rows] == list(expected)
    assert all(hasattr(r["image"], "size") for r in rows)  # PIL images


def test_bad_images_never_published(pipeline):
    root, _ = pipeline
    table, _ = load_selection(root / "sel")
    origins = set(table.column("origin").to_pylist())
    assert not origins & {f"zoo/{name}" for name in INVALID.values()}
    assert "zoo/one.png" not in origins and "zoo/flat.png" not in origins  # undefined scores
    assert "zoo/cmyk.jpg" in origins


def test_webdataset_tars(pipeline):
    root, files = pipeline
    expected = source_bytes(root, files)
    tars = sorted((root / "ds" / "wds" / "mine").iterdir())
    gen = DatasetDir(root / "ds").generation("mine")
    assert tars == DatasetDir(root / "ds").tar_shards("mine")
    assert [p.name for p in tars] == [f"train-{i:05d}-{gen}.tar" for i in range(len(tars))]
    table, _ = load_selection(root / "sel")
    formats = dict(zip(table.column("key").to_pylist(), table.column("format").to_pylist()))
    assert len(set(formats.values())) > 1  # the config mixes formats
    ext = Counter(image_extension(f) for f in formats.values()).most_common(1)[0][0]
    seen = {}
    for path in tars:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
            for image, meta in zip(members[::2], members[1::2]):  # consecutive members per sample
                key = image.name.split(".", 1)[0]
                assert image.name == f"{key}.{ext}" and meta.name == f"{key}.json"  # one image field
                seen[key] = tar.extractfile(image).read()
                assert json.loads(tar.extractfile(meta).read())["format"] == formats[key]
    assert seen == expected
    features = webdataset_features(root / "ds", "mine")
    assert set(features) == {ext, "json", "__key__", "__url__"}
    for given in (features, None):  # declared or inferred: one image column either way
        ds = datasets.load_dataset("webdataset", data_files={"train": str(root / "ds" / "wds" / "mine" / "*.tar")},
                                   split="train", streaming=True, features=given)
        rows = list(ds.cast_column(ext, datasets.Image(decode=False)))
        assert [r["__key__"] for r in rows] == list(expected)
        assert [r[ext]["bytes"] for r in rows] == list(expected.values())
        assert all(r["json"]["key"] == r["__key__"] and "blockiness" in r["json"] for r in rows)


def test_republish_is_byte_identical(pipeline, tmp_path):
    root, _ = pipeline
    publish(root / "sel", tmp_path / "again", "mine", formats=["parquet", "webdataset"], shard_size=SHARD,
            progress=False)
    first = {k: v for k, v in tree_digest(root / "ds").items() if not k.startswith(".diverseg")}
    second = {k: v for k, v in tree_digest(tmp_path / "again").items() if not k.startswith(".diverseg")}
    shared = [k for k in first if k.startswith(("data/", "wds/", "assets/"))]
    assert shared and {k: first[k] for k in shared} == {k: second[k] for k in shared}


def test_scores_config_and_card(pipeline):
    root, _ = pipeline
    scores = datasets.load_dataset(str(root / "ds"), "scores", split="mine")
    assert scores.num_rows == ScoreTable.open(root / "scores").read().num_rows
    assert sum(e is not None for e in scores["error"]) == len(INVALID) + 2
    card = DatasetCard.load(root / "ds" / "README.md")
    data = card.data.to_dict()
    assert [c["config_name"] for c in data["configs"]] == ["mine", "scores"]
    assert data["configs"][0]["default"] is True
    assert data["task_categories"] == ["image-to-image"] and "super-resolution" in data["tags"]
    info = {i["config_name"]: i for i in data["dataset_info"]}
    assert info["mine"]["splits"][0]["num_examples"] == load_selection(root / "sel")[0].num_rows
    assert {f["name"] for f in info["mine"]["features"]} >= {"key", "image", "blockiness"}
    text = (root / "ds" / "README.md").read_text()
    assert "assets/mine_blockiness.png" in text and (root / "ds" / "assets" / "mine_blockiness.png").is_file()
    assert "Rethinking Image Super-Resolution" in text and "streaming=True" in text


def test_second_config_is_added(pipeline, tmp_path):
    root, _files = pipeline
    ds_dir = tmp_path / "ds"
    shutil.copytree(root / "ds", ds_dir)
    publish(root / "sel_strict", ds_dir, "P", shard_size="1MB", progress=False)
    publish(root / "sel_strict", ds_dir, "I", shard_size="1MB", progress=False)
    card = DatasetCard.load(ds_dir / "README.md").data.to_dict()
    assert [c["config_name"] for c in card["configs"]] == ["mine", "P", "I", "scores"]
    assert [c.get("default", False) for c in card["configs"]] == [True, False, False, False]
    assert set(card["license"]) == {"unknown", "cc-by-4.0", "other"}
    assert "I" in card["extra_gated_prompt"]
    strict = datasets.load_dataset(str(ds_dir), "P", split="train")
    assert strict["key"][:] == load_selection(root / "sel_strict")[0].column("key").to_pylist()
    assert datasets.load_dataset(str(ds_dir), "mine", split="train").num_rows > strict.num_rows
    assert datasets.load_dataset(str(ds_dir), "scores", split="P").num_rows > 0


def test_source_gone_is_a_clear_error(pipeline, tmp_path):
    root, _ = pipeline
    moved = tmp_path / "sel"
    shutil.copytree(root / "sel", moved)
    info = json.loads((moved / "selection.json").read_text())
    info["source"]["spec"] = str(tmp_path / "gone")
    (moved / "selection.json").write_text(json.dumps(info))
    with pytest.raises(DiversegError, match="cannot open the selection's source: no such file or folder"):
        publish(moved, tmp_path / "out", "mine", progress=False)
    assert not (tmp_path / "out" / "data" / "mine").exists() and not (tmp_path / "out" / "README.md").exists()


def test_changed_source_bytes_are_refused(pipeline, tmp_path):
    root, _files = pipeline
    src = tmp_path / "src"
    shutil.copytree(root / "src", src)
    table, _ = load_selection(root / "sel")
    victim = src / table.column("origin")[1].as_py()
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(DiversegError, match="other bytes"):
        publish(root / "sel", tmp_path / "out", "mine", source=str(src), progress=False)
    assert not list((tmp_path / "out").rglob("*.parquet"))
    assert DatasetDir(tmp_path / "out").incomplete_publish() == ["mine"]  # the push code refuses such a folder
    assert not (tmp_path / "out" / "README.md").exists()


def test_bad_publish_arguments(pipeline, tmp_path):
    root, _ = pipeline
    with pytest.raises(DiversegError, match="config name"):
        publish(root / "sel", tmp_path / "o", "scores", progress=False)
    with pytest.raises(DiversegError, match="formats must be"):
        publish(root / "sel", tmp_path / "o", "x", formats=["zip"], progress=False)
    with pytest.raises(DiversegError, match="cannot read size"):
        publish(root / "sel", tmp_path / "o", "x", shard_size="lots", progress=False)


def test_parse_size_and_plan_shards():
    assert parse_size("500MB") == 500_000_000 and parse_size("1.5 KiB") == 1536 and parse_size("7") == 7
    sizes = [5, 1, 9, 3, 3, 3, 20, 1]
    shards = plan_shards(sizes, 9)
    assert shards[0][0] == 0 and shards[-1][1] == len(sizes)
    assert all(a < b for a, b in shards) and all(s[1] == t[0] for s, t in itertools.pairwise(shards))
    for a, b in shards:
        assert sum(sizes[a:b]) <= 9 or b - a == 1
    for (a, b), (c, _) in itertools.pairwise(shards):  # greedy: the next row would not have fitted
        assert sum(sizes[a:b]) + sizes[c] > 9
    assert decode_key("img%2E000") == "img.000"
    assert io  # keep the import for readers of tar payloads


def test_plan_shards_keeps_units_whole_where_they_fit():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        sizes = rng.integers(1, 10, n).tolist()
        units = np.sort(rng.integers(0, 12, n)).tolist()
        limit = int(rng.integers(5, 40))
        shards = plan_shards(sizes, limit, units)
        assert shards[0][0] == 0 and shards[-1][1] == n
        assert all(s[1] == t[0] for s, t in itertools.pairwise(shards))
        assert all(sum(sizes[a:b]) <= limit or b - a == 1 for a, b in shards)
        for unit in set(units):
            rows = [i for i, u in enumerate(units) if u == unit]
            cut = [a for a, _ in shards if rows[0] < a <= rows[-1]]
            assert not cut or sum(sizes[i] for i in rows) > limit  # a unit is cut only when it cannot fit


def test_webdataset_only_folder_loads_by_config_name(pipeline, tmp_path):
    root, files = pipeline
    publish(root / "sel", tmp_path / "ds", "mine", formats=["webdataset"], shard_size=SHARD, progress=False)
    card = DatasetCard.load(tmp_path / "ds" / "README.md").data.to_dict()
    assert [c["config_name"] for c in card["configs"]] == ["mine"]  # scores (Parquet) is not declared here
    ds = datasets.load_dataset(str(tmp_path / "ds"), "mine", split="train")  # features from the card
    expected = source_bytes(root, files)
    assert ds["__key__"][:] == list(expected)
    field = DatasetDir(tmp_path / "ds").configs()[0]["wds_image_field"]
    assert [c for c in ds.column_names if c not in ("__key__", "__url__", "json")] == [field]
    raw = ds.cast_column(field, datasets.Image(decode=False))
    assert [row[field]["bytes"] for row in raw] == list(expected.values())


def test_rerender_card_for_a_hub_repo(pipeline, tmp_path):
    root, _ = pipeline
    shutil.copytree(root / "ds", tmp_path / "ds")
    rerender_card(tmp_path / "ds", repo="org/diverseg")
    text = (tmp_path / "ds" / "README.md").read_text()
    gen = DatasetDir(tmp_path / "ds").generation("mine")
    assert 'load_dataset("org/diverseg", "mine", split="train")' in text
    assert f"hf://datasets/org/diverseg/wds/mine/train-*-{gen}.tar" in text
    assert str(tmp_path) not in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["publish", "SEL", "--out", "OUT", "--name", "x", "--format", "zip"], "--format must be a comma-separated"),
        (["select", "SCORES", "--out", "OUT", "--keep", "2"], "--keep must be in (0, 1]"),
        (["score", "SRC", "--out", "OUT", "--workers", "0"], "--workers must be at least 1, got 0"),
    ],
)
def test_cli_names_the_flag_of_a_bad_parameter(pipeline, tmp_path, capsys, argv, message):
    from diverseg_hf.cli import main

    root, _ = pipeline
    paths = {"SEL": str(root / "sel"), "SCORES": str(root / "scores"), "SRC": str(root / "src"),
             "OUT": str(tmp_path / "o")}
    assert main([paths.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

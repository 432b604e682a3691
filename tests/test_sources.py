"""Sources: folder, Parquet, WebDataset tars and Hub-style datasets yield original bytes, stable keys."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.errors import DiversegError
from diverseg_hf.keys import decode_key, encode_key
from diverseg_hf.sources import detect_kind, open_source, reopen_source


def all_records(source, limit=None):
    return [r for unit in source.units(limit) for r in unit.records()]


@pytest.mark.parametrize("raw", ["a", "a.b.c", "50%", "%2E", "dir/sub/x.y", "..", "a%2Eb.c%25", "ü.é"])
def test_keys_roundtrip_and_dot_free(raw):
    key = encode_key(raw)
    assert "." not in key
    assert decode_key(key) == raw


def test_keys_distinct_inputs_stay_distinct():
    raws = ["a.b", "a%2Eb", "a%252Eb", "a%b", "a%25b"]
    assert len({encode_key(r) for r in raws}) == len(raws)


def test_folder_recursive_sorted_chunked(tmp_path):
    files = good_images(7)
    write_files(tmp_path, files)
    (tmp_path / "notes.txt").write_text("not an image suffix")
    src = open_source(str(tmp_path), unit_size=3)
    assert src.kind == "folder"
    units = src.units()
    assert [u.id for u in units] == ["folder-00000", "folder-00001", "folder-00002"]
    assert [u.size for u in units] == [3, 3, 1]
    records = all_records(src)
    rels = sorted(files)
    assert [r.origin for r in records] == rels
    assert [r.data for r in records] == [files[rel] for rel in rels]
    assert [decode_key(r.key) for r in records] == [rel.rsplit(".", 1)[0] for rel in rels]
    assert all("." not in r.key for r in records)
    # stable: reopening gives the same units and keys
    again = open_source(str(tmp_path), unit_size=3)
    assert [r.key for r in all_records(again)] == [r.key for r in records]


def test_folder_key_collisions_keep_suffix(tmp_path):
    write_files(tmp_path, {"a.png": b"1", "a.jpg": b"2", "b.png": b"3"})
    keys = [decode_key(r.key) for r in all_records(open_source(str(tmp_path)))]
    assert keys == ["a.jpg", "a.png", "b"]


def test_folder_limit_and_key_filter(tmp_path):
    write_files(tmp_path, good_images(7))
    src = open_source(str(tmp_path), unit_size=3)
    assert len(all_records(src, limit=5)) == 5
    assert [u.size for u in src.units(limit=5)] == [3, 3]
    wanted = {r.key for r in all_records(src)[2:4]}
    picked = [r.key for u in src.units() for r in u.records(wanted)]
    assert set(picked) == wanted


def _parquet(path: Path, files: dict[str, bytes], struct: bool, key: bool) -> None:
    names = sorted(files)
    if struct:
        image = pa.array([{"bytes": files[n], "path": n} for n in names],
                         pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    else:
        image = pa.array([files[n] for n in names], pa.binary())
    columns = {"image": image, "label": pa.array(range(len(names)))}
    if key:
        columns["key"] = pa.array(names)
    pq.write_table(pa.table(columns), path)


@pytest.mark.parametrize("struct", [True, False])
def test_parquet_source(tmp_path, struct):
    files = good_images(5)
    _parquet(tmp_path / "part-0.parquet", dict(list(files.items())[:3]), struct, key=True)
    _parquet(tmp_path / "part-1.parquet", dict(list(files.items())[3:]), struct, key=False)
    src = open_source(str(tmp_path))
    assert src.kind == "parquet"
    assert [u.size for u in src.units()] == [3, 2]
    records = all_records(src)
    first = sorted(dict(list(files.items())[:3]))
    second = sorted(dict(list(files.items())[3:]))
    assert [r.data for r in records] == [files[n] for n in first + second]
    assert [decode_key(r.key) for r in records[:3]] == first
    assert [decode_key(r.key) for r in records[3:]] == ["part-1/00000000", "part-1/00000001"]
    assert records[4].origin == "part-1.parquet#row=1"


def test_parquet_without_image_column(tmp_path):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "a.parquet")
    with pytest.raises(DiversegError, match="no image column"):
        all_records(open_source(str(tmp_path)))


def _tar(path: Path, samples: list[tuple[str, str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, ext, data in samples:
            for name, payload in ((f"{key}.{ext}", data), (f"{key}.json", b"{}")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def test_webdataset_source(tmp_path):
    files = list(good_images(4).values())
    _tar(tmp_path / "shard-0.tar", [("s/a", "png", files[0]), ("s/b", "jpg", files[1])])
    _tar(tmp_path / "shard-1.tar", [("c", "jpg", files[2]), ("d", "jpg", files[3])])
    src = open_source(str(tmp_path))
    assert src.kind == "webdataset"
    assert [u.size for u in src.units()] == [2, 2]
    records = all_records(src)
    assert [r.key for r in records] == ["s/a", "s/b", "c", "d"]
    assert [r.data for r in records] == files
    assert records[1].origin == "shard-0.tar#s/b.jpg"


def test_hub_source_from_local_dataset_folder(tmp_path):
    import datasets

    files = good_images(6)
    names = sorted(files)
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": files[n], "path": None} for n in names], "id": names},
        features=datasets.Features({"image": datasets.Image(), "id": datasets.Value("string")}),
    )
    (tmp_path / "data").mkdir()
    ds.select(range(4)).to_parquet(tmp_path / "data" / "train-00000-of-00002.parquet")
    ds.select(range(4, 6)).to_parquet(tmp_path / "data" / "train-00001-of-00002.parquet")
    src = open_source(str(tmp_path), kind="hub")
    assert src.kind == "hub"
    assert [u.id for u in src.units()] == ["shard-00000", "shard-00001"]
    records = all_records(src)
    assert [r.data for r in records] == [files[n] for n in names]  # original bytes, not re-encoded
    assert [r.key for r in records][:2] == ["00000-00000000", "00000-00000001"]
    with_ids = open_source(str(tmp_path), kind="hub", key_column="id")
    assert [decode_key(r.key) for r in all_records(with_ids)] == names
    assert len(all_records(src, limit=3)) == 3
    reopened = reopen_source(with_ids.describe())
    assert [r.key for r in all_records(reopened)] == [r.key for r in all_records(with_ids)]


def test_hub_key_column_found_by_itself_and_repeats_marked(tmp_path):
    import datasets

    data = list(good_images(4).values())
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": d, "path": None} for d in data], "__key__": ["x", "y.z", "x", "/abs"]},
        features=datasets.Features({"image": datasets.Image(), "__key__": datasets.Value("string")}))
    (tmp_path / "data").mkdir()
    ds.to_parquet(tmp_path / "data" / "train-00000-of-00001.parquet")
    src = open_source(str(tmp_path), kind="hub")
    assert src.describe()["key_column"] == "__key__"
    assert [r.key for r in all_records(src)] == ["x", "y%2Ez", "x%232", "abs"]
    assert [r.key for r in all_records(reopen_source(src.describe()))] == ["x", "y%2Ez", "x%232", "abs"]


def test_errors_are_one_line(tmp_path):
    with pytest.raises(DiversegError, match="no such file or folder"):
        open_source(str(tmp_path / "missing"))
    with pytest.raises(DiversegError, match="no image files found"):
        open_source(str(tmp_path))
    with pytest.raises(DiversegError, match="unknown source kind"):
        open_source(str(tmp_path), kind="ftp")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DiversegError, match=r"\.parquet or \.tar"):
        detect_kind(str(tmp_path / "x.txt"))
    assert detect_kind("hf://datasets/org/name") == "hub"
    assert detect_kind("org/name") == "hub"


def test_parquet_path_only_cells_are_read_or_recorded(tmp_path):
    files = good_images(2)
    data = next(iter(files.values()))
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.jpg").write_bytes(data)
    image = pa.array([{"bytes": None, "path": "pics/a.jpg"}, {"bytes": None, "path": "pics/b.jpg"}],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": image}), tmp_path / "part-0.parquet")
    found, missing = all_records(open_source(str(tmp_path / "part-0.parquet")))
    assert found.data == data and found.error is None and found.extra["path"] == "pics/a.jpg"
    assert missing.data == b"" and missing.extra["path"] == "pics/b.jpg"
    assert missing.error.startswith("unreadable: image cell holds only the path")


def test_source_errors_reach_the_score_table(tmp_path):
    from diverseg_hf.scoring import create_scorer
    from diverseg_hf.scoring.run import prepare_records

    image = pa.array([{"bytes": None, "path": "gone.png"}], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"image": image}), tmp_path / "p.parquet")
    records = all_records(open_source(str(tmp_path / "p.parquet")))
    rows, images = prepare_records(records, [create_scorer("blockiness")])
    assert images == [None]
    assert rows[0]["error"].startswith("unreadable:") and rows[0]["blockiness"] is None


# ----------------------------------------------------------------------------- Hub sources, pinned

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

PIN_CLIENT = """
import contextlib, io
from diverseg_hf.cli import main
from diverseg_hf.sources import open_source
from diverseg_hf.storage import DatasetDir, iter_parquet_rows

def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return [code, err.getvalue().strip().splitlines()]

def opened(repo):
    src = open_source(repo)
    return src.describe()["revision"], [[r.key, digest(r.data)] for u in src.units() for r in u.records()]
"""


def test_hub_source_is_pinned_to_the_commit_it_resolved(hub_env, tmp_path):
    """Score records the commit; after the dataset moves on, a resume refuses (naming the commit), finishes
    with --revision, and publish re-reads the recorded commit; a ``key`` column is the key by itself."""
    from conftest_hub import WRITE_TOKEN, client_env, run_client, sha, write_parquet_config
    from huggingface_hub import HfApi

    from diverseg_hf.hub.push import push_folder

    repo, root = "tester/pinned", tmp_path / "ds"
    api = HfApi(endpoint=hub_env.url, token=WRITE_TOKEN)
    v1 = {f"one-{i}": data for i, data in enumerate(good_images(4, seed=1).values())}
    v2 = {f"two-{i}": data for i, data in enumerate(good_images(3, seed=2).values())}
    write_parquet_config(root, None, v1)
    push_folder(root, repo)
    first = api.dataset_info(repo).sha
    env = client_env(hub_env.url, tmp_path / "client_home", WRITE_TOKEN)
    out = {name: str(tmp_path / name) for name in ("scores", "sel", "pub")}
    got = run_client(PIN_CLIENT + f"""
print(json.dumps([opened({repo!r}), cli("score", {repo!r}, "--out", {out['scores']!r})]))
""", env)
    (revision, rows), (code, _) = got
    assert revision == first and code == 0
    assert rows == [[k, sha(v)] for k, v in v1.items()]  # keyed by the `key` column without being told

    write_parquet_config(root, None, v2)
    push_folder(root, repo)
    second = api.dataset_info(repo).sha
    assert second != first
    moved, finished, selected, published, pub_rows, now = run_client(PIN_CLIENT + f"""
moved = cli("score", {repo!r}, "--out", {out['scores']!r})
finished = cli("score", {repo!r}, "--revision", {first!r}, "--out", {out['scores']!r})
selected = cli("select", {out['scores']!r}, "--out", {out['sel']!r})
published = cli("publish", {out['sel']!r}, "--out", {out['pub']!r}, "--name", "mine")
shards = DatasetDir({out['pub']!r}).parquet_shards("mine", missing_ok=True)
pub = [[r["key"], digest(r["image"]["bytes"])] for p in shards for r in iter_parquet_rows(p, ["key", "image"])]
print(json.dumps([moved, finished, selected, published, pub, opened({repo!r})]))
""", env)
    assert moved[0] == 2 and len(moved[1]) == 1
    assert moved[1][0].startswith("diverseg score: error: tester/pinned moved from commit " + first)
    assert f"--revision {first}" in moved[1][0]
    assert finished[0] == 0 and selected[0] == 0 and published[0] == 0, (finished, selected, published)
    assert sorted(pub_rows) == sorted([k, sha(v)] for k, v in v1.items())  # the recorded commit, not v2
    assert now == [second, [[k, sha(v)] for k, v in v2.items()]]

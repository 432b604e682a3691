"""SRPairs streams a subset from a Hub id (issue 21, item 5), through the one Hub streamer: config, split,
revision and streaming pass through; ``from_folder`` takes a Hub id too; a path-only image cell of a
Hub dataset is never read from the local disk."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

import pyarrow as pa
import pyarrow.parquet as pq
from conftest_hub import WRITE_TOKEN, client_env, image_bytes, run_client, write_card, write_parquet_config
from huggingface_hub import HfApi

from diverseg_hf.hub.push import push_folder

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/srsubset"

CLIENT = """
from diverseg_hf.sr import SRPairs
from diverseg_hf.sr.readers import hub_reader

def keys(pairs):
    return sorted(sample["key"] for sample in pairs)

def attempt(make):
    try:
        return keys(make())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
"""


def test_srpairs_reads_a_hub_id(hub_env, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    images = {"I": image_bytes(1, 4), "P": image_bytes(2, 3)}
    for name, imgs in images.items():
        write_parquet_config(root, name, imgs)
    secret = tmp_path / "secret.png"  # a local file a hostile dataset names by a path-only cell
    secret.write_bytes(image_bytes(9, 1)["img9-0"])
    (root / "data" / "X").mkdir()
    cells = pa.array([{"bytes": None, "path": str(secret)}, {"bytes": secret.read_bytes(), "path": None}],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    pq.write_table(pa.table({"key": ["hostile", "fine"], "image": cells}), root / "data" / "X" / "train.parquet")
    write_card(root, {"I": "data/I/*.parquet", "P": "data/P/*.parquet", "X": "data/X/*.parquet"})
    push_folder(root, REPO)
    first = HfApi(endpoint=hub_env.url, token=WRITE_TOKEN).dataset_info(REPO).sha
    write_parquet_config(root, "I", image_bytes(3, 2))  # the dataset moves on
    push_folder(root, REPO)

    kw = "scale=2, patch_size=8, augment=False"
    got = run_client(CLIENT + f"""
print(json.dumps({{
    "id": attempt(lambda: SRPairs({REPO!r}, config="P", {kw})),
    "map": attempt(lambda: SRPairs({REPO!r}, config="P", streaming=False, {kw})),
    "from_folder": attempt(lambda: SRPairs.from_folder({REPO!r}, "P", {kw})),
    "pinned": attempt(lambda: SRPairs.from_folder({REPO!r}, "I", revision={first!r}, {kw})),
    "now": attempt(lambda: SRPairs({REPO!r}, config="I", {kw})),
    "wds": attempt(lambda: SRPairs.from_folder({REPO!r}, "I", format="webdataset", {kw})),
    "hostile": [[k, p is not None] for k, p in hub_reader({REPO!r}, "X").read_shard(0)],
    "hostile map": [list(r) for r in map(lambda r: [r[0], r[1] is not None],
                                         (hub_reader({REPO!r}, "X", streaming=False).record(i) for i in range(2)))],
}}))
""", client_env(hub_env.url, tmp_path / "client_home", WRITE_TOKEN))
    assert got["id"] == got["map"] == got["from_folder"] == sorted(images["P"])
    assert got["pinned"] == sorted(images["I"])
    assert got["now"] == sorted(image_bytes(3, 2))
    assert "format='parquet'" in got["wds"]
    assert got["hostile"] == got["hostile map"] == [["hostile", False], ["fine", True]]


def test_path_cells_hub_refused_callers_own_read(tmp_path: Path) -> None:
    """A path-only cell of a Hub dataset is refused; a datasets object the caller built is read as datasets does."""
    import datasets

    from diverseg_hf.sources.base import cell_record
    from diverseg_hf.sr.readers import StreamingReader

    secret = tmp_path / "secret.png"
    secret.write_bytes(next(iter(image_bytes(4, 1).values())))
    assert cell_record("k", {"bytes": None, "path": str(secret)}, None, "hub").error.startswith("refused: ")
    # a datasets object the caller built from its own files is read as datasets reads it
    own = datasets.Dataset.from_dict({"image": [str(secret)]}).cast_column("image", datasets.Image())
    reader = StreamingReader(own.to_iterable_dataset())
    assert [payload for _, payload in reader.read_shard(0)] == [secret.read_bytes()]


def test_one_column_check_for_datasets_objects() -> None:
    """Image, binary and metadata-less ``{bytes, path}`` columns are image columns; ``image`` is preferred."""
    import datasets

    from diverseg_hf.errors import DiversegError
    from diverseg_hf.sources.hub import undecoded

    struct = pa.array([{"bytes": b"x", "path": None}], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    assert undecoded(datasets.Dataset(pa.table({"key": ["a"], "image": struct})), None, "d")[1] == "image"
    assert undecoded(datasets.Dataset.from_dict({"key": ["a"], "jpg": [b"x"]}), None, "d")[1] == "jpg"
    both = datasets.Dataset.from_dict({"mask": [b"m"], "image": [b"x"]})
    assert undecoded(both, None, "d")[1] == "image"
    with pytest.raises(DiversegError, match="no image column"):
        undecoded(datasets.Dataset.from_dict({"key": ["a"]}), None, "d")

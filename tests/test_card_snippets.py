"""Every Python block of a rendered dataset card runs as written and gives back the published rows.

Cards are rendered for a local folder (Parquet + WebDataset, and WebDataset only) and for a repo pushed
to the local Hub server; each block runs in a subprocess (fresh namespace per block, ``HF_ENDPOINT`` at
the server for the Hub card), and what it loaded (``ds``: keys and image bytes, or decoded pixels for
``webdataset``; ``scores``) is compared with what was published. No published file names a local path.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_hub import CLIENT_PRELUDE, WRITE_TOKEN, client_env
from PIL import Image
from pipeline_helpers import good_images, write_files

from diverseg_hf.cards.render import card_text
from diverseg_hf.hub.push import push_folder
from diverseg_hf.publish.from_selection import publish, rerender_card
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import ScoreTable, load_selection

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/cards"

#: Runs each block (a JSON list of code strings) in a fresh namespace and prints what each loaded.
RUNNER = """
import numpy as np
import webdataset

def loaded(ns):
    out = {}
    ds = ns.get("ds")
    if isinstance(ds, (datasets.Dataset, datasets.IterableDataset)):
        cols = list(ds.features)
        key = "key" if "key" in cols else "__key__"
        images = [c for c in cols if isinstance(ds.features[c], datasets.Image)]
        assert len(images) == 1, f"one image column expected, got {images}"
        raw = ds.cast_column(images[0], datasets.Image(decode=False))
        out["rows"] = [[r[key], "bytes:" + digest(r[images[0]]["bytes"])] for r in raw]
    elif ds is not None:  # a webdataset pipeline: decoded PIL images
        rows = []
        for sample in ds:
            images = [v for v in sample.values() if hasattr(v, "convert")]
            assert len(images) == 1 and isinstance(sample["json"], dict)
            rows.append([sample["__key__"], "pixels:" + digest(np.asarray(images[0].convert("RGB")).tobytes())])
        out["rows"] = rows
    if "scores" in ns:
        out["scores"] = ns["scores"].num_rows
        out["rich"] = [r["error"] for r in ns["rich"]].count(None) == ns["rich"].num_rows
    if "image" in ns:
        out["image"] = hasattr(ns["image"], "size")
    return out

results = []
for block in json.loads(sys.argv[1]):
    ns = {}
    exec(compile(block, "<card block>", "exec"), ns)
    results.append(loaded(ns))
print(json.dumps(results))
"""


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.S)


def run_blocks(blocks: list[str], env: dict[str, str], cwd: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", CLIENT_PRELUDE + RUNNER, json.dumps(blocks)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"a card block failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("cards")
    files = write_files(root / "src", good_images(10))
    score(str(root / "src"), root / "scores", unit_size=4, progress=False)
    select(root / "scores", root / "sel", max_blockiness=1000)
    for formats in (["parquet", "webdataset"], ["webdataset"]):
        publish(root / "sel", root / "+".join(formats) / "ds", "mine", formats=formats, shard_size=20_000,
                progress=False)
    table, _ = load_selection(root / "sel")
    data = {row["key"]: files[row["origin"]].read_bytes() for row in table.to_pylist()}
    assert {Image.open(io.BytesIO(b)).format for b in data.values()} == {"PNG", "JPEG"}  # a mixed config
    expected = {
        "bytes": [[k, "bytes:" + hashlib.sha256(b).hexdigest()] for k, b in data.items()],
        "pixels": [[k, "pixels:" + hashlib.sha256(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).tobytes())
                    .hexdigest()] for k, b in data.items()],
        "scores": ScoreTable.open(root / "scores").read().num_rows,
    }
    return root, expected


def check(results: list[dict], expected: dict, with_scores: bool) -> None:
    kinds = [r for r in results if "rows" in r]
    assert len(kinds) >= 4  # load, stream, datasets' WebDataset (or the config itself), webdataset
    for result in kinds:
        assert result["rows"] in (expected["bytes"], expected["pixels"]), result
    assert any(r["rows"] == expected["pixels"] for r in kinds)  # the webdataset block ran
    scores = [r for r in results if "scores" in r]
    assert [(r["scores"], r["rich"]) for r in scores] == ([(expected["scores"], True)] if with_scores else [])
    assert all(r.get("image", True) for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["parquet+webdataset", "webdataset"])
def test_local_card_blocks_run_as_written(published, layout, tmp_path):
    root, expected = published
    folder = root / layout
    card = (folder / "ds" / "README.md").read_text()
    env = {**client_env("http://127.0.0.1:9", tmp_path / "home", None), "HF_HUB_OFFLINE": "1"}
    results = run_blocks(python_blocks(card), env, cwd=folder)  # from the folder that contains ds/
    check(results, expected, with_scores=layout == "parquet+webdataset")


@pytest.mark.slow
def test_hub_card_blocks_run_as_written(published, hub_env, tmp_path):
    root, expected = published
    folder = tmp_path / "ds"
    shutil.copytree(root / "parquet+webdataset" / "ds", folder)
    card = card_text(folder, repo=REPO)
    rerender_card(folder, repo=REPO)
    assert (folder / "README.md").read_text() == card
    push_folder(folder, REPO)
    assert hub_env.files(REPO)["README.md"].decode() == card
    assert f'load_dataset("{REPO}", "mine"' in card and "hf://datasets/" + REPO in card
    assert '"ds"' not in card  # the Hub card never names the local folder
    results = run_blocks(python_blocks(card), client_env(hub_env.url, tmp_path / "home", WRITE_TOKEN), cwd=tmp_path)
    check(results, expected, with_scores=True)


def test_no_published_file_names_a_local_path(published):
    root, _ = published
    local = [str(root).encode(), str(root.resolve()).encode(), str(Path.home()).encode() + b"/"]
    for layout in ("parquet+webdataset", "webdataset"):
        folder = root / layout / "ds"
        for path in folder.rglob("*"):
            if path.is_file() and ".diverseg" not in path.relative_to(folder).parts:
                data = path.read_bytes()
                assert not [p for p in local if p in data], f"{path.relative_to(folder)} names a local path"
        card = (folder / "README.md").read_text()
        assert "**Source**: `src` (folder)" in card

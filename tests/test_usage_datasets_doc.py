"""docs/usage.md's "With datasets" and "Your own scorer" sections run as written.

Each code block runs in order in one namespace (Python) or through ``diverseg`` (bash), in a temporary
working folder. A block preceded by ``<!-- doc-test: A => B ;; C => D -->`` runs with those literal
substitutions (a Hub id becomes a local Parquet file, a GPU count becomes 2, the SAM model the tiny
test model); ``<!-- doc-test: module NAME -->`` writes the block to ``NAME.py`` on ``sys.path``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from shared_data import encode

import diverseg_hf
from diverseg_hf.cli import main
from diverseg_hf.quality.sample import render_scene
from diverseg_hf.storage.score_table import ScoreTable

datasets = pytest.importorskip("datasets")

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"
BLOCK = re.compile(r"(?:<!-- doc-test: (?P<marker>.*?) -->\n)?```(?P<lang>python|bash)\n(?P<code>.*?)```", re.S)


def section(title: str) -> str:
    text = USAGE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def blocks(title: str) -> list[tuple[str, str, str]]:
    """``(language, code with the substitutions applied, module name or "")`` per block of the section."""
    out = []
    for match in BLOCK.finditer(section(title)):
        code, marker, module = match["code"], match["marker"] or "", ""
        if marker.startswith("module "):
            module = marker.split()[1]
        elif marker:
            for rule in marker.split(" ;; "):
                old, new = rule.split(" => ")
                assert old in code, f"doc-test marker {old!r} not in its block"
                code = code.replace(old, new)
        out.append((match["lang"], code, module))
    return out


def run_blocks(title: str, namespace: dict, folder: Path, *, publish: bool = True) -> None:
    for lang, code, module in blocks(title):
        if not publish and ("publish" in code and lang == "bash"):
            continue
        if not publish:
            code = "\n".join(line for line in code.splitlines() if "publish_dataset(" not in line)
        if module:
            (folder / f"{module}.py").write_text(code)
        elif lang == "python":
            exec(compile(code, f"{USAGE.name}:{title}", "exec"), namespace)
        else:
            for line in code.splitlines():
                argv = shlex.split(line.split("#")[0])
                if argv:
                    assert argv[0] == "diverseg" and main(argv[1:]) == 0, line


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """A local Parquet corpus standing in for ``me/photos`` (PNGs, JPEGs, a corrupt file); cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    scenes = [render_scene(seed) for seed in range(3)]  # pristine: blockiness about 1.4-2.5
    cells = {f"png{i}": encode(im, "PNG") for i, im in enumerate(scenes)}
    cells.update({f"jpg{i}": encode(im, "JPEG", quality=50) for i, im in enumerate(scenes)})  # about 200
    cells["broken"] = b"\xff\xd8\xff\xe0 not really a JPEG"
    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()})
    rows = {"key": list(cells), "image": [{"bytes": b, "path": None} for b in cells.values()]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "photos.parquet"))
    diverseg_hf.score(str(tmp_path / "photos.parquet"), tmp_path / "cli_scores", ["blockiness"], progress=False)
    table = {r["key"]: r for r in ScoreTable.open(tmp_path / "cli_scores").read().to_pylist()}
    from sam_helpers import TINY_SAM

    namespace = {"PHOTOS": str(tmp_path / "photos.parquet"), "TINY_SAM": str(TINY_SAM), "__name__": "usage_doc"}
    return namespace, cells, table


def _same_as_table(rows, table) -> None:
    for row in rows:
        expected = table[row["key"]]["blockiness"]
        if expected is None:
            assert np.isnan(row["blockiness"]) and row["blockiness_error"]
        else:
            assert np.float64(row["blockiness"]).tobytes() == np.float64(expected).tobytes()


def test_with_datasets_scores_as_the_cli_does(photos, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    namespace, cells, table = photos
    run_blocks("With datasets", namespace, tmp_path, publish=False)
    ds = namespace["ds"]
    assert len(ds) == len(cells) and {"blockiness", "blockiness_error", "sam_masks", "sam_error"} <= set(ds.features)
    _same_as_table(ds.remove_columns("image"), table)
    assert [r["sam_masks"] for r in ds if r["key"] == "broken"] == [-1]
    _same_as_table(namespace["stream"].remove_columns("image"), table)


def test_with_datasets_publishes_and_rethresholds(photos, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    namespace, cells, table = photos
    run_blocks("With datasets", namespace, tmp_path)
    kept = {k for k, r in table.items() if r["blockiness"] is not None and r["blockiness"] <= 10}
    assert kept == {"png0", "png1", "png2"}
    for folder in ("mysubset", "mysubset-stream"):
        published = datasets.load_dataset(str(tmp_path / folder), "mine", split="train")
        published = published.cast_column("image", datasets.Image(decode=False))
        assert {r["image"]["bytes"] for r in published} == {cells[k] for k in kept}
    strict = datasets.load_dataset(str(tmp_path / "mysubset-strict"), "strict", split="train")
    assert 0 < len(strict) <= len(kept)


def test_your_own_scorer_section_runs(photos, tmp_path):
    namespace, cells, _ = photos
    (tmp_path / "photos").mkdir()
    for key, data in cells.items():
        (tmp_path / "photos" / f"{key}.png").write_bytes(data)  # the suffix only routes the folder walk
    namespace.update(PHOTOS_DIR=str(tmp_path / "photos"), SCORES_DIR=str(tmp_path / "scores"))
    run_blocks("Your own scorer", namespace, tmp_path)
    scores = ScoreTable.open(tmp_path / "scores")
    assert [s["name"] for s in scores.header["scorers"]] == ["blockiness", "colourfulness"]
    rows = scores.read().to_pylist()
    assert len(rows) == len(cells) and all(r["colourfulness"] is not None for r in rows if r["error"] is None)
    assert main(["select", str(tmp_path / "scores"), "--out", str(tmp_path / "sel"), "--min-quality", "0",
                 "--theta", "colourfulness=0"]) == 0


def test_the_readme_map_example_is_the_tested_one():
    readme = (USAGE.parents[1] / "README.md").read_text()
    example = readme[readme.index("Or score a `datasets` dataset"):].split("```python\n")[1].split("```")[0]
    tested = blocks("With datasets")[0][1]
    lines = [line.split("  #")[0].rstrip() for line in example.splitlines() if line.startswith(("ds", "diverseg_hf"))]
    doc = section("With datasets")
    assert len(lines) == 3 and all(line in doc for line in lines), lines
    assert "scorer_map" in tested

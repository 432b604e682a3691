"""Misuse fails early, in one line, exit 2, never a traceback; curate checks everything before scoring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import good_images, one_line, run_cli, write_files

from diverseg_hf import cli
from diverseg_hf.score import score
from diverseg_hf.select import select

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def pipeline_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", ["score", "select", "publish", "curate"])



@pytest.fixture
def src(tmp_path) -> Path:
    write_files(tmp_path / "src", good_images(3))
    return tmp_path / "src"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "my-subset"], "config name 'my-subset'"),
        (["--format", "parket"], "--format must be a comma-separated subset"),
        (["--shard-size", "12XB"], "cannot read size '12XB'"),
        (["--min-quality", "0.9", "--basis", "/no/such/basis"], "no such basis folder or file"),
        (["--max-blockiness", "nan"], "--max-blockiness must be a finite number"),
        (["--theta", "sam_masks=inf"], "--theta sam_masks=inf is not a finite number"),
        (["--min-quality", "inf"], "--min-quality must be a finite number"),
        (["--keep", "nan", "--by", "sam_masks"], "--keep must be in (0, 1]"),
        (["--scorers", "nope"], "unknown scorer 'nope'"),
    ],
)
def test_curate_checks_every_argument_before_scoring(src, tmp_path, capsys, extra, message):
    argv = ["curate", src, "--out", tmp_path / "ds", "--scorers", "blockiness", *extra]
    if "--name" not in extra:
        argv += ["--name", "mine"]
    code, lines = run_cli(argv, capsys)
    one_line(code, lines, "curate", message)
    assert not (tmp_path / "ds").exists()  # the score table folder (ds/.diverseg/mine/scores) was never made
    assert not list(tmp_path.rglob("scores.json"))


def test_curate_refuses_an_output_folder_inside_its_source(src, capsys):
    code, lines = run_cli(["curate", src, "--out", src / "curated", "--name", "mine"], capsys)
    one_line(code, lines, "curate", "lies inside the source folder")
    assert not (src / "curated").exists()


def test_output_onto_a_file(src, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, lines = run_cli(["score", src, "--out", tmp_path / "file"], capsys)
    one_line(code, lines, "score", f"--out {tmp_path / 'file'} cannot be a folder")
    code, lines = run_cli(["curate", src, "--out", tmp_path / "file" / "ds", "--name", "mine"], capsys)
    one_line(code, lines, "curate", "is a file")
    score(str(src), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel")
    code, lines = run_cli(["publish", tmp_path / "sel", "--out", tmp_path / "file", "--name", "mine"], capsys)
    one_line(code, lines, "publish", "cannot be a folder")
    code, lines = run_cli(["publish", tmp_path / "sel", "--out", tmp_path / "ds", "--name", "mine",
                           "--push-to-hub", "bad name"], capsys)  # the argparse type of --push-to-hub refuses it
    assert code == 2 and len(lines) == 1 and "argument --push-to-hub: REPO_ID must be" in lines[0], lines
    assert (tmp_path / "file").read_text() == "x" and not (tmp_path / "ds").exists()


def test_named_columns_a_parquet_source_lacks(tmp_path, capsys):
    data = next(iter(good_images(1).values()))
    pq.write_table(pa.table({"image": pa.array([data], pa.binary()), "id": ["a"]}), tmp_path / "p.parquet")
    code, lines = run_cli(["score", tmp_path / "p.parquet", "--image-column", "img", "--out", tmp_path / "s"], capsys)
    one_line(code, lines, "score", "--image-column 'img' is not a column of")
    code, lines = run_cli(["score", tmp_path / "p.parquet", "--key-column", "name", "--out", tmp_path / "s"], capsys)
    one_line(code, lines, "score", "--key-column 'name' is not a column of")
    assert not (tmp_path / "s").exists()


def test_select_refuses_non_finite_thresholds(tmp_path, capsys):
    from pipeline_helpers import synthetic_scores

    synthetic_scores(tmp_path / "scores", 30)
    for extra, message in ((["--max-blockiness", "inf"], "--max-blockiness must be a finite number"),
                           (["--theta", "blockiness=nan"], "--theta blockiness=nan is not a finite number")):
        code, lines = run_cli(["select", tmp_path / "scores", "--out", tmp_path / "sel", *extra], capsys)
        one_line(code, lines, "select", message)
    assert not (tmp_path / "sel").exists()


#: Runs the CLI with torch hidden (as if the [sam]/[detect] extras were not installed).
NO_TORCH = """
import sys
sys.modules["torch"] = None
from diverseg_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("scorer", ["sam", "detect"])
def test_scorer_extras_missing_is_one_line_in_a_fresh_process(src, tmp_path, scorer):
    for command in (["score", src, "--out", tmp_path / "scores"],
                    ["curate", src, "--out", tmp_path / "ds", "--name", "mine"]):
        proc = subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, command), "--scorers", f"blockiness,{scorer}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stderr
        assert lines == [f"diverseg {command[0]}: error: torch is needed here but is not installed: "
                         f'pip install "diverseg-hf[{scorer}]"'], proc.stderr
    assert not (tmp_path / "scores").exists() and not (tmp_path / "ds").exists()


def test_unreachable_keep_warns_and_selection_json_says_what_was_kept(tmp_path, capsys, caplog):
    """A --keep that ties make unreachable logs a warning, and selection.json records the target and the result."""
    from diverseg_hf.storage import BASE_SCHEMA, ScoreTable

    n = 10
    table = pa.table({"key": [f"k{i}" for i in range(n)], "origin": ["o"] * n, "sha256": ["0" * 64] * n,
                      "bytes": [1] * n, "width": pa.array([8] * n, pa.int32()), "height": pa.array([8] * n, pa.int32()),
                      "format": ["PNG"] * n, "sam_masks": pa.array([5] * n, pa.int32()), "error": [None] * n},
                     schema=pa.schema([*BASE_SCHEMA, pa.field("sam_masks", pa.int32()),
                                       pa.field("error", pa.string())]))
    header = {"source": {"kind": "folder", "spec": "x"}, "limit": None, "scorers": [], "columns": table.column_names}
    ScoreTable.create(tmp_path / "scores", header, [{"id": "u", "size": n, "max_records": None}]).commit("u", table)
    assert run_cli(["select", tmp_path / "scores", "--out", tmp_path / "sel", "--keep", "0.3"], capsys)[0] == 0
    assert "--keep 0.3 by sam_masks asked for 3 of 10 rows, but ties at theta=5 keep 10 (100.00%)" in caplog.text
    info = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert info["keep"] == {"fraction": 0.3, "by": "sam_masks", "better": "higher", "target_rows": 3,
                            "kept_rows": 10, "theta": 5, "reached": False}

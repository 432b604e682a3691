"""`diverseg score/select/publish/curate` end to end through the command line, and its one-line errors."""

from __future__ import annotations

import json

import datasets
import pytest
from image_zoo import INVALID
from pipeline_helpers import good_images, mixed_folder, write_files

from diverseg_hf import cli
from diverseg_hf.storage import load_selection


@pytest.fixture(autouse=True)
def pipeline_commands(monkeypatch):
    """Only this brief's subcommands, so these tests do not depend on the others being importable."""
    monkeypatch.setattr(cli, "COMMANDS", ["score", "select", "publish", "curate"])


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err


def test_curate_mixed_folder(tmp_path, capsys):
    files = mixed_folder(tmp_path / "src", n_good=10)
    argv = ["curate", tmp_path / "src", "--out", tmp_path / "ds", "--name", "mine", "--scorers", "blockiness",
            "--max-blockiness", "1000", "--format", "parquet,webdataset", "--unit-size", "4"]
    code, err = run(argv, capsys)
    assert code == 0, err
    work = tmp_path / "ds" / ".diverseg" / "mine"
    manifest = json.loads((work / "scores" / "scores.json").read_text())
    assert manifest["complete"] and manifest["totals"]["rows"] == len(files)
    assert manifest["totals"]["errors"] == len(INVALID)
    selection, info = load_selection(work / "selection")
    # blockiness was scored: the quality estimate (packaged basis; values >= 300 left out) is recorded, printed
    assert 0.5 <= info["quality"]["quality"] <= 1 and 0 < info["quality"]["n"] <= manifest["totals"]["scored"]
    assert f"quality: estimated JPEG quality of the source {info['quality']['quality']:.1%}" in err
    card = (tmp_path / "ds" / "README.md").read_text()
    estimate = next(line for line in card.splitlines() if "Source quality estimate" in line)
    assert f"{info['quality']['quality']:.4f}" in estimate and "gate" not in estimate  # no gate was asked for
    assert "![source quality estimate of mine against the basis](assets/mine_quality.png)" in card
    assert (tmp_path / "ds" / "assets" / "mine_quality.png").read_bytes()[:4] == b"\x89PNG"
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train")  # the default config
    assert ds["key"][:] == selection.column("key").to_pylist()
    raw = ds.cast_column("image", datasets.Image(decode=False))
    for row, origin in zip(raw, selection.column("origin").to_pylist()):
        assert row["image"]["bytes"] == files[origin].read_bytes()
    assert not {f"zoo/{n}" for n in INVALID.values()} & set(selection.column("origin").to_pylist())
    assert list((tmp_path / "ds" / "wds" / "mine").glob("*.tar"))
    # re-running resumes: every unit is already complete
    code, err = run(argv, capsys)
    assert code == 0, err
    assert json.loads((work / "scores" / "scores.json").read_text())["unit_counts"] == manifest["unit_counts"]


def test_three_commands_chain(tmp_path, capsys):
    write_files(tmp_path / "src", good_images(6))
    assert run(["score", tmp_path / "src", "--out", tmp_path / "scores", "--workers", "1"], capsys)[0] == 0
    code, err = run(["select", tmp_path / "scores", "--out", tmp_path / "sel", "--theta", "blockiness=1000",
                     "--max-blockiness", "50"], capsys)
    assert code == 2 and "the same rule" in err  # --max-blockiness is the blockiness theta
    code, err = run(["select", tmp_path / "scores", "--out", tmp_path / "sel", "--theta", "blockiness=50"], capsys)
    assert code == 0 and "kept where blockiness <= 50.0" in err
    code, err = run(["publish", tmp_path / "sel", "--out", tmp_path / "ds", "--name", "P", "--shard-size", "5KB"],
                    capsys)
    assert code == 0, err
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "license: cc-by-4.0" in card
    ds = datasets.load_dataset(str(tmp_path / "ds"), "P", split="train", streaming=True)
    assert len(list(ds)) == load_selection(tmp_path / "sel")[0].num_rows


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda p: None, [], "no such file or folder"),
        (lambda p: (p / "src").mkdir(), [], "no image files found"),
        (lambda p: write_files(p / "src", good_images(2)), ["--scorers", "nope"], "unknown scorer 'nope'"),
        (lambda p: write_files(p / "src", good_images(2)), ["--theta", "sam_masks"], "--theta takes COL=N"),
    ],
)
def test_clear_one_line_errors(tmp_path, capsys, make, extra, message):
    make(tmp_path)
    code, err = run(["curate", tmp_path / "src", "--out", tmp_path / "ds", "--name", "mine", *extra], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("diverseg curate: error: ") and message in lines[0]
    assert not (tmp_path / "ds" / "README.md").exists()
    assert not list(tmp_path.rglob("selection.json"))


def test_select_on_missing_scores_and_publish_on_missing_selection(tmp_path, capsys):
    code, err = run(["select", tmp_path / "none", "--out", tmp_path / "sel"], capsys)
    assert code == 2 and "not a score table" in err
    code, err = run(["publish", tmp_path / "none", "--out", tmp_path / "ds", "--name", "x"], capsys)
    assert code == 2 and "not a complete selection" in err


def test_card_shows_a_quality_gate_that_was_asked_for(tmp_path, capsys):
    mixed_folder(tmp_path / "src", n_good=10)
    argv = ["curate", tmp_path / "src", "--out", tmp_path / "ds", "--name", "mine", "--scorers", "blockiness",
            "--max-blockiness", "1000", "--min-quality", "0.5"]
    code, err = run(argv, capsys)
    assert code == 0, err
    card = (tmp_path / "ds" / "README.md").read_text()
    estimate = next(line for line in card.splitlines() if "Source quality estimate" in line)
    assert "(gate: ≥ 0.5, passed)" in estimate and "gate 0.5: passed" in err

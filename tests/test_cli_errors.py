"""Misuse of the command line fails early, in one line (issue 20 items 14, 15): argparse errors name the
help to read instead of printing the whole usage; outputs, seeds, shard sizes, licences and the Ray extra
are checked before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pipeline_helpers import good_images, one_line, run_cli, write_files
from sr_folder import encode, write_published_folder

from diverseg_hf.cards.licenses import check_license, hub_licenses
from diverseg_hf.errors import ParameterError
from diverseg_hf.score import score
from diverseg_hf.select import select


@pytest.fixture
def src(tmp_path) -> Path:
    write_files(tmp_path / "src", good_images(3))
    return tmp_path / "src"


@pytest.mark.parametrize(("argv", "command", "message"), [
    (["score", "x", "--out", "y", "--workers", "two"], "score", "argument --workers: invalid int value: 'two'"),
    (["curate", "x", "--out", "y", "--name", "n", "--keep", "a"], "curate", "argument --keep: invalid float"),
    (["select", "x"], "select", "the following arguments are required: --out"),
    (["export", "d", "--config", "I", "--out", "o", "--scales", "2,x"], "export", "expected comma-separated"),
    (["sample", "d", "--scenes", "many"], "sample", "argument --scenes: invalid int value"),
    (["build", "Q", "--out", "o"], "build", "argument config: invalid choice: 'Q'"),
])
def test_argparse_errors_are_one_line_naming_the_help(capsys, argv, command, message):
    code, lines = run_cli(argv, capsys)
    one_line(code, lines, command, message)
    assert lines[0].endswith(f"; see `diverseg {command} --help`"), lines
    assert not any(line.startswith("usage:") for line in lines)


def test_a_bad_command_is_one_line_too(capsys):
    code, lines = run_cli(["scoer"], capsys)
    assert code == 2 and len(lines) == 1 and "invalid choice: 'scoer'" in lines[0], lines
    assert lines[0].endswith("; see `diverseg --help`")


def test_out_onto_a_file_in_select_export_calibrate_sample(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    write_files(tmp_path / "ref", good_images(2))
    score(str(tmp_path / "ref"), tmp_path / "scores", progress=False)
    published = write_published_folder(tmp_path / "pub", [("a", encode(good_rgb()), "png")], shards=1)
    for argv, command in ((["select", tmp_path / "scores", "--out", file], "select"),
                          (["export", published, "--config", "I", "--out", file], "export"),
                          (["calibrate", tmp_path / "ref", "--out", file], "calibrate"),
                          (["sample", file], "sample")):
        code, lines = run_cli(argv, capsys)
        one_line(code, lines, command, f"{file} cannot be a folder: {file} is a file")
    assert file.read_text() == "x"


def good_rgb():
    import numpy as np

    return np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_blockiness_output_onto_a_folder_is_refused_before_scoring(src, tmp_path, capsys, monkeypatch):
    import diverseg_hf.cli.blockiness as command

    def never(*_, **__):
        raise AssertionError("scored before the output was checked")

    monkeypatch.setattr(command, "write_blockiness_tsv", never)
    code, lines = run_cli(["blockiness", src, "-o", tmp_path], capsys)
    one_line(code, lines, "blockiness", f"--output {tmp_path} is a folder; give a file name")
    (tmp_path / "file").write_text("x")
    code, lines = run_cli(["blockiness", src, "-o", tmp_path / "file" / "x.tsv"], capsys)
    one_line(code, lines, "blockiness", "is a file")


def test_sample_refuses_a_negative_seed(tmp_path, capsys):
    code, lines = run_cli(["sample", tmp_path / "demo", "--seed", "-1"], capsys)
    one_line(code, lines, "sample", "argument --seed: must be 0 or more, got -1")
    assert not (tmp_path / "demo").exists()


def test_engine_ray_without_ray_makes_no_score_table(src, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    code, lines = run_cli(["score", src, "--out", tmp_path / "scores", "--engine", "ray"], capsys)
    one_line(code, lines, "score", 'pip install "diverseg-hf[ray]"')
    code, lines = run_cli(["curate", src, "--out", tmp_path / "ds", "--name", "mine", "--engine", "ray"], capsys)
    one_line(code, lines, "curate", 'pip install "diverseg-hf[ray]"')
    assert not (tmp_path / "scores").exists() and not (tmp_path / "ds").exists()


@pytest.fixture
def selection(src, tmp_path) -> Path:
    score(str(src), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel")
    return tmp_path / "sel"


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard-size", "0"], "--shard-size must be more than 0 bytes, got '0'"),
    (["--shard-size", "0KB"], "--shard-size must be more than 0 bytes"),
    (["--license", "not a licence"], "--license 'not a licence' is not a licence id of the Hub"),
    (["--license", "other:Not Ok"], "the name after other: must be"),
])
def test_publish_and_curate_refuse_shard_size_0_and_unknown_licences(src, selection, tmp_path, capsys, extra,
                                                                     message):
    code, lines = run_cli(["publish", selection, "--out", tmp_path / "ds", "--name", "mine", *extra], capsys)
    one_line(code, lines, "publish", message)
    code, lines = run_cli(["curate", src, "--out", tmp_path / "ds", "--name", "mine", *extra], capsys)
    one_line(code, lines, "curate", message)
    assert not (tmp_path / "ds").exists()


def test_hub_licence_ids_and_other_with_a_name(selection, tmp_path, capsys):
    assert {"apache-2.0", "mit", "cc-by-4.0", "cc-by-nc-4.0", "other"} <= hub_licenses()
    for ok in ("mit", "cc-by-nc-sa-4.0", "other", "other:my-terms"):
        check_license(ok)
    with pytest.raises(ParameterError):
        check_license("MIT License")
    code, _ = run_cli(["publish", selection, "--out", tmp_path / "ds", "--name", "mine", "--license", "other:my-terms"],
                  capsys)
    assert code == 0
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "license: other\n" in card and "license_name: my-terms\n" in card

"""``diverseg blockiness``: released TSV format, reasons on stderr, exit codes."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from image_zoo import DAMAGED, INVALID, MORE_VALID, VALID, write_zoo

from diverseg_hf import blockiness
from diverseg_hf.cli import main


def parse_tsv(text: str) -> dict[str, float]:
    rows = [line.split("\t") for line in text.splitlines() if line]
    assert all(len(r) == 2 for r in rows)
    return {path: float(value) for path, value in rows}


def test_folder_to_stdout_with_reasons_and_summary(tmp_path, capsys):
    paths = write_zoo(tmp_path / "zoo")
    assert main(["blockiness", str(tmp_path / "zoo")]) == 0
    out, err = capsys.readouterr()
    values = parse_tsv(out)
    assert set(values) == {str(p) for p in paths.values()}  # every file has a line, none lost
    for case, path in paths.items():
        value = values[str(path)]
        if case in INVALID or case in ("tiny_1px", "flat_png"):
            assert math.isnan(value)
            assert f"{path}: " in err
        else:
            assert value == blockiness(path)
    n_undefined, n_errors = 2, len(INVALID)
    assert f"{len(VALID) - n_undefined} scored, {n_undefined} undefined, {n_errors} errors" in err


def test_output_file_and_workers(tmp_path, capsys):
    write_zoo(tmp_path / "zoo")
    out = tmp_path / "scores.tsv"
    assert main(["blockiness", str(tmp_path / "zoo"), "-o", str(out), "--workers", "2"]) == 0
    assert capsys.readouterr().out == ""
    main(["blockiness", str(tmp_path / "zoo")])
    serial = capsys.readouterr().out
    assert out.read_text().replace("nan", "N") == serial.replace("nan", "N")
    assert not (tmp_path / "scores.tsv.partial").exists()


def test_missing_path_is_misuse(tmp_path, capsys):
    assert main(["blockiness", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_nothing_readable_exits_nonzero(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("not a jpeg")
    assert main(["blockiness", str(tmp_path)]) == 1
    assert "0 scored, 0 undefined, 2 errors" in capsys.readouterr().err


def test_empty_folder_is_misuse(tmp_path, capsys):
    assert main(["blockiness", str(tmp_path)]) == 2
    assert "no image files" in capsys.readouterr().err


@pytest.mark.slow
def test_console_entry_point_runs(tmp_path):
    paths = write_zoo(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "diverseg_hf", "blockiness", str(paths["rgb_png"])],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("\t")[1]) == pytest.approx(blockiness(paths["rgb_png"]), rel=1e-15)


def test_workers_below_one_is_misuse_named_by_its_flag(tmp_path, capsys):
    assert main(["blockiness", str(tmp_path / "missing"), "--workers", "0"]) == 2  # checked before any work
    assert capsys.readouterr().err.strip() == "diverseg blockiness: error: --workers must be at least 1, got 0"


def test_cli_output_is_the_library_tsv(tmp_path, capsys):
    from diverseg_hf.quality.blockiness import write_blockiness_tsv

    write_zoo(tmp_path / "zoo")
    main(["blockiness", str(tmp_path / "zoo"), "-o", str(tmp_path / "cli.tsv")])
    summary = write_blockiness_tsv([tmp_path / "zoo"], tmp_path / "lib.tsv")
    assert (tmp_path / "cli.tsv").read_bytes() == (tmp_path / "lib.tsv").read_bytes()
    assert f"blockiness: {summary}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.tsv", "lib.tsv", "zoo"]  # no temporary left


def test_extended_zoo_damage_is_nan_with_reason_and_nothing_lost(tmp_path, capsys):
    paths = write_zoo(tmp_path / "zoo", extended=True)
    assert main(["blockiness", str(tmp_path / "zoo"), "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    values = parse_tsv(out)
    assert set(values) == {str(p) for p in paths.values()}
    reasons = dict(line.split(": ", 1) for line in err.splitlines() if line.startswith(str(tmp_path)))
    for case in DAMAGED:
        assert math.isnan(values[str(paths[case])])
        assert reasons[str(paths[case])].split(":")[0] in ("corrupt", "truncated")
    for case in MORE_VALID:
        assert values[str(paths[case])] == blockiness(paths[case])
    n_errors = len(INVALID) + len(DAMAGED)
    assert f"{len(VALID) + len(MORE_VALID) - 2} scored, 2 undefined, {n_errors} errors" in err

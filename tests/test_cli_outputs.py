"""No command writes into its own input, and export removes only its own temporary files (issue 20 items
7, 8): an output folder that is, lies inside or holds an input is refused before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pipeline_helpers import run_cli
from sr_folder import phase_inputs

from diverseg_hf.errors import ParameterError
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.sr.export import export_basicsr


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def made(tmp_path) -> dict[str, Path]:
    """A source folder, its score table and selection, a published folder."""
    return phase_inputs(tmp_path, published=2)


def test_publish_into_its_source_folder_is_refused(made, capsys):
    before = listing(made["src"])
    for out in (made["src"], made["src"] / "ds"):
        code, lines = run_cli(["publish", made["sel"], "--out", out, "--name", "mine"], capsys)
        assert code == 2 and len(lines) == 1, lines
        assert f"--out {out} lies inside the source folder {made['src'].resolve()}; choose a folder outside it" \
            in lines[0], lines
    assert listing(made["src"]) == before  # no card figure to be scored as a training image next time
    with pytest.raises(ParameterError, match="lies inside the source folder"):
        publish(made["sel"], made["src"], "mine")


@pytest.mark.parametrize(("command", "message"), [
    (lambda m: ["score", m["src"], "--out", m["src"] / "scores"], "lies inside the source folder"),
    (lambda m: ["score", m["src"], "--out", m["src"].parent], "holds the source folder"),
    (lambda m: ["curate", m["src"], "--out", m["src"].parent, "--name", "mine"], "holds the source folder"),
    (lambda m: ["select", m["scores"], "--out", m["scores"]], "lies inside the score table folder"),
    (lambda m: ["select", m["scores"], "--out", m["scores"] / "sel"], "lies inside the score table folder"),
    (lambda m: ["export", m["pub"], "--config", "I", "--out", m["pub"] / "x"], "lies inside the dataset folder"),
    (lambda m: ["calibrate", m["src"], "--out", m["src"] / "basis"], "lies inside the reference folder"),
    (lambda m: ["build", "P", "--out", m["src"] / "ds", "--source", m["src"]], "lies inside the source folder"),
])
def test_every_writing_command_refuses_an_output_inside_or_around_its_input(made, capsys, command, message):
    before = listing(made["src"].parent)
    argv = command(made)
    code, lines = run_cli(argv, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"diverseg {argv[0]}: error: --out "), lines
    assert message in lines[0], lines
    assert listing(made["src"].parent) == before


def test_export_removes_only_its_own_temporary_files(made, tmp_path):
    out = tmp_path / "exp"
    others = [out / ".other.tmp", out / "HR" / ".notes.txt.0123456789ab.tmp", out / "HR" / ".zz.png.tmp",
              out / "LR_bicubic" / "X2" / ".c.png.0123456789ab.tmp", out / "mine" / ".a.png.0123456789ab.tmp"]
    own = [out / ".export.json.0123456789ab.tmp", out / "HR" / ".a.png.0123456789ab.tmp",
           out / "LR_bicubic" / "X2" / ".bx2.png.fedcba987654.tmp"]
    for path in others + own:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    report = export_basicsr(made["pub"], "I", out, (2,))
    assert report.images == 2
    assert all(p.read_bytes() == b"half" for p in others)
    assert not any(p.exists() for p in own)
    assert sorted(os.listdir(out / "HR")) == [".notes.txt.0123456789ab.tmp", ".zz.png.tmp", "a.png", "b.png"]

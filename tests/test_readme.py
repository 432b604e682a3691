"""The README's front door: its marked commands, its links, and no reference to the data beside the checkout."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from diverseg_hf.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def marked_command(marker: str) -> str:
    """The line two lines after ``<!-- marker -->`` (the line after the opening fence), as .ci/run reads it."""
    lines = README.splitlines()
    at = lines.index(f"<!-- {marker} -->")
    assert lines[at + 1] == "```bash" and lines[at + 3] == "```"
    return lines[at + 2]


def steps(marker: str) -> list[list[str]]:
    """The marked command's ``&&``-separated steps, each split as the shell splits words."""
    return [shlex.split(part) for part in marked_command(marker).split("&&")]


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installs(marker: str) -> list[str]:
    """Everything the marked command hands to ``pip install`` (options left out)."""
    return [word for argv in steps(marker) if argv[:2] == ["pip", "install"] for word in argv[2:]
            if not word.startswith("-")]


def in_fresh_venv(marker: str) -> None:
    """The command creates a virtual environment, activates it, and only then installs."""
    argv = steps(marker)
    assert argv[0][:3] == ["python3", "-m", "venv"]
    venv = argv[0][3]
    assert argv[1] in ([".", f"{venv}/bin/activate"], ["source", f"{venv}/bin/activate"])
    assert all(step[:2] != ["pip", "install"] for step in argv[:2])


def test_main_command_installs_only_the_base_package():
    in_fresh_venv("main-command")
    assert installs("main-command") == ["."]  # the package itself: no extras, so no torch
    assert ["diverseg", "sample", "demo"] in [argv[:3] for argv in steps("main-command")]


def test_test_command_installs_a_torch_every_extra_accepts_and_the_dev_extra():
    from packaging.requirements import Requirement

    in_fresh_venv("test-command")
    local = [word for word in installs("test-command") if word.startswith(".")]
    assert local == [".[dev]"]  # the package itself with the dev extra
    (torch,) = [r for word in installs("test-command") if word not in local if (r := Requirement(word)).name == "torch"]
    (pin,) = [spec.version for spec in torch.specifier if spec.operator == "=="]
    extras = pyproject()["project"]["optional-dependencies"]
    declared = [Requirement(req) for reqs in extras.values() for req in reqs]
    ranges = [r.specifier for r in declared if r.name == "torch"]
    assert ranges and all(spec.contains(pin) for spec in ranges), f"torch {pin} is outside an extra's range {ranges}"
    assert "pytest" in {Requirement(req).name for req in extras["dev"]}
    assert steps("test-command")[-1][0] == "pytest"


def test_main_command_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for part in marked_command("main-command").split("&&"):
        argv = shlex.split(part)
        if argv[0] == "diverseg":
            assert main(argv[1:]) == 0, capsys.readouterr().err
    assert {p.name for p in (tmp_path / "mysubset").iterdir()} >= {"README.md", "data", "wds", "assets"}


def test_relative_links_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name} links to missing {target}"


def test_nothing_outside_tests_refers_to_the_shared_data():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    offenders = []
    for name in tracked.splitlines():
        path = ROOT / name
        if name.startswith("tests/") or not path.is_file() or path.suffix in {".parquet", ".png", ".pt", ".bin"}:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if "../shared" in text or "shared/data" in text:
            offenders.append(name)
    assert offenders == []

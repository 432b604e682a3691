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


def test_main_command_installs_only_the_base_package():
    command = marked_command("main-command")
    installs = [part.strip() for part in command.split("&&") if "pip install" in part]
    assert installs == ["pip install -q -e ."]  # no extras, no torch
    assert "diverseg sample demo" in command and "diverseg curate demo" in command


def test_test_command_is_unchanged():
    assert marked_command("test-command") == (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && '
        'pip install -q -e ".[dev]" && pytest -q'
    )


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

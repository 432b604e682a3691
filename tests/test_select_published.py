"""Re-threshold a published subset without GPUs: ``diverseg select PUBLISHED --config NAME`` + ``diverseg publish``,
for a local dataset folder and a repo on the local test Hub, with a stricter rule (the subset's own images) and
a looser one (the recorded source). The result equals selecting and publishing from the original score table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest_hub import WRITE_TOKEN, client_env
from pipeline_helpers import good_images, write_files

from diverseg_hf.cli import main
from diverseg_hf.hub.push import push
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.rethreshold import select_published
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.storage import DatasetDir, ScoreTable, load_selection

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/published"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A folder source scored and published as config ``mine`` at the median blockiness; the two other rules."""
    root = tmp_path_factory.mktemp("rethreshold")
    write_files(root / "src", good_images(12))
    score(str(root / "src"), root / "scores", unit_size=5, progress=False)
    values = sorted(v for v in ScoreTable.open(root / "scores").read().column("blockiness").to_pylist()
                    if v is not None and np.isfinite(v))
    rules = {"published": values[6], "stricter": values[3], "looser": values[9]}
    select(root / "scores", root / "sel", max_blockiness=rules["published"])
    publish(root / "sel", root / "ds", "mine", progress=False)
    for kind in ("stricter", "looser"):  # what selecting from the original table gives
        select(root / "scores", root / f"sel_{kind}", max_blockiness=rules[kind])
        publish(root / f"sel_{kind}", root / f"expected_{kind}", "again", progress=False)
    return {"root": root, "rules": rules}


def rows(folder: Path, name: str = "again") -> list[dict]:
    return [r for p in DatasetDir(folder).parquet_shards(name) for r in pq.read_table(p).to_pylist()]


def cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_stricter_rule_publishes_from_the_subsets_own_images(made, tmp_path) -> None:
    root, rule = made["root"], made["rules"]["stricter"]
    assert cli("select", root / "ds", "--config", "mine", "--out", tmp_path / "sel", "--max-blockiness", rule) == 0
    _, info = load_selection(tmp_path / "sel")
    assert info["source"]["kind"] == "published" and info["published"]["images_from"] == "config"
    hidden = root.parent / (root.name + "_away")
    shutil.move(root / "src", hidden)  # the source is not read
    try:
        assert cli("publish", tmp_path / "sel", "--out", tmp_path / "out", "--name", "again") == 0
    finally:
        shutil.move(hidden, root / "src")
    expected = rows(root / "expected_stricter")
    assert 0 < len(expected) < len(rows(root / "ds", "mine")) and rows(tmp_path / "out") == expected


def test_looser_rule_reads_the_recorded_source(made, tmp_path, monkeypatch, capsys) -> None:
    root, rule = made["root"], made["rules"]["looser"]
    select_published(root / "ds", tmp_path / "sel", config="mine", max_blockiness=rule)  # the Python face
    _, info = load_selection(tmp_path / "sel")
    assert info["source"]["kind"] == "folder" and info["published"]["images_from"] == "source"
    monkeypatch.chdir(tmp_path)  # the recorded source (`src`, by its folder's name) is not reachable from here
    capsys.readouterr()
    assert cli("publish", tmp_path / "sel", "--out", tmp_path / "out", "--name", "again") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open the selection's source" in err[0] and "--source" in err[0]
    monkeypatch.chdir(root)  # from beside it, it is
    assert cli("publish", tmp_path / "sel", "--out", tmp_path / "out", "--name", "again") == 0
    expected = rows(root / "expected_looser")
    assert len(expected) > len(rows(root / "ds", "mine")) and rows(tmp_path / "out") == expected


def test_a_published_folder_without_config_is_named(made, tmp_path, capsys) -> None:
    assert cli("select", made["root"] / "ds", "--out", tmp_path / "sel", "--max-blockiness", 1) == 2
    assert "is a published dataset, not a score table: pass --config NAME" in capsys.readouterr().err
    assert cli("select", made["root"] / "ds", "--config", "nope", "--out", tmp_path / "sel") == 2
    assert "has no published config 'nope' (configs: mine)" in capsys.readouterr().err


def run_cli(env: dict, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diverseg_hf", *map(str, argv)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", ["stricter", "looser"])
def test_rethreshold_a_repo_on_the_hub(made, hub_env, tmp_path, kind) -> None:
    root, rule = made["root"], made["rules"][kind]
    push(root / "ds", REPO)
    env = client_env(hub_env.url, tmp_path / "hf_home", WRITE_TOKEN)
    proc = run_cli(env, "select", REPO, "--config", "mine", "--out", tmp_path / "sel", "--max-blockiness", rule,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert info["source"]["kind"] == ("published" if kind == "stricter" else "folder")
    assert info["published"]["spec"] == REPO
    source = [] if kind == "stricter" else ["--source", root / "src"]  # the card names the source `src` only
    proc = run_cli(env, "publish", tmp_path / "sel", "--out", tmp_path / "out", "--name", "again", *source,
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "out") == rows(root / f"expected_{kind}")


def test_a_missing_hub_repo_is_one_line(hub_env, tmp_path) -> None:
    env = client_env(hub_env.url, tmp_path / "hf_home", WRITE_TOKEN)
    proc = run_cli(env, "select", "tester/none", "--config", "mine", "--out", tmp_path / "sel", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("diverseg select: error: cannot read datasets/tester/none: ")

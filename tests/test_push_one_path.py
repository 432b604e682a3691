"""One push: :func:`diverseg_hf.hub.push.push` (Python), ``diverseg push`` and ``--push-to-hub`` upload the same
Hub tree (card rendered for the repo id), and a config under ImageNet terms is never pushed public and ungated.

All against the local Hub server (tests/hub_server.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.cards.render import card_text
from diverseg_hf.cli import main
from diverseg_hf.hub.push import push
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/one-push"


@pytest.fixture(scope="module")
def selection(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one_push")
    write_files(root / "src", good_images(6))
    score(str(root / "src"), root / "scores", unit_size=3, progress=False)
    select(root / "scores", root / "sel", max_blockiness=1000)
    return root / "sel"


def published(selection: Path, out: Path, *names: str) -> Path:
    for name in names:
        publish(selection, out, name, formats=["parquet", "webdataset"], progress=False)
    return out


def tree(hub) -> dict[str, bytes]:
    return {p: d for p, d in hub.files(REPO).items() if p != ".gitattributes"}


def forget(hub) -> None:
    """Drop the repo from the server, so that the next push starts from nothing."""
    del hub.repos[("dataset", REPO)]


def test_python_push_and_cli_push_upload_the_same_tree(hub_env, selection, tmp_path, capsys) -> None:
    folder = published(selection, tmp_path / "ds", "mine", "I")
    local_card = (folder / "README.md").read_bytes()
    result = push(folder, REPO, prune=True)
    by_python, gate = tree(hub_env), hub_env.repos[("dataset", REPO)].gated
    assert result.repo_id == REPO and "README.md" in result.uploaded
    assert by_python["README.md"].decode() == card_text(folder, repo=REPO)  # rendered for the repo id
    assert by_python["README.md"] != local_card and (folder / "README.md").read_bytes() == local_card

    forget(hub_env)
    assert main(["push", str(folder), REPO, "--prune"]) == 0, capsys.readouterr().err
    assert tree(hub_env) == by_python and hub_env.repos[("dataset", REPO)].gated == gate == "auto"

    forget(hub_env)
    again = published(selection, tmp_path / "again", "mine")  # the same folder, its last config by the CLI
    assert main(["publish", str(selection), "--out", str(again), "--name", "I", "--format",
                 "parquet,webdataset", "--push-to-hub", REPO]) == 0, capsys.readouterr().err
    assert tree(hub_env) == by_python and hub_env.repos[("dataset", REPO)].gated == "auto"


@pytest.mark.parametrize("how", ["python", "cli"])
def test_imagenet_terms_are_never_pushed_ungated(hub_env, selection, tmp_path, capsys, caplog, how) -> None:
    folder = published(selection, tmp_path / "ds", "IP")
    if how == "python":
        push(folder, REPO)
    else:
        assert main(["push", str(folder), REPO]) == 0, capsys.readouterr().err
    assert hub_env.repos[("dataset", REPO)].gated == "auto"
    assert "configs IP are under terms that require gated access" in caplog.text


def test_a_repo_gated_by_hand_keeps_its_setting(hub_env, selection, tmp_path) -> None:
    folder = published(selection, tmp_path / "ds", "I")
    push(folder, REPO, gated="manual")
    assert hub_env.repos[("dataset", REPO)].gated == "manual"
    published(selection, folder, "mine")  # a change to push, no gating asked for
    assert push(folder, REPO).commits
    assert hub_env.repos[("dataset", REPO)].gated == "manual"


def test_a_folder_under_open_terms_stays_ungated(hub_env, selection, tmp_path) -> None:
    push(published(selection, tmp_path / "ds", "P", "mine"), REPO)
    assert hub_env.repos[("dataset", REPO)].gated is False
    assert not hub_env.requests("PUT", "/settings")

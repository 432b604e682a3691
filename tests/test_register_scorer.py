"""A user's own scorer (``scorer_helpers``, outside the package) everywhere a built-in one works.

``register_scorer`` (or an entry point) makes ``--scorers NAME`` work in the CLI, in worker processes
(forked and spawned: the spec travels as ``"module:Class"``), in ``scorer_map``, and records the
scorer in the score table like the built-ins.
"""

from __future__ import annotations

import os

import pytest
from pipeline_helpers import good_images, write_files
from scorer_helpers import MeanLevel, loads

import diverseg_hf
from diverseg_hf import scoring
from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError
from diverseg_hf.scoring.specs import scorer_specs
from diverseg_hf.storage.score_table import ScoreTable

BUILTIN_AND_BEFORE = set(scoring.scorer_names())


@pytest.fixture(autouse=True)
def registry(monkeypatch, tmp_path):
    """A registry of this test's own (the process-wide one is restored), and the load log of the helper scorers."""
    monkeypatch.setattr(scoring, "_ENTRY_POINTS_READ", [])  # entry points are read anew in each test
    (tmp_path / "loads").mkdir()
    monkeypatch.setenv("DIVERSEG_TEST_LOADS", str(tmp_path / "loads"))
    yield
    for name in set(scoring.scorer_names()) - BUILTIN_AND_BEFORE:
        scoring.unregister_scorer(name)


@pytest.fixture
def src(tmp_path):
    write_files(tmp_path / "src", good_images(6))
    return tmp_path / "src"


def _table(out) -> tuple[dict, dict]:
    table = ScoreTable.open(out)
    return table.header, {r["key"]: r for r in table.read().to_pylist()}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_registered_scorer_scores_through_the_cli(src, tmp_path, workers):
    diverseg_hf.register_scorer("mean_level", "scorer_helpers:MeanLevel")
    out = tmp_path / f"scores{workers}"
    assert main(["score", str(src), "--out", str(out), "--scorers", "blockiness,mean_level",
                 "--workers", str(workers)]) == 0
    header, rows = _table(out)
    recorded = {s["name"]: s for s in header["scorers"]}
    assert recorded["mean_level"]["columns"] == {"mean_level": "float64"}
    assert recorded["mean_level"]["settings"] == {"offset": 0.0}
    assert "mean_level" in header["columns"] and len(rows) == 6
    assert all(r["mean_level"] > 0 and r["error"] is None for r in rows.values())
    if workers == 2:  # scored in the worker processes
        assert {pid for _, pid, _ in loads(tmp_path / "loads")} - {os.getpid()}


def test_spawned_workers_resolve_it_without_the_registry(src, tmp_path):
    """GPU pools spawn their processes: the registration is not there, the spec's "module:Class" is."""
    diverseg_hf.register_scorer("fake_model", "scorer_helpers:FakeModelCounter")
    assert scorer_specs(["fake_model"]) == [("scorer_helpers:FakeModelCounter", {})]
    assert main(["score", str(src), "--out", str(tmp_path / "scores"), "--scorers", "fake_model",
                 "--gpus", "0,1"]) == 0
    header, rows = _table(tmp_path / "scores")
    assert header["scorers"][0]["name"] == "fake_model" and len(rows) == 6
    assert all(r["bright_pixels"] >= 0 for r in rows.values())
    moves = [(pid, device) for kind, pid, device in loads(tmp_path / "loads") if kind == "MovedTo"]
    assert moves and {device for _, device in moves} <= {"cuda:0", "cuda:1"}  # built in the spawned workers
    assert os.getpid() not in {pid for pid, _ in moves}


def test_a_module_class_name_works_from_the_cli_without_registering(src, tmp_path):
    out = tmp_path / "scores"
    assert main(["score", str(src), "--out", str(out), "--scorers", "scorer_helpers:MeanLevel", "--workers", "2"]) == 0
    header, rows = _table(out)
    assert header["scorers"][0]["name"] == "mean_level" and all(r["mean_level"] > 0 for r in rows.values())


def test_a_registered_scorer_in_scorer_map_equals_the_table(src, tmp_path):
    datasets = pytest.importorskip("datasets")
    diverseg_hf.register_scorer("mean_level", MeanLevel)  # the class itself works too
    diverseg_hf.score(str(src), tmp_path / "scores", ["mean_level"], {"mean_level": {"offset": 2.0}}, progress=False)
    _, rows = _table(tmp_path / "scores")
    files = sorted(src.rglob("*.*"))
    ds = datasets.Dataset.from_dict({"image": [{"bytes": p.read_bytes(), "path": None} for p in files]},
                                    features=datasets.Features({"image": datasets.Image(decode=False)}))
    out = ds.map(diverseg_hf.scorer_map("mean_level", offset=2.0), batched=True)
    assert sorted(out["mean_level"]) == sorted(r["mean_level"] for r in rows.values())
    assert out["mean_level_error"] == [""] * len(files)


def test_an_entry_point_is_read_once(tmp_path, monkeypatch):
    dist = tmp_path / "site" / "user_scorers-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-scorers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{scoring.ENTRY_POINT_GROUP}]\nep_mean = scorer_helpers:MeanLevel\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "ep_mean" in scoring.scorer_names()
    assert scoring.get_scorer_class("ep_mean") is MeanLevel
    (dist / "entry_points.txt").write_text(f"[{scoring.ENTRY_POINT_GROUP}]\nother = scorer_helpers:MeanLevel\n")
    assert "other" not in scoring.scorer_names()  # read once per process


def test_bad_registrations_are_one_line_errors():
    with pytest.raises(DiversegError, match="give a name and 'module:Class'"):
        diverseg_hf.register_scorer("x", "no_colon")
    with pytest.raises(DiversegError, match="built-in scorer"):
        diverseg_hf.register_scorer("sam", "scorer_helpers:MeanLevel")
    with pytest.raises(DiversegError, match="not a Scorer subclass"):
        diverseg_hf.register_scorer("x", dict)
    diverseg_hf.register_scorer("ghost", "no_such_module_xyz:Thing")
    with pytest.raises(DiversegError, match="scorer 'ghost': cannot import no_such_module_xyz:Thing"):
        scoring.get_scorer_class("ghost")
    diverseg_hf.register_scorer("notascorer", "pipeline_helpers:good_images")
    with pytest.raises(DiversegError, match="is not a Scorer subclass"):
        scoring.get_scorer_class("notascorer")

"""Engine options (--batch-size, --points-per-batch, --image-batch-size, --compile) reach the scorers
that accept them, on the local engine's every path and from the CLI, and are recorded in the table."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from pipeline_helpers import OptionsProbe, good_images, write_files

from diverseg_hf import processes
from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError, ParameterError
from diverseg_hf.score import score
from diverseg_hf.scoring import scorer_target
from diverseg_hf.scoring.base import ENGINE_OPTIONS, GPU_ENGINE_OPTIONS, Scorer
from diverseg_hf.scoring.specs import scorer_specs
from diverseg_hf.storage import ScoreTable

GIVEN = {"batch_size": 3, "points_per_batch": 5, "image_batch_size": 2, "compile": True}


class Plain(Scorer):
    """A CPU scorer with no engine options."""

    name: ClassVar[str] = "plain"


class TakesBatch(Scorer):
    """A CPU scorer whose constructor takes batch_size only."""

    name: ClassVar[str] = "takesbatch"
    engine_options: ClassVar[frozenset[str]] = frozenset({"batch_size"})


@pytest.fixture
def registry(register_scorer):
    for name, target in {"optprobe": "pipeline_helpers:OptionsProbe", "plain": "test_batch_options:Plain",
                         "takesbatch": "test_batch_options:TakesBatch"}.items():
        register_scorer(name, target)


def test_contract_defaults():
    assert Plain.accepted_options() == frozenset()
    assert type("Gpu", (Scorer,), {"uses_gpu": True}).accepted_options() == GPU_ENGINE_OPTIONS
    assert OptionsProbe.accepted_options() == frozenset(ENGINE_OPTIONS)
    assert {"device", "dtype", "batch_size", "points_per_batch", "image_batch_size", "compile"} == set(ENGINE_OPTIONS)


def test_specs_route_each_option_to_the_scorers_that_accept_it(registry):
    common = {**GIVEN, "device": "cuda", "dtype": None}
    specs = dict(scorer_specs(["plain", "takesbatch", "optprobe"], {"takesbatch": {"batch_size": 9}}, common))
    # a scorer registered at run time travels as its "module:Class" (worker processes lack the registry)
    assert specs["test_batch_options:Plain"] == {}
    assert specs["test_batch_options:TakesBatch"] == {"batch_size": 9}  # options given by scorer name win
    assert specs["pipeline_helpers:OptionsProbe"] == {**GIVEN, "device": "cuda"}  # None (not given) is not passed


def test_specs_refuse_a_tuning_option_nobody_takes(registry):
    for option in ("points_per_batch", "image_batch_size", "compile"):
        with pytest.raises(ParameterError, match=f"{option} is taken by none of the scorers \\(plain, takesbatch\\)"):
            scorer_specs(["plain", "takesbatch"], common={option: 4})
    assert scorer_specs(["plain"], common={"batch_size": 4, "device": "cuda", "dtype": "bfloat16"}) == [
        (scorer_target("plain"), {})]
    with pytest.raises(DiversegError, match="unknown engine options \\['bogus'\\]"):
        scorer_specs(["plain"], common={"bogus": 1})


# the local engine's three GPU paths: in this process; the decode pool (spawned processes) feeding this
# process; one process per GPU (forked here, so that they see the test registry; the probe ignores its device)
@pytest.mark.parametrize("paths", [{"workers": 1}, {"workers": 2}, {"gpus": [0, 1]}], ids=["here", "pool", "gpus"])
def test_options_reach_the_scorer_and_are_recorded(tmp_path, registry, paths, monkeypatch):
    if "gpus" in paths:
        monkeypatch.setattr(processes, "start_method", lambda fork=True: "fork")
    write_files(tmp_path / "src", good_images(7))
    score(str(tmp_path / "src"), tmp_path / "scores", ["blockiness", "optprobe"], device="cpu", dtype="bfloat16",
          unit_size=4, progress=False, **paths, **GIVEN)
    rows = ScoreTable.open(tmp_path / "scores").read().to_pylist()
    assert len(rows) == 7
    for row in rows:
        assert (row["got_batch_size"], row["got_points_per_batch"], row["got_image_batch_size"]) == (3, 5, 2)
        assert row["got_compile"] is True and row["got_dtype"] == "bfloat16"
        assert 1 <= row["call_size"] <= 3  # the engine's batches follow batch_size too
    assert max(r["call_size"] for r in rows) == 3
    header = json.loads((tmp_path / "scores" / "scores.json").read_text())["header"]
    blockiness, probe = header["scorers"]
    assert blockiness["options"] == {}
    assert probe["options"] == {**GIVEN, "device": "cpu", "dtype": "bfloat16"}
    assert probe["settings"] == {**GIVEN, "dtype": "bfloat16"}


def test_resume_may_change_batch_options_but_not_the_values(tmp_path, registry):
    """After an out-of-memory kill a smaller --batch-size resumes the table; a dtype change is refused."""
    write_files(tmp_path / "src", good_images(3))
    score(str(tmp_path / "src"), tmp_path / "scores", ["optprobe"], batch_size=2, device="cpu", progress=False)
    score(str(tmp_path / "src"), tmp_path / "scores", ["optprobe"], batch_size=4, points_per_batch=3,
          device="cpu", progress=False)
    assert ScoreTable.open(tmp_path / "scores").header["scorers"][0]["options"]["batch_size"] == 4  # the latest
    with pytest.raises(DiversegError, match="different scorers"):
        score(str(tmp_path / "src"), tmp_path / "scores", ["optprobe"], dtype="bfloat16", device="cpu",
              progress=False)


def test_bad_batch_options_name_their_parameter(tmp_path, registry):
    write_files(tmp_path / "src", good_images(2))
    for option in ("batch_size", "points_per_batch", "image_batch_size"):
        with pytest.raises(ParameterError, match=f"{option} must be at least 1, got 0"):
            score(str(tmp_path / "src"), tmp_path / "scores", ["optprobe"], progress=False, **{option: 0})


def test_cli_flags_reach_the_scorer(tmp_path, registry, capsys):
    write_files(tmp_path / "src", good_images(3))
    flags = ["--batch-size", "3", "--points-per-batch", "5", "--image-batch-size", "2", "--compile"]
    assert main(["score", str(tmp_path / "src"), "--out", str(tmp_path / "scores"), "--scorers", "optprobe",
                 "--device", "cpu", *flags]) == 0
    header = json.loads((tmp_path / "scores" / "scores.json").read_text())["header"]
    assert header["scorers"][0]["options"] == {**GIVEN, "device": "cpu"}
    assert main(["score", str(tmp_path / "src"), "--out", str(tmp_path / "other"), "--scorers", "blockiness",
                 "--points-per-batch", "64"]) == 2
    assert "diverseg score: error: --points-per-batch is taken by none of the scorers (blockiness)" in \
        capsys.readouterr().err


def test_engine_options_reach_the_real_sam_counter_and_are_recorded(tmp_path, monkeypatch):
    """--batch-size / --points-per-batch / --image-batch-size / --compile reach SamMaskCounter itself."""
    torch = pytest.importorskip("torch")
    from sam_helpers import TINY_SAM

    from diverseg_hf.scoring.sam import SamMaskCounter

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(type(module).__name__) or module)
    built: list[SamMaskCounter] = []
    original = SamMaskCounter.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(SamMaskCounter, "__init__", spy)
    write_files(tmp_path / "src", dict(list(good_images(3).items())[:3]))
    score(str(tmp_path / "src"), tmp_path / "scores", ["sam"], {"sam": {"model": str(TINY_SAM), "points_per_side": 4}},
          device="cpu", batch_size=3, points_per_batch=5, image_batch_size=2, compile=True, progress=False)
    assert built and all(c.settings.points_per_batch == 5 and c.image_batch_size == 2 for c in built)
    assert compiled and all(c.compiled for c in built)
    sam = ScoreTable.open(tmp_path / "scores").header["scorers"][0]
    assert sam["settings"]["points_per_batch"] == 5 and sam["settings"]["image_batch_size"] == 2
    assert sam["settings"]["compile"] is True and sam["options"]["batch_size"] == 3

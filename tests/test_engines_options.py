"""One EngineOptions: the Python keyword arguments, score_with_ray, curate's score options and the CLI flags
all become the same object, checked in one place."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from pipeline_helpers import good_images, write_files

from diverseg_hf.cli import main
from diverseg_hf.cli.options import add_engine_options, engine_from_args
from diverseg_hf.curate import curate
from diverseg_hf.engines import EngineOptions, LocalEngine, RayEngine, resolve_engine
from diverseg_hf.errors import ParameterError
from diverseg_hf.storage import DatasetDir, ScoreTable


def parse(argv: list[str]) -> EngineOptions | None:
    parser = argparse.ArgumentParser()
    add_engine_options(parser)
    return engine_from_args(parser.parse_args(argv))


def test_every_cli_engine_flag_sets_its_field():
    ray = parse(["--engine", "ray", "--workers", "3", "--batch-size", "2", "--ray-address", "head:1",
                 "--gpus-per-worker", "1", "--cpus-per-worker", "0.5", "--rows-per-block", "5", "--timeout-s", "9",
                 "--max-retries", "0", "--dtype", "bfloat16", "--points-per-batch", "7", "--image-batch-size", "4",
                 "--compile", "--device", "cuda:1"])
    assert ray == EngineOptions(engine="ray", workers=3, batch_size=2, address="head:1", gpus_per_worker=1,
                                cpus_per_worker=0.5, rows_per_block=5, timeout_s=9, max_retries=0, dtype="bfloat16",
                                points_per_batch=7, image_batch_size=4, compile=True, device="cuda:1")
    assert parse(["--gpus", "0,1", "--workers", "2"]) == EngineOptions(gpus=(0, 1), workers=2)
    assert parse([]) is None  # nothing given: the library's defaults apply
    defaults = EngineOptions()
    missed = [f.name for f in dataclasses.fields(EngineOptions)  # each field has a flag (gpus: above)
              if f.name not in ("engine", "runtime_env", "gpus") and getattr(ray, f.name) == getattr(defaults, f.name)]
    assert missed == []


def test_keyword_arguments_override_the_options_object():
    engine = resolve_engine(EngineOptions(engine="ray", workers=4, rows_per_block=8), batch_size=3, workers=None)
    assert isinstance(engine, RayEngine)
    assert (engine.options.workers, engine.options.batch_size, engine.options.rows_per_block) == (4, 3, 8)
    local = resolve_engine(None, workers=2, gpus=[0, 1], compile=False)
    assert isinstance(local, LocalEngine) and local.options == EngineOptions(workers=2, gpus=(0, 1))
    assert resolve_engine(local) is local


@pytest.mark.parametrize("bad", [{"address": "head:1"}, {"rows_per_block": 8}, {"timeout_s": 5}],
                         ids=["address", "rows_per_block", "timeout"])
def test_ray_options_on_the_local_engine_are_refused(bad):
    with pytest.raises(ParameterError, match="is an option of the ray engine"):
        EngineOptions(**bad)


def test_bad_values_name_their_option():
    for kwargs, message in (({"workers": 0}, "workers must be at least 1"),
                            ({"engine": "spark"}, "engine must be one of local, ray"),
                            ({"engine": "ray", "gpus": [0]}, "with the ray engine use gpus_per_worker"),
                            ({"engine": "ray", "max_retries": -1}, "max_retries must be at least 0")):
        with pytest.raises(ParameterError, match=message):
            EngineOptions(**kwargs)


def test_cli_refuses_a_ray_flag_without_the_ray_engine_before_any_work(tmp_path, capsys):
    write_files(tmp_path / "src", good_images(2))
    assert main(["score", str(tmp_path / "src"), "--out", str(tmp_path / "scores"), "--rows-per-block", "8"]) == 2
    assert "error: --rows-per-block is an option of the ray engine" in capsys.readouterr().err
    assert not (tmp_path / "scores").exists()


def test_curate_passes_the_options_object_through(tmp_path):
    write_files(tmp_path / "src", good_images(4))
    result = curate(str(tmp_path / "src"), tmp_path / "ds", "mine", progress=False,
                    score_options={"scorers": ["blockiness"], "engine": EngineOptions(workers=2, batch_size=2)})
    assert result.scores.rows == 4
    assert ScoreTable.open(DatasetDir(tmp_path / "ds").work_dir("mine") / "scores").complete


def test_ray_engine_without_ray_fails_before_the_table_exists(tmp_path, monkeypatch):
    import sys

    from diverseg_hf.errors import MissingExtraError
    from diverseg_hf.score import score

    write_files(tmp_path / "src", good_images(2))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were absent
    with pytest.raises(MissingExtraError, match=r"diverseg-hf\[ray\]"):
        score(str(tmp_path / "src"), tmp_path / "scores", engine="ray", progress=False)
    assert not (tmp_path / "scores").exists()

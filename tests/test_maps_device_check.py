"""A CUDA device this machine lacks: one line and exit 2 from the CLI, one error from ``scorer_map``."""

from __future__ import annotations

import pytest
from pipeline_helpers import good_images, write_files
from sam_helpers import TINY_SAM

import diverseg_hf
from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError

torch = pytest.importorskip("torch")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize("command", ["score", "curate"])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_one_line(tmp_path, capsys, no_cuda, command, device):
    write_files(tmp_path / "src", good_images(2))
    out = tmp_path / "out"
    extra = ["--name", "I"] if command == "curate" else []
    assert main([command, str(tmp_path / "src"), "--out", str(out), "--scorers", "sam", "--device", device,
                 "--sam-model", str(TINY_SAM), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"device '{device}': CUDA is not available" in err[0], err
    assert not out.exists()


def test_a_gpu_index_past_the_last_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    write_files(tmp_path / "src", good_images(1))
    assert main(["score", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--device", "cuda:2"]) == 2
    assert capsys.readouterr().err.strip().endswith("this machine has 2 CUDA device(s)")


def test_scorer_map_refuses_it_when_made(no_cuda):
    with pytest.raises(DiversegError, match="CUDA is not available"):
        diverseg_hf.scorer_map("sam", device="cuda")
    diverseg_hf.scorer_map("blockiness", device="cuda")  # a CPU scorer takes no device: nothing to check


def test_the_python_score_refuses_it_too_before_any_work(tmp_path, no_cuda):
    write_files(tmp_path / "src", good_images(1))
    with pytest.raises(DiversegError, match="CUDA is not available"):
        diverseg_hf.score(str(tmp_path / "src"), tmp_path / "out", scorers=["sam"], device="cuda",
                          scorer_options={"sam": {"model": str(TINY_SAM)}}, progress=False)
    assert not (tmp_path / "out").exists()

"""CPU smoke run of examples/train_sr.py on a tiny generated published folder (a few steps)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from image_zoo import textured  # noqa: E402
from PIL import Image  # noqa: E402
from sr_folder import encode, write_published_folder  # noqa: E402

from diverseg_hf.sr import imresize  # noqa: E402
from diverseg_hf.sr.metrics import psnr  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_sr.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_sr_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr_example")
    records = [(f"k{i}", encode(textured(40 + i, 44, seed=i)), "png") for i in range(6)]
    data = write_published_folder(root / "data", records, shards=2)
    eval_dir = root / "eval"
    eval_dir.mkdir()
    for i in range(2):
        Image.fromarray(textured(38, 41, seed=50 + i)).save(eval_dir / f"e{i}.png")
    return data, eval_dir


def test_train_example_smoke(folders, capsys):
    data, eval_dir = folders
    example = load_example()
    args = ["--data", str(data), "--config", "I", "--eval-dir", str(eval_dir), "--steps", "4",
            "--batch-size", "4", "--patch-size", "32", "--workers", "1", "--device", "cpu", "--quiet"]
    torch.set_num_threads(1)
    result = example.main(args)
    assert result["steps"] == 4 and math.isfinite(result["loss"])
    assert result["skipped"] == {"too_small": 0, "bad": 0}
    for name in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        assert math.isfinite(result[name])
    # the bicubic baseline is what the SR convention defines: modcrop, imresize x1/4 then x4, Y PSNR
    want = []
    for i in range(2):
        hr = np.asarray(Image.open(eval_dir / f"e{i}.png").convert("RGB"))[:36, :40]
        want.append(psnr(imresize(imresize(hr, 0.25), 4.0), hr, 4))
    assert result["bicubic_psnr"] == pytest.approx(np.mean(want))
    out = capsys.readouterr().out
    assert "bicubic" in out and "TinySR" in out


def test_train_example_resumes(folders, tmp_path):
    data, _ = folders
    example = load_example()
    base = ["--data", str(data), "--config", "I", "--batch-size", "2", "--patch-size", "16",
            "--workers", "0", "--device", "cpu", "--quiet", "--format", "webdataset"]
    first = example.main([*base, "--steps", "2", "--save", str(tmp_path / "run.pt")])
    assert first["steps"] == 2
    saved = torch.load(tmp_path / "run.pt")
    assert saved["pairs"]["workers"]["0"]["cursor"] == 4  # 2 steps x 2 pairs consumed
    second = example.main([*base, "--steps", "5", "--resume", str(tmp_path / "run.pt")])
    assert second["steps"] == 5


def test_train_example_on_an_export_folder(folders, tmp_path, capsys):
    from diverseg_hf.sr.export import export_basicsr

    data, eval_dir = folders
    export_basicsr(data, "I", tmp_path / "export", (4,), subimages=(24, 12))
    example = load_example()
    result = example.main(["--data", str(tmp_path / "export"), "--format", "basicsr", "--lr-from", "image",
                           "--eval-dir", str(eval_dir), "--steps", "3", "--batch-size", "2", "--patch-size", "16",
                           "--workers", "0", "--device", "cpu", "--quiet"])
    assert result["steps"] == 3 and math.isfinite(result["psnr"])
    assert "bicubic  " in capsys.readouterr().out


def test_one_patch_size_default():
    import inspect

    from diverseg_hf.sr import SRPairs

    example = load_example()
    default = inspect.signature(SRPairs).parameters["patch_size"].default
    assert example.parse_args(["--data", "x"]).patch_size == default == 192
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    assert f"patch_size={default}" in readme

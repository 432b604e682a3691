"""The built-in sample corpus: deterministic, pristine PNGs in the pristine blockiness range, JPEG copies far
above it, and the README's main job on it keeps exactly the PNGs."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from diverseg_hf import DiversegError, blockiness
from diverseg_hf.cli import main
from diverseg_hf.quality.sample import render_scene, sample_names, write_sample


def test_same_arguments_same_bytes_other_seed_other_images(tmp_path):
    a = write_sample(tmp_path / "a", scenes=2, compressed=1, qualities=(75,), width=96, height=64)
    b = write_sample(tmp_path / "b", scenes=2, compressed=1, qualities=(75,), width=96, height=64)
    c = write_sample(tmp_path / "c", scenes=2, compressed=1, qualities=(75,), width=96, height=64, seed=1)
    assert [p.name for p in a] == sample_names(2, 1, (75,)) == [p.name for p in c]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(a, c))


def test_scenes_are_textured_and_object_rich():
    pixels = np.asarray(render_scene(3))
    assert pixels.shape == (384, 512, 3) and pixels.dtype == np.uint8
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10_000  # noise and many coloured shapes
    assert pixels.std() > 30


def test_pristine_range_and_compressed_copies_far_above(tmp_path):
    files = write_sample(tmp_path / "s", scenes=3, compressed=3)
    values = {p.name: blockiness(p) for p in files}
    pristine = [v for name, v in values.items() if name.endswith(".png")]
    assert all(0.5 < v < 3.5 for v in pristine), values
    by_quality = {q: [v for n, v in values.items() if n.endswith(f"_q{q}.jpg")] for q in (95, 75, 50)}
    assert min(by_quality[95]) > 10 and min(by_quality[75]) > max(by_quality[95]), values
    assert min(by_quality[50]) > max(by_quality[75]), values


def test_rewrites_its_own_files_but_refuses_foreign_ones(tmp_path):
    out = tmp_path / "s"
    first = write_sample(out, scenes=1, compressed=0, width=32, height=32)
    assert write_sample(out, scenes=1, compressed=0, width=32, height=32) == first
    (out / "mine.jpg").write_bytes(b"x")
    with pytest.raises(DiversegError, match="already holds other files"):
        write_sample(out, scenes=1, compressed=0, width=32, height=32)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DiversegError, match="is not a folder"):
        write_sample(tmp_path / "file")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scenes": 0}, "scenes >= 1"), ({"compressed": 13}, "compressed <= scenes"),
     ({"qualities": (0,)}, "1..100"), ({"qualities": (75, 75)}, "distinct")],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(DiversegError, match=message):
        write_sample(tmp_path / "s", **kwargs)


def test_main_job_on_the_sample_keeps_the_pristine_images(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "demo")]) == 0
    assert "12 pristine PNGs and 12 JPEG re-encodings" in capsys.readouterr().err
    argv = ["curate", str(tmp_path / "demo"), "--out", str(tmp_path / "mysubset"), "--name", "mine",
            "--scorers", "blockiness", "--max-blockiness", "10", "--format", "parquet,webdataset"]
    assert main(argv) == 0, capsys.readouterr().err
    ds = datasets.load_dataset(str(tmp_path / "mysubset"), "mine", split="train")
    raw = ds.cast_column("image", datasets.Image(decode=False))
    kept = sorted(row["image"]["bytes"] for row in raw)
    assert kept == sorted((tmp_path / "demo" / f"scene_{i:02d}.png").read_bytes() for i in range(12))
    assert list((tmp_path / "mysubset" / "wds" / "mine").glob("*.tar"))


def test_help_shows_start_here(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "start here:" in out and "diverseg sample demo" in out and "diverseg curate demo" in out
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    assert "example (start here):" in capsys.readouterr().out


def test_cli_bad_qualities_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path / "s"), "--qualities", "high"])
    assert "expected comma-separated integers" in capsys.readouterr().err

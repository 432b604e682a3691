"""Calibration: a basis built from generated pristine images, its record, and the quality round trip."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from image_zoo import textured
from PIL import Image

from diverseg_hf import DiversegError, blockiness, calibrate, estimate_quality, load_basis
from diverseg_hf.cli import main
from diverseg_hf.quality.estimate import target_values

QUALITIES = (100, 95, 75, 50)
SIZES = [(128, 128)] * 20 + [(96, 160), (136, 120), (200, 72), (128, 256)]


def write_corpus(folder, seeds, sizes, fmt="PNG", quality=None):
    folder.mkdir(parents=True)
    for seed, (h, w) in zip(seeds, sizes):
        suffix = "png" if fmt == "PNG" else "jpg"
        kw = {"quality": quality} if quality else {}
        Image.fromarray(textured(h, w, seed=seed)).save(folder / f"img{seed:03d}.{suffix}", format=fmt, **kw)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    ref = write_corpus(root / "pristine", range(len(SIZES)), SIZES)
    (ref / "sub").mkdir()
    (ref / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    Image.fromarray(textured(16, 16, seed=99)).save(ref / "sub" / "tiny.png")  # too small: undefined
    basis = calibrate(ref, root / "basis", qualities=QUALITIES, name="SYN")
    return ref, root / "basis", basis


def test_files_and_record(built):
    _, out, basis = built
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["SYN.txt", "SYN_q95.txt", "SYN_q75.txt", "SYN_q50.txt", "basis.json"]
    )
    record = json.loads((out / "basis.json").read_text())
    assert record["qualities"] == [100, 95, 75, 50] and record["images"] == len(SIZES) + 2
    assert record["n"] == {str(q): len(SIZES) for q in QUALITIES}
    assert record["failures"] == {str(q): {"errors": 1, "undefined": 1} for q in QUALITIES}
    assert any(e.startswith("sub/broken.png (q100): ") for e in record["failure_examples"])
    enc = record["encoder"]
    assert enc["encoder"] == "Pillow" and enc["pillow"] == Image.__version__
    assert (enc["subsampling"], enc["optimize"], enc["progressive"]) == ("4:2:0", False, False)
    assert record["diverseg_hf"]
    first = (out / "SYN_q75.txt").read_text().splitlines()[0].split("\t")
    assert first[0] == "img000.png" and float(first[1]) == basis[75][0]


def test_written_folder_loads_to_the_returned_basis(built):
    _, out, basis = built
    loaded = load_basis(out)
    assert list(loaded) == list(basis) == [100, 95, 75, 50]
    for q in QUALITIES:
        np.testing.assert_array_equal(loaded[q], basis[q])


def test_values_match_an_independent_encode(built):
    ref, _, basis = built
    files = sorted(ref.glob("*.png"))
    for i in (0, 21, 23):  # a square, a tall and a wide image
        assert basis[100][i] == blockiness(files[i])  # q100: the original, not re-encoded
        buf = io.BytesIO()
        with Image.open(files[i]) as im:
            im.convert("RGB").save(buf, "JPEG", quality=75, subsampling=2)
        assert basis[75][i] == blockiness(buf.getvalue())
    assert np.median(basis[100]) < np.median(basis[95]) < np.median(basis[75]) < np.median(basis[50])


def test_round_trip_orders_compressed_corpora(built, tmp_path, capsys):
    _, out, basis = built
    seeds, sizes = range(200, 212), [(128, 128)] * 12
    estimates = {}
    for q in (95, 75):
        folder = write_corpus(tmp_path / f"q{q}", seeds, sizes, fmt="JPEG", quality=q)
        assert main(["quality", str(folder), "--basis", str(out), "--json"]) == 0
        estimates[q] = json.loads(capsys.readouterr().out)["quality"]
        assert estimates[q] == estimate_quality(target_values(folder), basis).quality
    assert estimates[75] < estimates[95]
    assert 0.65 < estimates[75] < 0.85 and estimates[95] > 0.85


def test_workers_give_the_same_values(built, tmp_path):
    ref, _, basis = built
    parallel = calibrate(ref, tmp_path / "b2", qualities=QUALITIES, workers=2, name="SYN")
    for q in QUALITIES:
        np.testing.assert_array_equal(parallel[q], basis[q])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "missing"}, "no such file or folder"),
        ({"reference": "empty"}, "no image files"),
        ({"qualities": (100, 0)}, "qualities must be integers in 1..100"),
        ({"qualities": ()}, "qualities must be"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"name": "set_q95"}, "invalid basis name"),
    ],
    ids=["missing", "empty", "q0", "no-qualities", "workers", "name"],
)
def test_misuse(tmp_path, kwargs, message):
    (tmp_path / "empty").mkdir()
    ok = write_corpus(tmp_path / "ok", [0], [(64, 64)])
    args = {"reference": ok, "out_dir": tmp_path / "out", **kwargs}
    if isinstance(args["reference"], str):
        args["reference"] = tmp_path / args["reference"]
    with pytest.raises(DiversegError, match=message):
        calibrate(**args)


def test_cli_calibrate(tmp_path, capsys):
    ref = write_corpus(tmp_path / "ref", range(3), [(64, 64)] * 3)
    assert main(["calibrate", str(ref), "--out", str(tmp_path / "b"), "--qualities", "75,100", "--name", "X"]) == 0
    assert "q75: 3 images scored" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["X.txt", "X_q75.txt", "basis.json"]
    assert main(["calibrate", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", str(ref), "--out", str(tmp_path / "c"), "--qualities", "high"])
    assert "comma-separated integers" in capsys.readouterr().err


def test_cli_help_has_example(capsys):
    with pytest.raises(SystemExit):
        main(["calibrate", "--help"])
    assert "example" in capsys.readouterr().out

"""Dataset quality estimate: the released numbers, filtering, generalised bases, misuse, CLI and plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import kl_div
from scipy.stats import gaussian_kde
from shared_data import DF2K_BASIS

from diverseg_hf import DiversegError, QualityEstimate, estimate_quality, load_basis
from diverseg_hf.cli import main
from diverseg_hf.quality.basis import read_scores_tsv
from diverseg_hf.quality.estimate import Density, weighted_quality
from diverseg_hf.quality.plots import _count_edges, _weights, plot_blockiness, plot_counts, plot_quality

needs_df2k = pytest.mark.skipif(
    not (DF2K_BASIS / "EXPECTED_QUALITY.json").is_file(), reason=f"released DF2K basis not found at {DF2K_BASIS}"
)


@pytest.fixture(scope="module")
def df2k():
    return load_basis(DF2K_BASIS)


def synthetic_basis(seed: int = 0, n: int = 300) -> dict[int, np.ndarray]:
    """Blockiness-like sets: pristine near 2, q95 near 8, q75 near 60, q50 near 180."""
    rng = np.random.default_rng(seed)
    return {
        100: rng.gamma(3.0, 0.7, n),
        95: rng.gamma(3.0, 2.5, n),
        75: rng.normal(60.0, 15.0, n),
        50: rng.normal(180.0, 30.0, n),
    }


def write_tsv(path: Path, values) -> Path:
    path.write_text("".join(f"img{i}.png\t{float(v)!r}\n" for i, v in enumerate(values)))
    return path


@needs_df2k
@pytest.mark.parametrize("case", ["df2k_q95", "df2k_q100", "df2k_q50"])
def test_released_estimates_reproduced(df2k, case):
    expected = json.loads((DF2K_BASIS / "EXPECTED_QUALITY.json").read_text())[case]
    est = estimate_quality(read_scores_tsv(DF2K_BASIS / expected["target"]), df2k)
    assert abs(est.quality - expected["quality"]) <= 1e-6
    assert sorted(est.kl) == [50, 75, 85, 95, 100]
    for name, kl in expected["kl_by_basis"].items():
        assert est.kl[int(name[1:])] == pytest.approx(kl, rel=1e-9, abs=1e-9)


def released_kl(target: np.ndarray, basis_values: np.ndarray) -> float:
    """The released steps written out literally, on Python lists as the released script holds them."""
    target = [x for x in target.tolist() if x < 300]
    grid = np.linspace(min(np.min(target), np.min(basis_values)), max(np.max(target), np.max(basis_values)), 3450)
    p = gaussian_kde(target)(grid) + 1e-10
    q = gaussian_kde(basis_values)(grid) + 1e-10
    return float(np.sum(kl_div(p, q)))


def test_matches_literal_released_steps_on_any_quality_set():
    rng = np.random.default_rng(1)
    basis = {60: rng.normal(120.0, 20.0, 200), 90: rng.gamma(3.0, 3.0, 200), 30: rng.normal(220.0, 30.0, 150)}
    target = np.concatenate([rng.gamma(3.0, 3.0, 150), rng.normal(120.0, 20.0, 50), [350.0, 1e6]])
    est = estimate_quality(target, basis)
    assert list(est.kl) == [90, 60, 30]  # highest quality first, whatever the input order
    kl = {q: released_kl(target, basis[q]) for q in (90, 60, 30)}
    for q in kl:
        assert est.kl[q] == pytest.approx(kl[q], rel=1e-12)
    weights = {q: math.exp(-v) for q, v in kl.items()}
    assert est.quality == pytest.approx(sum(q / 100 * w for q, w in weights.items()) / sum(weights.values()))
    assert 0.6 < est.quality < 0.9
    assert (est.n, est.above_threshold, est.nonfinite) == (200, 2, 0)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(8).gamma(2.0, 3.0, 2000),
        np.concatenate([np.random.default_rng(9).normal(2.0, 0.01, 500), [250.0, 299.0, 1e4]]),  # far outliers
        np.array([1.0, 1.0, 1.0, 2.0]),  # duplicates
        np.array([-5.0, 1e-3]),
    ],
    ids=["gamma", "outliers", "duplicates", "two"],
)
def test_density_matches_scipy_gaussian_kde(values):
    grid = np.linspace(values.min() - 50, values.max() + 50, 3450)
    fast, ref = Density.fit(values)(grid), gaussian_kde(values)(grid)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-300)


def test_weighted_quality_does_not_underflow():
    assert weighted_quality({100: 2000.0, 50: 2000.0}) == pytest.approx(0.75)
    assert weighted_quality({100: 900.0, 50: 1800.0}) == pytest.approx(1.0)
    assert weighted_quality({95: 0.0}) == pytest.approx(0.95)


def test_nonfinite_dropped_first_and_counted():
    basis = synthetic_basis()
    rng = np.random.default_rng(2)
    clean = rng.gamma(3.0, 2.5, 120)
    est = estimate_quality(np.concatenate([clean, [np.nan, np.inf, -np.inf, 500.0, 300.0]]), basis)
    ref = estimate_quality(clean, basis)
    assert (est.n, est.nonfinite, est.above_threshold) == (120, 3, 2)
    assert est.quality == ref.quality and est.kl == ref.kl
    assert 0.9 < est.quality <= 1.0


def test_threshold_parameter():
    basis = synthetic_basis()
    values = np.random.default_rng(3).normal(60.0, 15.0, 200)
    est = estimate_quality(values, basis, threshold=60.0)
    assert est.n == int((values < 60.0).sum()) and est.above_threshold == 200 - est.n


def test_to_dict_schema():
    est = estimate_quality(np.random.default_rng(4).gamma(3.0, 0.7, 100), synthetic_basis())
    d = est.to_dict()
    assert set(d) == {"quality", "kl", "n"}
    assert list(d["kl"]) == ["100", "95", "75", "50"]
    assert isinstance(d["quality"], float) and isinstance(d["n"], int)
    assert all(isinstance(v, float) for v in d["kl"].values())
    assert json.loads(json.dumps(d)) == d
    assert isinstance(est, QualityEstimate)


@pytest.mark.parametrize(
    "values",
    [[], [5.0], [np.nan, np.nan, 4.0], [7.0, 7.0, 7.0], [400.0, 500.0], [np.inf, np.inf]],
    ids=["empty", "one", "one-finite", "zero-variance", "all-above", "all-inf"],
)
def test_unusable_target_is_a_clear_error(values):
    with pytest.raises(DiversegError, match="need at least two distinct values"):
        estimate_quality(values, synthetic_basis())


@pytest.mark.parametrize(
    "basis",
    [{}, {100: np.array([1.0])}, {100: np.array([1.0, np.nan, 2.0])}, {100: np.ones(5)}, {0: np.arange(5.0)}],
    ids=["empty", "one-value", "nan", "flat", "quality-0"],
)
def test_unusable_basis_is_a_clear_error(basis):
    with pytest.raises(DiversegError, match="basis"):
        estimate_quality([1.0, 2.0, 3.0], basis)


def test_plot_writes_png(tmp_path):
    basis = synthetic_basis()
    values = np.random.default_rng(5).gamma(3.0, 2.5, 200)
    est = estimate_quality(values, basis)
    out = plot_quality(np.append(values, [np.nan, 900.0]), basis, tmp_path / "sub" / "q.png", est)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > im.height > 200


def test_plot_without_estimate_and_with_degenerate_sets(tmp_path):
    basis = {100: np.array([1.0, 2.0, 3.0]), 50: np.array([120.0, 120.0])}  # a flat set is drawn as points
    out = plot_quality([5.0], basis, tmp_path / "q.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_mixture_recovers_known_shares():
    basis = synthetic_basis(n=400)
    rng = np.random.default_rng(10)
    target = rng.permutation(np.concatenate([synthetic_basis(seed=11, n=700)[95], synthetic_basis(seed=12, n=300)[50]]))
    est = estimate_quality(target, basis, method="mixture")
    assert est.method == "mixture" and sum(est.weights.values()) == pytest.approx(1.0)
    assert est.weights[95] == pytest.approx(0.7, abs=0.05) and est.weights[50] == pytest.approx(0.3, abs=0.05)
    assert est.quality == pytest.approx(sum(q / 100 * w for q, w in est.weights.items()))
    assert est.quality == pytest.approx(0.95 * 0.7 + 0.5 * 0.3, abs=0.03)
    released = estimate_quality(target, basis)
    assert est.kl == released.kl  # kl is the released diagnostic whatever the method
    d = est.to_dict()
    assert set(d) == {"quality", "kl", "n", "method", "weights"} and list(d["weights"]) == ["100", "95", "75", "50"]


def test_unknown_method():
    with pytest.raises(DiversegError, match="unknown method 'kl'"):
        estimate_quality([1.0, 2.0], synthetic_basis(), method="kl")


# --- CLI -------------------------------------------------------------------------------------------


@pytest.fixture
def basis_dir(tmp_path):
    folder = tmp_path / "basis"
    folder.mkdir()
    for q, values in synthetic_basis().items():
        write_tsv(folder / ("SYN.txt" if q == 100 else f"SYN_q{q}.txt"), values)
    return folder


@needs_df2k
def test_cli_json_on_released_basis(capsys, df2k):
    expected = json.loads((DF2K_BASIS / "EXPECTED_QUALITY.json").read_text())["df2k_q95"]
    rc = main(["quality", str(DF2K_BASIS / "DF2K_q95.txt"), "--basis", str(DF2K_BASIS), "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert set(doc) == {"quality", "kl", "n"}
    assert list(doc["kl"]) == ["100", "95", "85", "75", "50"]
    assert abs(doc["quality"] - expected["quality"]) <= 1e-6
    assert doc["n"] == 3448


def test_cli_human_output_and_plot(tmp_path, capsys, basis_dir):
    target = write_tsv(tmp_path / "t.tsv", np.random.default_rng(6).normal(60.0, 15.0, 150))
    plot = tmp_path / "q.png"
    assert main(["quality", str(target), "--basis", str(basis_dir), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "estimated JPEG quality: " in out and "q75" in out and "q100" in out
    pct = float(out.split("estimated JPEG quality: ")[1].split("%")[0])
    assert 70.0 < pct < 80.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_mixture_method(tmp_path, capsys, basis_dir):
    target = write_tsv(tmp_path / "t.tsv", np.random.default_rng(13).normal(60.0, 15.0, 150))
    assert main(["quality", str(target), "--basis", str(basis_dir), "--method", "mixture", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "mixture" and doc["weights"]["75"] > 0.9
    assert main(["quality", str(target), "--basis", str(basis_dir), "--method", "mixture"]) == 0
    assert "(mixture share)" in capsys.readouterr().out


def test_cli_basis_from_environment(tmp_path, capsys, basis_dir, monkeypatch):
    monkeypatch.setenv("DIVERSEG_BASIS", str(basis_dir))
    target = write_tsv(tmp_path / "t.tsv", np.random.default_rng(7).gamma(3.0, 0.7, 100))
    assert main(["quality", str(target), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"] > 0.95


def test_cli_folder_target_is_scored(tmp_path, capsys, basis_dir):
    from image_zoo import textured

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(textured(96, 96, seed=i)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    assert main(["quality", str(folder), "--basis", str(basis_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4  # the broken file is dropped, not fatal


@pytest.mark.parametrize(
    ("make_target", "message"),
    [
        (lambda d: d / "missing.tsv", "no such target"),
        (lambda d: write_tsv(d / "empty.tsv", []), "0 usable target values"),
        (lambda d: (d / "bad.tsv").write_text("a.png\t1\nb.png 2\n") and d / "bad.tsv", "bad.tsv:2"),
        (lambda d: (d / "nothing").mkdir() or d / "nothing", "no image files"),
        (lambda d: (d / "one.png").write_bytes(b"x") and d / "one.png", "is one image"),
    ],
    ids=["missing", "empty", "bad-line", "empty-folder", "one-image"],
)
def test_cli_target_misuse(tmp_path, capsys, basis_dir, make_target, message):
    target = make_target(tmp_path)
    assert main(["quality", str(target), "--basis", str(basis_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diverseg quality: error: ") and message in err


def test_cli_missing_basis(tmp_path, capsys):
    target = write_tsv(tmp_path / "t.tsv", [1.0, 2.0, 3.0])
    assert main(["quality", str(target), "--basis", str(tmp_path / "nope")]) == 2
    assert "no such basis folder or file" in capsys.readouterr().err


def test_cli_help_has_example(capsys):
    with pytest.raises(SystemExit):
        main(["quality", "--help"])
    assert "example" in capsys.readouterr().out


# --- card histograms: kept and dropped ----------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG"
        return im.size


@pytest.mark.parametrize(
    "values",
    [np.array([0.0, 0.4, 2.0, 9.0, 11.0, 150.0, 900.0, np.nan]), np.array([np.nan, np.nan]), np.zeros(0),
     np.full(5, 3.0)],
    ids=["mixed", "all-undefined", "empty", "flat"],
)
def test_blockiness_histogram_writes_a_png(tmp_path, values):
    out = plot_blockiness(values, values <= 10, tmp_path / "a" / "b.png", ceiling=10)
    width, height = png_size(out)
    assert width > height > 200
    assert plot_blockiness(values, np.ones(values.size, bool), tmp_path / "all.png").is_file()  # no ceiling


@pytest.mark.parametrize("counts", [np.array([0, 3, 7, 120, 480, np.nan]), np.arange(5.0), np.zeros(0)],
                         ids=["wide", "narrow", "empty"])
def test_count_histogram_writes_a_png(tmp_path, counts):
    out = plot_counts(counts, counts >= 3, tmp_path / "c.png", theta=3, label="detected objects per image")
    assert png_size(out)[0] > 200


def test_count_bins_hold_whole_values():
    edges = _count_edges(np.array([0.0, 1000.0]))
    assert len(edges) - 1 <= 80 and np.all(np.diff(edges) == 13) and edges[0] == -0.5 and edges[-1] > 1000


def test_histograms_refuse_a_kept_mask_of_another_length(tmp_path):
    with pytest.raises(DiversegError, match="kept mask"):
        plot_blockiness(np.arange(3.0), [True, False], tmp_path / "b.png")
    with pytest.raises(DiversegError, match="kept mask"):
        plot_counts(np.arange(3.0), np.ones(4, bool), tmp_path / "c.png")


def test_quality_figure_weights_follow_the_estimate(tmp_path):
    basis = synthetic_basis()
    est = estimate_quality(basis[95], basis)
    weights = _weights(est)
    assert sum(weights.values()) == pytest.approx(1.0) and max(weights, key=weights.get) == 95
    assert sum(q / 100 * w for q, w in weights.items()) == pytest.approx(est.quality)
    assert png_size(plot_quality(basis[95], basis, tmp_path / "q.png", est))[0] > 500

"""The fast density evaluation behind estimate_quality equals scipy's gaussian_kde on any spread of values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import gaussian_kde
from shared_data import DF2K_BASIS
from test_quality import released_kl

from diverseg_hf import estimate_quality, load_basis
from diverseg_hf.quality import estimate
from diverseg_hf.quality.basis import read_scores_tsv
from diverseg_hf.quality.estimate import (
    _DROP_FRACTION,
    _UNDERFLOW_Z,
    Density,
    _reach,
    _window_sums,
    weighted_quality,
)


def narrow(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.gamma(20.0, 0.3, n)


def broad(rng: np.random.Generator, n: int) -> np.ndarray:
    """A web-like mix: pristine, q95, q75 and q50-like values plus an even spread up to 300."""
    parts = [rng.gamma(3.0, 0.7, n // 4), rng.gamma(3.0, 2.5, n // 4), rng.normal(60.0, 15.0, n // 4),
             rng.normal(180.0, 30.0, n // 8), rng.uniform(0.0, 300.0, n - 7 * (n // 8))]
    return np.abs(np.concatenate(parts))


def degenerate(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly one repeated value, a tight cluster, and lone far outliers (wide gaps in the grid)."""
    values = np.full(n, 3.0)
    values[: n // 3] = rng.normal(3.0, 1e-3, n // 3)
    values[-3:] = [120.0, 250.0, 299.5]
    return values


def basis_sets(rng: np.random.Generator) -> dict[int, np.ndarray]:
    return {100: rng.gamma(3.0, 0.7, 400), 95: rng.gamma(3.0, 2.5, 400), 75: rng.normal(60.0, 15.0, 300),
            50: np.abs(rng.normal(200.0, 60.0, 300))}


def test_underflow_bound_is_exact():
    assert math.exp(-0.5 * _UNDERFLOW_Z**2) == 0.0
    assert math.exp(-0.5 * 38.6**2) > 0.0  # one hundredth of a bandwidth less still counts


@pytest.mark.parametrize("make", [narrow, broad, degenerate])
@pytest.mark.parametrize("seed", [11, 12])
def test_estimate_equals_the_scipy_reference(make, seed):
    rng = np.random.default_rng(seed)
    target, basis = make(rng, 1500), basis_sets(rng)
    est = estimate_quality(target, basis)
    kl = {q: released_kl(target, basis[q]) for q in basis}
    for q in basis:
        assert est.kl[q] == pytest.approx(kl[q], rel=1e-12, abs=1e-12)
    assert est.quality == pytest.approx(weighted_quality(kl), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("make", [narrow, broad, degenerate])
def test_density_equals_scipy_everywhere_on_the_grid(make):
    values = make(np.random.default_rng(13), 3000)
    grid = np.linspace(-60.0, 400.0, 3450)
    # Below ~1e-200 (190 orders under the estimator's 1e-10 floor) a single exp(-z**2 / 2) with z near the
    # underflow bound carries more than 1e-12 relative rounding in any implementation, scipy's included.
    np.testing.assert_allclose(Density.fit(values)(grid), gaussian_kde(values)(grid), rtol=1e-12, atol=1e-200)


@pytest.mark.parametrize("make", [narrow, broad, degenerate])
def test_terms_beyond_the_reach_are_negligible(make):
    values = make(np.random.default_rng(14), 5000)
    z = Density.fit(values).z_sorted
    grid = np.linspace(z.min() - 50.0, z.max() + 50.0, 500)
    reach = _reach(z, grid)
    assert reach.max() <= _UNDERFLOW_Z
    for g, r in zip(grid, reach):
        terms = np.exp(-0.5 * (z - g) ** 2)
        dropped = terms[np.abs(z - g) > r].sum()
        assert dropped <= _DROP_FRACTION * terms.sum()
    if make is broad:  # spread values: the windows are far narrower than the underflow bound
        assert reach[(grid > z.min()) & (grid < z.max())].max() < 12.0


@pytest.mark.parametrize("make", [narrow, broad, degenerate])
def test_far_cells_summed_by_expansion_equal_the_term_by_term_sum(make, monkeypatch):
    values = make(np.random.default_rng(16), 20000)
    z = Density.fit(values).z_sorted
    grid = np.linspace(z.min() - 5.0, z.max() + 5.0, 3450)
    expanded = []
    far_sums = estimate._far_sums

    def spy(*args):
        out = far_sums(*args)
        expanded.append(np.isfinite(out).mean())
        return out

    monkeypatch.setattr(estimate, "_far_sums", spy)
    fast = estimate._gaussian_sums(z, grid)
    assert expanded[0] > 0.5  # most grid points took the expansions
    every_term = _window_sums(z, grid, np.zeros(grid.size, np.int64), np.full(grid.size, z.size))
    tiny = every_term < 1e-200  # exp(-z**2 / 2) near the underflow bound: inherent rounding, any method
    np.testing.assert_allclose(fast[~tiny], every_term[~tiny], rtol=2e-13, atol=0)


def test_target_density_is_evaluated_once(monkeypatch):
    rng = np.random.default_rng(15)
    calls = []
    original = Density.__call__

    def counting(self, grid):
        calls.append(self.z_sorted.size)
        return original(self, grid)

    monkeypatch.setattr(estimate.Density, "__call__", counting)
    estimate_quality(broad(rng, 2000), basis_sets(rng))
    assert calls.count(2000) == 1 and len(calls) == 5


@pytest.mark.skipif(not (DF2K_BASIS / "EXPECTED_QUALITY.json").is_file(), reason=f"no DF2K basis at {DF2K_BASIS}")
@pytest.mark.parametrize("case", ["df2k_q95", "df2k_q100", "df2k_q50"])
def test_shared_df2k_basis_equals_the_scipy_reference(case):
    basis = load_basis(DF2K_BASIS)
    expected = json.loads((DF2K_BASIS / "EXPECTED_QUALITY.json").read_text())[case]
    target = read_scores_tsv(DF2K_BASIS / expected["target"])
    est = estimate_quality(target, basis)
    kl = {q: released_kl(target, basis[q]) for q in basis}
    for q in basis:
        assert est.kl[q] == pytest.approx(kl[q], rel=1e-12, abs=1e-12)
    assert est.quality == pytest.approx(weighted_quality(kl), rel=1e-12, abs=1e-12)
    assert abs(est.quality - expected["quality"]) <= 1e-6

"""Dataset-level JPEG quality estimate from blockiness values, exactly as the DiverSeg paper releases it.

The target's blockiness distribution is compared with basis distributions of a pristine corpus
re-encoded at known JPEG qualities (see :mod:`diverseg_hf.quality.basis`):

1. non-finite target values are dropped (counted), then values ``>= threshold`` (default 300);
   basis values are not filtered;
2. ``scipy.stats.gaussian_kde`` (Scott bandwidth) is fitted to the target and to each basis set;
3. both densities are evaluated on ``np.linspace(lo, hi, 3450)`` spanning the union of the
   filtered target and that basis set, and ``1e-10`` is added to both;
4. ``KL_q = sum(scipy.special.kl_div(p_target, p_basis))`` over the grid (no ``dx``);
5. ``q_hat = sum_q (q/100) exp(-KL_q) / sum_q exp(-KL_q)``.

Densities are evaluated by :class:`Density`: scipy's own bandwidth and kernel terms over the sorted
data, with every term that can matter kept: only terms that together are provably below 2**-60 of the
density are skipped (never any within 38.61 bandwidths of a grid point where exp underflows only beyond
that). Data within 2 bandwidths of a grid point is summed term by term; cells of data farther away by
their Taylor expansions (a fast Gauss transform) wherever the expansions' rounding and truncation bounds
add up to less than 2**-44 of the density, term by term otherwise (gaps, sparse data). The target is
evaluated once, on the distinct grids of all basis sets together. It agrees with
``gaussian_kde.evaluate`` to 1e-12 relative (tested) and is far faster: 1.28M values take ~1-5 s of
one core whatever their spread; scipy's evaluation ~7 min.

The grid size (3450, the DF2K image count in the released script) and the plain sum make KL a
grid-dependent score rather than a true divergence; it is kept as released so the published numbers
reproduce. Step 5 is computed with exponents shifted by the smallest KL, which is the same value
mathematically and cannot underflow to 0/0.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> basis = {100: rng.gamma(2.0, 1.0, 500), 50: rng.normal(180.0, 25.0, 500)}
    >>> est = estimate_quality(rng.gamma(2.0, 1.0, 300), basis)
    >>> round(est.quality, 2), est.n
    (1.0, 300)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
from tqdm import tqdm

from ..decode.images import IMAGE_SUFFIXES, find_image_files
from ..errors import DiversegError
from .basis import check_basis, read_scores_tsv
from .blockiness import iter_blockiness

logger = logging.getLogger(__name__)

#: Blockiness values at or above this are dropped from the target (the released default).
DEFAULT_THRESHOLD = 300.0
#: Evaluation grid size of the released estimator.
GRID_POINTS = 3450
#: Added to both densities before the KL sum (the released epsilon).
EPSILON = 1e-10


@dataclass(frozen=True)
class QualityEstimate:
    """Estimated JPEG quality of a dataset (0..1) with the KL value per basis quality.

    ``n`` counts the target values used; ``nonfinite`` and ``above_threshold`` count those dropped.
    ``kl`` always holds the released KL values; ``weights`` (mixture method only) holds the fitted
    share of the dataset that looks like each basis quality.
    """

    quality: float
    kl: dict[int, float]
    n: int
    nonfinite: int = 0
    above_threshold: int = 0
    method: str = "released"
    weights: dict[int, float] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityEstimate:
        """The estimate :meth:`to_dict` recorded (e.g. in ``selection.json``).

        Example:
            >>> QualityEstimate.from_dict({"quality": 0.9, "kl": {"100": 0.5}, "n": 3}).kl
            {100: 0.5}
        """
        weights = data.get("weights")
        return cls(float(data["quality"]), {int(q): float(v) for q, v in data["kl"].items()}, int(data["n"]),
                   method=str(data.get("method", "released")),
                   weights={int(q): float(v) for q, v in weights.items()} if weights else None)

    def to_dict(self) -> dict[str, object]:
        """``{"quality": float, "kl": {"100": float, ...}, "n": int}`` (the CLI's ``--json``).

        The mixture method adds ``"method"`` and ``"weights"`` (keyed like ``kl``).
        """
        out: dict[str, object] = {"quality": self.quality, "kl": _str_keys(self.kl), "n": self.n}
        if self.method != "released":
            out.update(method=self.method, weights=_str_keys(self.weights or {}))
        return out


def _str_keys(by_quality: Mapping[int, float]) -> dict[str, float]:
    return {str(q): v for q, v in by_quality.items()}


# Beyond this many bandwidths exp(-z * z / 2) is exactly 0.0 in float64 (the last nonzero value,
# 5e-324, is reached at z = 38.60397; the bound is checked in the tests).
_UNDERFLOW_Z = 38.61
# The terms skipped at one grid point add up to at most this fraction of the density there
# (2**-60 ~ 8.7e-19, far below float64 resolution); see _gaussian_sums.
_DROP_FRACTION = 2.0**-60


def _reach(z_sorted: np.ndarray, grid_z: np.ndarray) -> np.ndarray:
    """Per grid point, the distance beyond which all kernel terms together add < ``_DROP_FRACTION``.

    ``s`` = the sum at ``g`` is at least ``exp(-d0**2 / 2)`` (``d0``: nearest data point) and at least
    ``e**-0.5`` times the number of points within one bandwidth. Every one of the ``n`` terms beyond
    ``r`` with ``n * exp(-r**2 / 2) = _DROP_FRACTION * s_lower`` is smaller than that share, so
    together they add less than ``_DROP_FRACTION * s``. ``r`` never exceeds the underflow bound;
    it is 0 where every term underflows (the sum is exactly 0.0).
    """
    n = z_sorted.size
    k = np.searchsorted(z_sorted, grid_z)
    right = np.where(k < n, z_sorted[np.minimum(k, n - 1)] - grid_z, np.inf)
    left = np.where(k > 0, grid_z - z_sorted[np.maximum(k - 1, 0)], np.inf)
    nearest = np.minimum(left, right)
    within_one = np.searchsorted(z_sorted, grid_z + 1.0, "right") - np.searchsorted(z_sorted, grid_z - 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        lower = np.maximum(within_one * math.exp(-0.5), np.exp(-0.5 * nearest * nearest))
        reach = np.sqrt(2.0 * (math.log(n / _DROP_FRACTION) - np.log(lower)))
    return np.where(lower > 0, np.minimum(reach, _UNDERFLOW_Z), 0.0)


def _window_sums(z_sorted: np.ndarray, grid_z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``sum(exp(-(z_sorted[lo:hi] - g)**2 / 2))`` per grid point, term by term (NumPy's vectorised ``exp``)."""
    buf = np.empty(int((hi - lo).max(initial=0)))
    out = np.zeros(grid_z.size)
    for j in np.flatnonzero(hi > lo):
        d = np.subtract(z_sorted[lo[j] : hi[j]], grid_z[j], out=buf[: hi[j] - lo[j]])
        np.multiply(d, d, out=d)
        np.multiply(d, -0.5, out=d)
        out[j] = np.exp(d, out=d).sum()
    return out


# Far data is summed by cells one bandwidth wide, each as a Taylor expansion about its centre (a fast
# Gauss transform): sum_i exp(-(t - u_i)**2 / 2) = exp(-t**2 / 2) sum_k M_k t**k with moments
# M_k = sum_i exp(-u_i**2 / 2) u_i**k / k!, t = g - centre, |u_i| <= 1/2.
_CELL_HALF = 0.5
_ORDER = 30
# Cells within this many bandwidths of a grid point are always summed term by term.
_NEAR = 2.0
# Bounds per cell, per unit of n_cell * exp(-gap**2 / 2) (gap = distance to the cell's edge): the
# rounding of the moments, the polynomial and the exponential, and the Taylor remainder (times |t|**P).
_ROUNDING = (3 * _ORDER + 8) * 2.0**-53
_TRUNCATION = _CELL_HALF**_ORDER / math.factorial(_ORDER)
# A grid point's expansions are used only if their bounds add up to at most this share of its near sum.
_EXPANSION_TOLERANCE = 2.0**-44


@numba.njit(nogil=True, cache=True)
def _cell_moments(z_sorted, starts, centres):  # pragma: no cover - compiled
    moments = np.zeros((centres.size, _ORDER))
    for c in range(centres.size):
        for i in range(starts[c], starts[c + 1]):
            u = z_sorted[i] - centres[c]
            term = math.exp(-0.5 * u * u)
            for k in range(_ORDER):
                moments[c, k] += term
                term *= u / (k + 1)
    return moments


@numba.njit(nogil=True, cache=True)
def _far_sums(grid_z, near_lo, near_hi, reach_lo, reach_hi, near, centres, counts, moments):  # pragma: no cover
    """Expansions of the cells in reach outside the near ones; NaN where their error bound is not
    below ``_EXPANSION_TOLERANCE`` of the near sum (sparse data, gaps: summed term by term instead)."""
    out = np.empty(grid_z.size)
    for j in range(grid_z.size):
        g, acc, bound = grid_z[j], 0.0, 0.0
        for c in range(reach_lo[j], reach_hi[j] + 1):
            if counts[c] == 0 or near_lo[j] <= c <= near_hi[j]:
                continue
            t = g - centres[c]
            gap = max(abs(t) - _CELL_HALF, 0.0)
            bound += counts[c] * math.exp(-0.5 * gap * gap) * (_ROUNDING + _TRUNCATION * abs(t) ** _ORDER)
            poly = 0.0
            for k in range(_ORDER - 1, -1, -1):
                poly = poly * t + moments[c, k]
            acc += math.exp(-0.5 * t * t) * poly
        out[j] = acc if bound <= _EXPANSION_TOLERANCE * near[j] else math.nan
    return out


def _gaussian_sums(z_sorted: np.ndarray, grid_z: np.ndarray) -> np.ndarray:
    """``sum_i exp(-(z_i - g)**2 / 2)`` for every ``g``, over the data within :func:`_reach` of ``g``.

    The data within ``_NEAR`` bandwidths (whole cells) is summed term by term; farther cells by their
    expansions wherever the expansions' error bounds add up to less than 2**-44 of that near sum (dense
    data). Elsewhere (gaps, sparse data) the whole window is summed term by term. Sorting makes each
    window a slice.
    """
    reach = _reach(z_sorted, grid_z)
    first = z_sorted[0]
    cells = int(z_sorted[-1] - first) + 1
    starts = np.searchsorted(z_sorted, first + np.arange(cells + 1))
    starts[-1] = z_sorted.size
    centres = first + np.arange(cells) + _CELL_HALF

    def cell(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x - first), 0, cells - 1).astype(np.int64)

    near_lo, near_hi = cell(grid_z - _NEAR), cell(grid_z + _NEAR)
    near = _window_sums(z_sorted, grid_z, starts[near_lo], starts[near_hi + 1])
    far = _far_sums(grid_z, near_lo, near_hi, cell(grid_z - reach), cell(grid_z + reach), near, centres,
                    np.diff(starts), _cell_moments(z_sorted, starts, centres))
    out = near + far
    redo = np.flatnonzero(np.isnan(far))
    lo = np.searchsorted(z_sorted, grid_z[redo] - reach[redo])
    hi = np.searchsorted(z_sorted, grid_z[redo] + reach[redo], "right")
    out[redo] = _window_sums(z_sorted, grid_z[redo], lo, hi)
    out[reach == 0] = 0.0
    return out


@dataclass(frozen=True)
class Density:
    """A 1-D ``scipy.stats.gaussian_kde`` (Scott bandwidth), prepared for fast evaluation on a grid.

    Evaluation equals ``gaussian_kde(values)(grid)`` to 1e-12 relative: the same bandwidth (scipy's
    own), the same kernel terms, only terms skipped that together add less than 2**-60 of the density
    (see ``_reach``), and far data summed by expansions whose error bounds are below 2**-44 of it (see
    ``_gaussian_sums``).

    Example:
        >>> from scipy.stats import gaussian_kde
        >>> d = Density.fit(np.array([1.0, 2.0, 4.0]))
        >>> grid = np.linspace(0, 5, 4)
        >>> bool(np.allclose(d(grid), gaussian_kde([1.0, 2.0, 4.0])(grid), rtol=1e-12))
        True
    """

    z_sorted: np.ndarray  # data divided by the bandwidth, ascending
    bandwidth: float
    scale: float  # 1 / (n * sqrt(2 pi) * bandwidth)
    lo: float  # smallest and largest data value
    hi: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Density:
        from scipy.stats import gaussian_kde  # lazy: scipy.stats adds ~0.6 s to the package import

        try:
            kde = gaussian_kde(values)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise DiversegError(f"cannot fit a density to {values.size} values: {exc}") from None
        bandwidth = float(kde.cho_cov[0, 0])
        return cls(
            np.sort(values / bandwidth),
            bandwidth,
            1.0 / (values.size * math.sqrt(2 * math.pi) * bandwidth),
            float(values.min()),
            float(values.max()),
        )

    def __call__(self, grid: np.ndarray) -> np.ndarray:
        return _gaussian_sums(self.z_sorted, np.asarray(grid, np.float64) / self.bandwidth) * self.scale


def _kl_released(target: Density, densities: Mapping[int, Density]) -> dict[int, float]:
    """``KL_q`` for every basis set; the target is evaluated once, on the distinct grids together."""
    from scipy.special import kl_div  # lazy, like scipy.stats above

    spans = {q: (min(target.lo, d.lo), max(target.hi, d.hi)) for q, d in densities.items()}
    distinct = list(dict.fromkeys(spans.values()))
    grids = [np.linspace(lo, hi, GRID_POINTS) for lo, hi in distinct]
    p_all = target(np.concatenate(grids)) + EPSILON
    p = {span: p_all[i * GRID_POINTS:(i + 1) * GRID_POINTS] for i, span in enumerate(distinct)}
    grid_of = dict(zip(distinct, grids))
    return {
        q: float(np.sum(kl_div(p[span], densities[q](grid_of[span]) + EPSILON))) for q, span in spans.items()
    }


def weighted_quality(kl: Mapping[int, float]) -> float:
    """``sum_q (q/100) exp(-KL_q) / sum_q exp(-KL_q)``, computed without underflow.

    Example:
        >>> weighted_quality({100: 0.0, 50: 0.0})
        0.75
    """
    shift = min(kl.values())
    weights = {q: math.exp(-(v - shift)) for q, v in kl.items()}
    return sum(q / 100 * w for q, w in weights.items()) / sum(weights.values())


def mixture_weights(
    values: np.ndarray, densities: Mapping[int, Density], max_iter: int = 1000, tol: float = 1e-9
) -> dict[int, float]:
    """Maximum-likelihood shares ``w_q`` of the mixture ``sum_q w_q p_q`` fitted to ``values`` (EM).

    Each ``p_q`` is a fixed basis density; only the shares are fitted. Values that no basis density
    reaches (likelihood 0 under every quality) are ignored.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> dens = {100: Density.fit(rng.normal(2, 1, 500)), 50: Density.fit(rng.normal(150, 20, 500))}
        >>> values = np.concatenate([rng.normal(2, 1, 300), rng.normal(150, 20, 100)])
        >>> {q: round(w, 1) for q, w in mixture_weights(values, dens).items()}
        {100: 0.8, 50: 0.2}
    """
    qualities = list(densities)
    lik = np.stack([densities[q](values) for q in qualities])  # (qualities, values)
    lik = lik[:, lik.sum(axis=0) > 0]
    if lik.shape[1] == 0:
        raise DiversegError("no target value lies where any basis density is positive")
    w = np.full(len(qualities), 1.0 / len(qualities))
    for _ in range(max_iter):
        resp = w[:, None] * lik
        resp /= resp.sum(axis=0)
        new = resp.mean(axis=1)
        converged = np.abs(new - w).max() < tol
        w = new
        if converged:
            break
    return {q: float(x) for q, x in zip(qualities, w)}


#: Estimators :func:`estimate_quality` offers.
METHODS = ("released", "mixture")


def estimate_quality(
    values: Iterable[float] | np.ndarray,
    basis: Mapping[int, np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    method: str = "released",
) -> QualityEstimate:
    """Estimate a dataset's JPEG quality from its per-image blockiness values.

    ``basis`` maps quality (1..100) -> blockiness values, e.g. from :func:`diverseg_hf.load_basis`.
    Raises :class:`DiversegError` when fewer than two usable target values remain or they are all
    equal (no density can be fitted), or when a basis set is unusable.

    ``method="released"`` (default) is the paper's estimator, reproduced exactly (module docstring).
    ``method="mixture"`` is a principled alternative: the target is modelled as a mixture of the basis
    densities, the shares are fitted by maximum likelihood (:func:`mixture_weights`), and the quality is
    the share-weighted mean quality, i.e. the expected quality of a random image. Its values are not
    comparable to the paper's thresholds (a 75% gate means something else), and basis mass above the
    threshold is not renormalised, which slightly under-weights the most compressed qualities.

    Example:
        >>> from diverseg_hf import load_basis
        >>> est = estimate_quality([2.0, 3.5, 8.0, 4.1], load_basis())  # doctest: +SKIP
        >>> est.to_dict()  # doctest: +SKIP
        {'quality': 0.95, 'kl': {'100': ..., '95': ..., ...}, 'n': 4}
    """
    if method not in METHODS:
        raise DiversegError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    basis = check_basis(basis)
    target = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64).ravel()
    finite = np.isfinite(target)
    target = target[finite]
    kept = target[target < threshold]
    nonfinite, above = int((~finite).sum()), int(target.size - kept.size)
    if kept.size < 2 or np.ptp(kept) == 0:
        raise DiversegError(
            f"cannot estimate quality: {kept.size} usable target values below {threshold:g} "
            f"({nonfinite} non-finite, {above} at or above it dropped); need at least two distinct values"
        )
    target_density = Density.fit(kept)
    densities = {q: Density.fit(b) for q, b in basis.items()}
    kl = _kl_released(target_density, densities)
    if method == "released":
        return QualityEstimate(weighted_quality(kl), kl, int(kept.size), nonfinite, above)
    weights = mixture_weights(kept, densities)
    quality = sum(q / 100 * w for q, w in weights.items())
    return QualityEstimate(quality, kl, int(kept.size), nonfinite, above, method, weights)


def target_values(target: str | os.PathLike, workers: int = 1) -> np.ndarray:
    """Blockiness values of a target: a ``path<TAB>value`` scores file, or a folder of images scored now.

    Images that fail or whose blockiness is undefined give NaN (the estimator drops and counts them);
    their reasons are logged.

    Example:
        >>> values = target_values("scores.tsv")  # doctest: +SKIP
    """
    path = Path(target)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        raise DiversegError(f"{path} is one image; the target is a scores file or a folder of images")
    if path.is_file():
        return read_scores_tsv(path)
    if not path.is_dir():
        raise DiversegError(f"no such target file or folder: {path}")
    files = find_image_files([path])
    if not files:
        raise DiversegError(f"no image files found under {path}")
    values = np.empty(len(files), np.float64)
    results = iter_blockiness((str(f) for f in files), workers=workers)
    for i, (file, result) in enumerate(tqdm(zip(files, results), total=len(files), unit="img", desc="blockiness")):
        values[i] = result.value
        if not result.ok:
            logger.info("%s: %s", file, result.reason)
    return values

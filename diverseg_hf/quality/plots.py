"""Figures: the dataset quality estimate and the score histograms of dataset cards.

- :func:`plot_quality`: as in the paper, the target's blockiness distribution (a violin) beside each
  basis quality's, on a shared log-scaled blockiness axis, labelled with each quality's weight in the
  estimate.
- :func:`plot_blockiness`: histogram of per-image blockiness on a log-scaled axis, kept and dropped
  images stacked in two colours, the ceiling drawn, the counts in the legend.
- :func:`plot_counts`: the same for an object count (SAM masks, detections) with theta and the kept share.

The histograms take the values and a boolean ``kept`` mask of the same length (the selection's
verdict per image), so they show what a selection did, whatever rules made it. Rendering uses
matplotlib's Agg canvas directly, so no global backend is changed; PNGs carry no timestamp.

Example:
    >>> import tempfile, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> values = np.concatenate([rng.gamma(3.0, 0.7, 80), rng.normal(120.0, 30.0, 20)])
    >>> out = plot_blockiness(values, values <= 10, Path(tempfile.mkdtemp()) / "b.png", ceiling=10)
    >>> out.read_bytes()[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import DiversegError
from .estimate import DEFAULT_THRESHOLD, QualityEstimate

_TARGET_COLOR = "#d62728"
_BASIS_COLOR = "#7f7f7f"
_KEPT_COLOR = "#4C72B0"
_DROPPED_COLOR = "#DD8452"
#: Blockiness values below this are drawn at it on log axes (B(x) >= 0; pristine images reach ~0.3).
_LOG_FLOOR = 0.1
_PNG_META = {"Software": None}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata=_PNG_META)
    return out


def _as_array(values: Iterable[float] | np.ndarray) -> np.ndarray:
    return np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)


def _log_ticks(ax, axis: str, low: float, high: float) -> None:
    """Plain-number tick labels (0.1, 1, 10, 100, ...) on a log-scaled axis."""
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    getattr(ax, f"{axis}axis").set_major_formatter(fmt)
    getattr(ax, f"set_{axis}lim")(low, high)


def _weights(estimate: QualityEstimate) -> dict[int, float]:
    """Each basis quality's share of the estimate: the fitted shares (mixture) or normalised exp(-KL)."""
    if estimate.weights:
        return dict(estimate.weights)
    kl = np.array(list(estimate.kl.values()))
    w = np.exp(-(kl - kl.min()))  # shifted for range; the ratio is the released exp(-KL) weighting
    return dict(zip(estimate.kl, w / w.sum()))


def plot_quality(
    target_values: Iterable[float] | np.ndarray,
    basis: Mapping[int, np.ndarray],
    out_png: str | os.PathLike,
    estimate: QualityEstimate | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    target_label: str = "target",
) -> Path:
    """Save violins of the target's blockiness and of each basis quality to ``out_png``; return the path.

    The blockiness axis is log-scaled (values below 0.1 drawn at 0.1). Target values at or above
    ``threshold`` and non-finite ones are left out, as the estimator leaves them out (dotted line).
    With ``estimate``, the title states it and each basis label shows its weight in the estimate
    and its KL divergence from the target.

    Example:
        >>> import tempfile
        >>> rng = np.random.default_rng(0)
        >>> basis = {100: rng.gamma(2.0, 1.0, 200), 50: rng.normal(180.0, 25.0, 200)}
        >>> plot_quality(rng.gamma(2.0, 1.0, 200), basis, Path(tempfile.mkdtemp()) / "q.png").suffix
        '.png'
    """

    def usable(values: Iterable[float] | np.ndarray, limit: float = np.inf) -> np.ndarray:
        arr = _as_array(values)
        return np.log10(np.maximum(arr[np.isfinite(arr) & (arr < limit)], _LOG_FLOOR))

    weights = _weights(estimate) if estimate is not None else {}
    sets = [(target_label, usable(target_values, threshold), _TARGET_COLOR)]
    for quality in sorted(basis, reverse=True):
        label = f"basis q{quality}"
        if quality in weights:
            label += f"\nweight {weights[quality]:.0%}\nKL {estimate.kl[quality]:.3g}"
        sets.append((label, usable(basis[quality]), _BASIS_COLOR))
    top = 10 ** max([np.log10(threshold), *(v.max() for _, v, _ in sets if v.size)]) * 1.15

    fig = _figure(1.55 * len(sets) + 1.6, 5.0)
    ax = fig.add_subplot()
    for pos, (_, logs, color) in enumerate(sets, 1):
        if logs.size < 2 or np.ptp(logs) == 0:  # no density to draw: show the points instead
            ax.plot(np.full(logs.size, pos), 10**logs, "o", color=color, alpha=0.7)
            continue
        parts = ax.violinplot(logs, positions=[pos], widths=0.85, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_edgecolor("black")
            body.set_alpha(0.6)
            body.get_paths()[0].vertices[:, 1] = 10 ** body.get_paths()[0].vertices[:, 1]
        q1, median, q3 = 10 ** np.percentile(logs, [25, 50, 75])
        ax.vlines(pos, q1, q3, color="black", linewidth=4)  # inner box: interquartile range
        ax.plot(pos, median, "o", color="white", markersize=4, zorder=3)
    ax.set_yscale("log")
    _log_ticks(ax, "y", _LOG_FLOOR, top)
    ax.axhline(threshold, color=_TARGET_COLOR, linestyle=":", linewidth=1)
    ax.text(0.45, threshold, f" {target_label} values >= {threshold:g} left out", color=_TARGET_COLOR,
            va="bottom", fontsize=8)
    ax.set_xticks(range(1, len(sets) + 1), [f"{label}\n(n={v.size:,})" for label, v, _ in sets])
    ax.set_xlim(0.4, len(sets) + 0.6)
    ax.axvline(1.5, color="black", linewidth=0.8)
    ax.set_ylabel("blockiness B(x), log scale")
    ax.grid(axis="y", which="major", alpha=0.3)
    if estimate is not None:
        method = "" if estimate.method == "released" else f", {estimate.method} method"
        title = (f"{target_label}: estimated JPEG quality {100 * estimate.quality:.1f}% "
                 f"(n={estimate.n:,}{method})")
    else:
        title = f"Blockiness of {target_label} vs. the JPEG-quality basis"
    ax.set_title(title)
    return _save(fig, out_png)


def _kept_mask(values: np.ndarray, kept: Iterable[bool] | np.ndarray) -> np.ndarray:
    mask = np.asarray(kept if isinstance(kept, np.ndarray) else list(kept), dtype=bool)
    if mask.shape != values.shape:
        raise DiversegError(f"kept mask has shape {mask.shape}, values have {values.shape}")
    return mask


def _stacked(ax, values: np.ndarray, kept: np.ndarray, edges: np.ndarray) -> None:
    """Kept and dropped images stacked in two colours, their counts (and the kept share) in the legend."""
    n_kept = int(kept.sum())
    n_dropped = kept.size - n_kept
    share = f" ({n_kept / (n_kept + n_dropped):.1%})" if n_kept + n_dropped else ""
    # drawn from the bin counts (each bin's left edge weighted by its count), not from a copy of the values
    # of each colour: the same bars, without holding the values twice
    in_kept = np.histogram(values[kept], bins=edges)[0]
    in_dropped = np.histogram(values, bins=edges)[0] - in_kept
    ax.hist([edges[:-1], edges[:-1]], bins=edges, weights=[in_kept, in_dropped], stacked=True,
            color=[_KEPT_COLOR, _DROPPED_COLOR], label=[f"kept: {n_kept:,}{share}", f"dropped: {n_dropped:,}"],
            edgecolor="white", linewidth=0.3)


def _finish(ax, line: float | None, line_label: str | None, xlabel: str, title: str, note: str) -> None:
    from matplotlib.ticker import MaxNLocator

    if line is not None:
        ax.axvline(line, color="black", linestyle="--", linewidth=1.2, label=line_label)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel + note)
    ax.set_ylabel("images")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)


def plot_blockiness(
    values: Iterable[float] | np.ndarray,
    kept: Iterable[bool] | np.ndarray,
    out_png: str | os.PathLike,
    *,
    ceiling: float | None = None,
    title: str | None = None,
) -> Path:
    """Histogram of per-image blockiness on a log-scaled axis, kept and dropped stacked, the ceiling dashed.

    ``kept[i]`` says whether image ``i`` was selected. Undefined values (NaN) are not drawn but
    counted in the axis label; values below 0.1 are drawn at 0.1. Bins are equal on the log axis.
    """
    values = _as_array(values)
    kept = _kept_mask(values, kept)
    finite = np.isfinite(values)
    shown = np.maximum(values[finite], _LOG_FLOOR)
    bounds = [ceiling or 1.0, 1.0, *([float(shown.max()), float(shown.min())] if shown.size else [])]
    high = max(bounds) * 1.3  # (numpy's extremes: a Python list of every value took 32 bytes a row)
    low = max(_LOG_FLOOR, 10 ** np.floor(np.log10(min(bounds))))
    edges = np.geomspace(low, high, int(np.clip(2 * np.sqrt(shown.size), 12, 80)) + 1)
    fig = _figure(8.0, 3.8)
    ax = fig.add_subplot()
    _stacked(ax, shown, kept[finite], edges)
    ax.set_xscale("log")
    _log_ticks(ax, "x", low, high)
    undefined = int((~finite).sum())
    note = f"   ({undefined:,} undefined, not shown)" if undefined else ""
    _finish(ax, ceiling, f"ceiling {ceiling:g}" if ceiling is not None else "", "blockiness B(x), log scale",
            title or f"Blockiness: {finite.sum():,} scored images", note)
    return _save(fig, out_png)


def _count_edges(counts: np.ndarray) -> np.ndarray:
    """Bin edges for integer counts: bins of a whole number of values, at most 80 bins.

    Example:
        >>> _count_edges(np.array([0.0, 3.0])).tolist()
        [-0.5, 0.5, 1.5, 2.5, 3.5]
    """
    top = int(counts.max()) if counts.size else 1
    width = -(-(top + 1) // 80)
    return np.arange(-0.5, top + width + 0.5, width)


def plot_counts(
    counts: Iterable[float] | np.ndarray,
    kept: Iterable[bool] | np.ndarray,
    out_png: str | os.PathLike,
    *,
    theta: float | None = None,
    label: str = "SAM masks per image",
    title: str | None = None,
) -> Path:
    """Histogram of an object count (masks, detections), kept and dropped stacked, theta dashed.

    The kept share is in the legend; missing counts (NaN) are counted in the axis label. The count
    axis stays linear (counts start at 0 and bins hold whole numbers of values, so no bin is
    over- or under-filled by its width), unlike blockiness, which spans three decades.

    Example:
        >>> import tempfile
        >>> counts = np.random.default_rng(1).negative_binomial(3, 0.03, 300)
        >>> plot_counts(counts, counts >= 100, Path(tempfile.mkdtemp()) / "c.png", theta=100).suffix
        '.png'
    """
    counts = _as_array(counts)
    kept = _kept_mask(counts, kept)
    finite = np.isfinite(counts)
    edges = _count_edges(counts[finite])
    fig = _figure(8.0, 3.8)
    ax = fig.add_subplot()
    _stacked(ax, counts[finite], kept[finite], edges)
    ax.set_xlim(edges[0], edges[-1])
    missing = int((~finite).sum())
    note = f"   ({missing:,} without a count, not shown)" if missing else ""
    _finish(ax, theta, f"theta = {theta:g}" if theta is not None else None, label,
            title or f"{label[:1].upper()}{label[1:]}: {finite.sum():,} scored images", note)
    return _save(fig, out_png)


def plot_histogram(
    values: np.ndarray,
    out_png: str | os.PathLike,
    *,
    xlabel: str,
    title: str,
    line: float | None = None,
    line_label: str | None = None,
    bins: int = 100,
    color: str = "#4C72B0",
) -> Path:
    """Save a plain histogram of ``values`` with an optional dashed line (superseded by
    :func:`plot_blockiness` and :func:`plot_counts`, which also show what was kept).

    Example:
        >>> import tempfile
        >>> out = plot_histogram(np.arange(50.0), Path(tempfile.mkdtemp()) / "h.png", xlabel="x", title="t", line=10)
        >>> out.exists()
        True
    """
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color=color)
    _finish(ax, line, line_label, xlabel, title, "")
    return _save(fig, out_png)

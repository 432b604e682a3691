"""Figures: the quality estimate's violins and the score histograms of published dataset cards.

The quality figure follows the paper's: one violin per set on a shared blockiness axis (0..300), the
target first. Rendering uses matplotlib's Agg canvas directly, so no global backend is changed.

Example:
    >>> import tempfile, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> basis = {100: rng.gamma(2.0, 1.0, 200), 50: rng.normal(180.0, 25.0, 200)}
    >>> out = plot_quality(rng.gamma(2.0, 1.0, 200), basis, Path(tempfile.mkdtemp()) / "q.png")
    >>> out.suffix
    '.png'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .quality import DEFAULT_THRESHOLD, QualityEstimate

_TARGET_COLOR = "#d62728"
_BASIS_COLOR = "#7f7f7f"


def plot_quality(
    target_values: Iterable[float] | np.ndarray,
    basis: Mapping[int, np.ndarray],
    out_png: str | os.PathLike,
    estimate: QualityEstimate | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    target_label: str = "target",
) -> Path:
    """Save violins of the target's blockiness and of each basis quality to ``out_png``; return the path.

    Values outside ``[0, threshold)`` and non-finite ones are left out of the violins (as the
    estimator leaves them out of the target). With ``estimate``, the title states it and each basis
    label shows its KL value (and its fitted share for the mixture method).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def usable(values: Iterable[float] | np.ndarray) -> np.ndarray:
        arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
        return arr[np.isfinite(arr) & (arr >= 0) & (arr < threshold)]

    sets = [(target_label, usable(target_values), _TARGET_COLOR)]
    for quality in sorted(basis, reverse=True):
        label = f"q{quality}"
        if estimate is not None and quality in estimate.kl:
            label += f"\nKL {estimate.kl[quality]:.3g}"
        if estimate is not None and estimate.weights and quality in estimate.weights:
            label += f"\nshare {estimate.weights[quality]:.0%}"
        sets.append((label, usable(basis[quality]), _BASIS_COLOR))

    fig = Figure(figsize=(1.6 * len(sets) + 1.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for pos, (_, values, color) in enumerate(sets, 1):
        if values.size < 2 or np.ptp(values) == 0:  # no density to draw: show the points instead
            ax.plot(np.full(values.size, pos), values, "o", color=color, alpha=0.7)
            continue
        parts = ax.violinplot(values, positions=[pos], widths=0.8, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_edgecolor("black")
            body.set_alpha(0.6)
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        ax.vlines(pos, q1, q3, color="black", linewidth=4)  # inner box: interquartile range
        ax.plot(pos, median, "o", color="white", markersize=4, zorder=3)
    ax.set_xticks(range(1, len(sets) + 1), [f"{label}\n(n={v.size})" for label, v, _ in sets])
    ax.set_xlim(0.4, len(sets) + 0.6)
    ax.set_ylim(0, threshold)
    ax.set_ylabel("blockiness B(x)")
    ax.grid(axis="y", alpha=0.3)
    if estimate is not None:
        method = "" if estimate.method == "released" else f", {estimate.method} method"
        title = f"Estimated JPEG quality: {100 * estimate.quality:.1f}% (n={estimate.n}{method})"
    else:
        title = "Blockiness: target vs. JPEG-quality basis"
    ax.set_title(title)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


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
    """Save a histogram of ``values`` (counts of images) with an optional dashed threshold line.

    Example:
        >>> import tempfile
        >>> out = plot_histogram(np.arange(50.0), Path(tempfile.mkdtemp()) / "h.png", xlabel="x", title="t", line=10)
        >>> out.exists()
        True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(values, bins=bins, color=color)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if line is not None:
        ax.axvline(line, color="#C44E52", linestyle="--", label=line_label)
        if line_label:
            ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("source images")
    ax.set_title(title)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    return out

"""Evaluate SR results the way papers report them: per-image PSNR/SSIM (Y, border ``scale``) and the mean.

:func:`evaluate_folders` pairs each HR file with its SR file (same stem, or the stem followed by
``_``, ``-``, ``.`` or ``x<scale>``: ``baby.png`` <- ``baby_x4_SR.png``, ``babyx4.png``), crops the
HR to a multiple of the scale when the SR has that size (the benchmark convention, *mod-crop*), and
scores with :mod:`diverseg_hf.sr.metrics` (gray files on their gray channel). :func:`bicubic_table`
is the baseline every SR table starts with: ``LR = imresize(modcrop(HR, s), 1/s)``,
``SR = imresize(LR, s)``, both MATLAB bicubic on uint8.

Example:
    >>> import numpy as np
    >>> hr = np.random.default_rng(0).integers(0, 256, (37, 41, 3), dtype=np.uint8)
    >>> table = evaluate_arrays([("a", bicubic(hr, 4), hr)], scale=4)
    >>> table.rows[0].name, table.rows[0].psnr < 20
    ('a', True)
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..decode.images import decode_rgb, find_image_files
from ..errors import DiversegError, ImageError
from . import metrics
from .imresize import imresize

#: Pillow modes of single-channel files: evaluated on their gray channel, as MATLAB ``imread`` keeps them.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part of ``image`` whose height and width are multiples of ``scale`` (MATLAB ``modcrop``).

    Example:
        >>> modcrop(np.zeros((10, 7, 3)), 4).shape
        (8, 4, 3)
    """
    h, w = image.shape[:2]
    if h < scale or w < scale:
        raise DiversegError(f"image {h}x{w} is smaller than the scale {scale}")
    return image[: h - h % scale, : w - w % scale]


def bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline of ``hr``: ``imresize(imresize(modcrop(hr, s), 1/s), s)`` (same size as the mod-crop).

    Example:
        >>> bicubic(np.full((9, 9), 50, np.uint8), 2).shape
        (8, 8)
    """
    return imresize(imresize(modcrop(hr, scale), 1.0 / scale), float(scale))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file: HxW uint8 for gray files, HxWx3 RGB otherwise.

    Example:
        >>> load_image("/nonexistent.png")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ImageError: missing: /nonexistent.png
    """
    if not os.path.isfile(path):
        raise ImageError("missing", str(path))
    rgb = decode_rgb(path)
    with Image.open(path) as im:
        gray = im.mode in GRAY_MODES
    return np.ascontiguousarray(rgb[..., 0]) if gray else rgb


@dataclass
class Row:
    """One image's scores, or the reason it has none."""

    name: str
    psnr: float = math.nan
    ssim: float = math.nan
    error: str = ""


@dataclass
class EvalTable:
    """Per-image rows and their means (over the images without error)."""

    scale: int
    rows: list[Row] = field(default_factory=list)
    name: str = ""

    @property
    def scored(self) -> list[Row]:
        return [r for r in self.rows if not r.error]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean([r.psnr for r in self.scored])) if self.scored else math.nan

    @property
    def mean_ssim(self) -> float:
        return float(np.mean([r.ssim for r in self.scored])) if self.scored else math.nan

    def summary(self) -> str:
        """The one cell papers print: ``PSNR/SSIM`` to 2 and 4 decimals, e.g. ``28.42/0.8104``."""
        return f"{self.mean_psnr:.2f}/{self.mean_ssim:.4f}"

    def format(self) -> str:
        """Per-image lines, then the mean line as papers report it."""
        width = max([len(r.name) for r in self.rows] + [5])
        lines = [f"{'image':<{width}}  {'PSNR':>7}  {'SSIM':>6}"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  error: {r.error}" if r.error else
                         f"{r.name:<{width}}  {r.psnr:7.2f}  {r.ssim:.4f}")
        label = f"{self.name} x{self.scale}".strip()
        lines.append(f"{label}: PSNR/SSIM {self.summary()} (Y, {self.scale}-pixel border, "
                     f"{len(self.scored)} of {len(self.rows)} images)")
        return "\n".join(lines)


def _align(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Mod-crop ``hr`` to ``sr``'s size; a gray image against a colour one compares gray channels."""
    if sr.shape[:2] != hr.shape[:2] and sr.shape[:2] == modcrop(hr, scale).shape[:2]:
        hr = modcrop(hr, scale)
    if sr.shape[:2] != hr.shape[:2]:
        raise DiversegError(f"SR is {sr.shape[1]}x{sr.shape[0]}, HR is {hr.shape[1]}x{hr.shape[0]}")
    if sr.ndim != hr.ndim:
        colour = sr if sr.ndim == 3 else hr
        if not (colour[..., 0] == colour[..., 1]).all() or not (colour[..., 1] == colour[..., 2]).all():
            raise DiversegError("one image is gray, the other is in colour")
        sr, hr = (x[..., 0] if x.ndim == 3 else x for x in (sr, hr))
    return sr, hr


def evaluate_arrays(
    items: list[tuple[str, np.ndarray, np.ndarray]], scale: int, round_y: bool = False, name: str = ""
) -> EvalTable:
    """Score ``(name, sr, hr)`` uint8 arrays; a pair that cannot be compared becomes an error row."""
    table = EvalTable(scale=scale, name=name)
    for item, sr, hr in items:
        try:
            a, b = _align(sr, hr, scale)
            table.rows.append(Row(item, metrics.psnr(a, b, scale, round_y=round_y),
                                  metrics.ssim(a, b, scale, round_y=round_y)))
        except DiversegError as exc:
            table.rows.append(Row(item, error=str(exc)))
    return table


def _match(hr_stem: str, sr_stems: dict[str, Path], scale: int) -> Path | None:
    if hr_stem in sr_stems:
        return sr_stems[hr_stem]
    pattern = re.compile(re.escape(hr_stem) + rf"(?:[_.\-]|x{scale}(?!\d)).*")
    found = [p for s, p in sr_stems.items() if pattern.fullmatch(s)]
    if len(found) > 1:
        raise DiversegError(f"several SR files match {hr_stem!r}: {', '.join(sorted(p.name for p in found))}")
    return found[0] if found else None


def evaluate_folders(
    sr_dir: str | os.PathLike, hr_dir: str | os.PathLike, scale: int, round_y: bool = False, name: str = ""
) -> EvalTable:
    """Score every HR image of ``hr_dir`` against its SR file in ``sr_dir`` (missing ones are error rows).

    Example:
        >>> evaluate_folders("/nonexistent_sr", "/nonexistent_hr", 4)
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such folder: /nonexistent_hr
    """
    for folder in (hr_dir, sr_dir):
        if not Path(folder).is_dir():
            raise DiversegError(f"no such folder: {folder}")
    hr_files = find_image_files([hr_dir])
    if not hr_files:
        raise DiversegError(f"no image files in {hr_dir}")
    sr_stems = {p.stem: p for p in find_image_files([sr_dir])}
    table = EvalTable(scale=scale, name=name)
    for hr_path in hr_files:
        sr_path = _match(hr_path.stem, sr_stems, scale)
        if sr_path is None:
            table.rows.append(Row(hr_path.stem, error=f"no SR file for {hr_path.name} in {sr_dir}"))
            continue
        try:
            table.rows += evaluate_arrays([(hr_path.stem, load_image(sr_path), load_image(hr_path))], scale,
                                          round_y).rows
        except ImageError as exc:
            table.rows.append(Row(hr_path.stem, error=exc.reason))
    return table


def bicubic_table(
    hr_files: list[str | os.PathLike], scale: int, round_y: bool = False, name: str = ""
) -> EvalTable:
    """The bicubic baseline of a benchmark set: :func:`bicubic` of each HR file against its mod-crop.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "flat.png"; Image.new("L", (30, 30), 9).save(path)
        >>> bicubic_table([path], 2).rows[0].psnr
        inf
    """
    items = []
    for path in hr_files:
        hr = load_image(path)
        items.append((Path(path).stem, bicubic(hr, scale), modcrop(hr, scale)))
    return evaluate_arrays(items, scale, round_y, name)

"""The built-in sample corpus: rendered, object-rich pristine PNGs plus JPEG re-encodings of some of them.

It lets the main job run anywhere, with no download: ``diverseg sample demo`` then ``diverseg curate demo
--scorers blockiness --max-blockiness 10 ...`` keeps the PNGs and drops the JPEGs. Each scene is a
smooth, textured background under dozens of overlapping shapes (ellipses, polygons, striped panels)
drawn at twice the size, downsampled with Lanczos, lightly blurred and given sensor-like noise, so that
its blockiness falls in the pristine range of real photographs (about 1.5-2.5 at 512x384), while its
JPEG copies score far above it (q95 about 20, q75 about 100, q50 about 200). Everything is seeded:
the same arguments give the same bytes with the same Pillow and NumPy.

Example:
    >>> import tempfile
    >>> files = write_sample(Path(tempfile.mkdtemp()) / "demo", scenes=2, compressed=1, qualities=(50,))
    >>> [f.name for f in files]
    ['scene_00.png', 'scene_01.png', 'scene_00_q50.jpg']
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import DiversegError
from ..files import write_bytes_atomic

#: JPEG qualities of the re-encoded copies, by default.
DEFAULT_QUALITIES = (95, 75, 50)
_SUPERSAMPLE = 2


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A linear colour gradient with a few low-frequency checker-like waves on top (float RGB)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(angle) + yy * np.sin(angle)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    start, end = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    rgb = start + (end - start) * ramp[..., None]
    for _ in range(4):
        freq, phase_x, phase_y = rng.uniform(2, 12), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * xx + phase_x) * np.sin(2 * np.pi * freq * yy + phase_y)
        rgb += rng.uniform(5, 20) * wave[..., None]
    return rgb


def _draw_object(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: float, width: int, height: int) -> None:
    """One shape of about ``size`` pixels at a random place: an ellipse, a polygon or a striped panel."""
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    color = tuple(int(c) for c in rng.uniform(0, 255, 3))
    dark = tuple(int(c * 0.6) for c in color)
    kind = rng.integers(3)
    if kind == 0:
        ry = size * rng.uniform(0.4, 1.0)
        draw.ellipse([cx - size, cy - ry, cx + size, cy + ry], fill=color, outline=dark, width=_SUPERSAMPLE)
    elif kind == 1:
        corners = int(rng.integers(3, 8))
        angles, radii = np.sort(rng.uniform(0, 2 * np.pi, corners)), size * rng.uniform(0.5, 1.0, corners)
        draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii)], fill=color)
    else:
        draw.rectangle([cx - size, cy - size / 2, cx + size, cy + size / 2], fill=color)
        for k in range(int(rng.integers(2, 6))):
            y = cy - size / 2 + (k + 0.5) * size / 5
            draw.line([cx - size, y, cx + size, y], fill=dark, width=_SUPERSAMPLE)


def render_scene(seed: int, width: int = 512, height: int = 384, objects: int = 60) -> Image.Image:
    """Render one pristine RGB scene with ``objects`` shapes, large ones first; deterministic in ``seed``.

    Example:
        >>> render_scene(0, 64, 48).size
        (64, 48)
    """
    if width < 8 or height < 8 or objects < 0:
        raise DiversegError(f"render_scene: need width, height >= 8 and objects >= 0 (got {width}x{height}, {objects})")
    rng = np.random.default_rng(seed)
    big_w, big_h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    canvas = Image.fromarray(np.clip(_background(rng, big_h, big_w), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for i in range(objects):
        size = big_w * rng.uniform(0.02, 0.18) * (1 - 0.7 * i / max(objects, 1))
        _draw_object(draw, rng, size, big_w, big_h)
    small = canvas.resize((width, height), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))
    noise = rng.normal(0, 2.0, (height, width, 1)) + rng.normal(0, 1.0, (height, width, 3))
    return Image.fromarray(np.clip(np.rint(np.asarray(small) + noise), 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def sample_names(scenes: int, compressed: int, qualities: Sequence[int]) -> list[str]:
    """File names :func:`write_sample` writes, in its order: PNGs, then JPEG copies by scene and quality.

    Example:
        >>> sample_names(2, 1, (95, 50))
        ['scene_00.png', 'scene_01.png', 'scene_00_q95.jpg', 'scene_00_q50.jpg']
    """
    return [f"scene_{i:02d}.png" for i in range(scenes)] + [
        f"scene_{i:02d}_q{q}.jpg" for i in range(compressed) for q in qualities
    ]


def _check_args(scenes: int, compressed: int, qualities: Sequence[int]) -> None:
    if scenes < 1 or not 0 <= compressed <= scenes:
        raise DiversegError(f"need scenes >= 1 and 0 <= compressed <= scenes (got {scenes}, {compressed})")
    if any(not 1 <= q <= 100 for q in qualities) or len(set(qualities)) != len(qualities):
        raise DiversegError(f"JPEG qualities must be distinct values in 1..100 (got {list(qualities)})")


def write_sample(
    out_dir: str | os.PathLike,
    *,
    scenes: int = 12,
    compressed: int = 4,
    qualities: Sequence[int] = DEFAULT_QUALITIES,
    seed: int = 0,
    width: int = 512,
    height: int = 384,
) -> list[Path]:
    """Write ``scenes`` pristine PNGs and JPEG copies of the first ``compressed`` ones at each quality.

    Returns the written paths (see :func:`sample_names`). Writing again into the same folder
    rewrites the same files; a folder holding anything else is refused, so the sample never mixes
    with other images.
    """
    _check_args(scenes, compressed, qualities)
    out = Path(out_dir)
    names = sample_names(scenes, compressed, qualities)
    if out.exists() and not out.is_dir():
        raise DiversegError(f"{out} exists and is not a folder")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in names) if out.is_dir() else []
    if foreign:
        more = ", ..." if len(foreign) > 3 else ""
        raise DiversegError(f"{out} already holds other files ({', '.join(foreign[:3])}{more}); choose a new folder")
    paths = []
    for i in range(scenes):
        image = render_scene(seed * 1_000_003 + i, width, height)
        write_bytes_atomic(out / f"scene_{i:02d}.png", _encode(image, "PNG"))
        paths.append(out / f"scene_{i:02d}.png")
        for quality in qualities if i < compressed else ():
            write_bytes_atomic(out / f"scene_{i:02d}_q{quality}.jpg", _encode(image, "JPEG", quality=quality))
            paths.append(out / f"scene_{i:02d}_q{quality}.jpg")
    return sorted(paths, key=lambda p: names.index(p.name))

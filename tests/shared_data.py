"""Paths to the optional third-party data in ``../shared`` (skip markers when it is absent) and one image encoder.

A module of its own, not ``conftest.py``: the checkout's root ``conftest.py`` shares that module name, and a
worker process that imports a test module by name must find these helpers whichever comes first on its path.

Example:
    >>> encode(np.zeros((8, 8, 3), np.uint8), "PNG")[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_IMAGES = SHARED / "data" / "images"
DF2K_BASIS = SHARED / "data" / "df2k_basis"

needs_shared_images = pytest.mark.skipif(
    not (SHARED_IMAGES / "REFERENCE_BLOCKINESS.tsv").is_file(), reason=f"reference images not found at {SHARED_IMAGES}"
)
needs_df2k_basis = pytest.mark.skipif(
    not (DF2K_BASIS / "DF2K.txt").is_file(), reason=f"released DF2K basis not found at {DF2K_BASIS}"
)


def encode(rgb: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    """``rgb`` (an array or a PIL image) encoded as ``fmt`` with Pillow's ``save`` options."""
    image = rgb if isinstance(image := rgb, Image.Image) else Image.fromarray(rgb)
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()

"""Shared test paths and helpers: the third-party data in ``../shared`` and one image encoder; test-wide caches.

The whole test session (and every subprocess it starts, which inherits the environment) keeps the Hugging
Face and XDG caches in one temporary folder, deleted at exit: ``HF_HOME``, ``HF_DATASETS_CACHE``,
``HF_HUB_CACHE`` and ``XDG_CACHE_HOME`` are set below before anything imports ``datasets`` or
``huggingface_hub`` (both read them at import), so no test writes into ``~/.cache`` and no dataset a test
loads by a generic name (``diverseg``, ``I``) is served stale to a later run.

The data beside the checkout (``../shared/data``) is optional: tests that need it use the markers
below and are skipped, with the reason, where it is absent.

Example:
    >>> encode(np.zeros((8, 8, 3), np.uint8), "PNG")[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: The session's cache folder (see the module docstring); set before anything imports datasets or huggingface_hub.
TEST_CACHE = Path(tempfile.mkdtemp(prefix="diverseg-tests-cache-"))
os.environ.update({"HF_HOME": str(TEST_CACHE / "huggingface"),
                   "HF_DATASETS_CACHE": str(TEST_CACHE / "huggingface" / "datasets"),
                   "HF_HUB_CACHE": str(TEST_CACHE / "huggingface" / "hub"),
                   "XDG_CACHE_HOME": str(TEST_CACHE)})
atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (exact comparisons, fair timings), then restore the count."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

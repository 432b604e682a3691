"""Decode only the top rows of a PNG: what ``SRPairs(partial_decode=True)`` uses when a patch needs no more.

A PNG's rows are filtered and compressed in order, so inflating only the first ``rows`` rows' bytes and
undoing their filters (:func:`diverseg_hf.decode.png.decode_png` with ``rows``) gives exactly the rows of the
full decode (``tests/test_sr_partial.py`` checks this against :func:`diverseg_hf.decode.images.decode_rgb` on
the PNG colour types of the test zoo, generated and real images). Here, as in ``decode_rgb``, the pixel
limit, every chunk's CRC and the IEND marker are still verified for the whole file, and damage inside
the inflated part (a bad zlib stream, missing data, an unknown filter type) is still an error.

The trade-off, why it is opt-in: the compressed stream after the last needed row is not inflated, so
its Adler-32 checksum is not checked, and a stream that is bad *after* the needed rows while the chunk
CRCs match (an encoder bug; transmission damage breaks a CRC) is not seen.

What ``decode_png`` leaves to Pillow (palette, 1/2/4/16-bit, interlaced) and images with an EXIF
orientation (turned, their top rows are others) return None: decode those whole.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (6, 5), (9, 8, 7)).save(buf, "PNG")
    >>> png_top_rows(buf.getvalue(), 2).shape
    (2, 6, 3)
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..decode.containers import PNG_MAGIC
from ..decode.images import decode_rgb, open_checked
from ..decode.png import decode_png


def png_top_rows(data: bytes, rows: int) -> np.ndarray | None:
    """``decode_rgb(data)[:rows]`` of a PNG, inflating only those rows; None when ``data`` is not a PNG that
    can be cut this way. Raises :class:`~diverseg_hf.errors.ImageError` as ``decode_rgb`` would for an
    image over the pixel limit, a damaged chunk or damage in the rows decoded."""
    if not data.startswith(PNG_MAGIC):
        return None
    open_checked(data)  # the pixel limit, every chunk's CRC and IEND, as decode_rgb checks them
    rgb = decode_png(data, rows=rows)
    return None if rgb is None else np.ascontiguousarray(rgb)


def warm_up() -> None:
    """Load the compiled PNG un-filters (one per pixel size) in this process, so that forked DataLoader
    workers inherit them instead of each loading them on its first PNG.

    Example:
        >>> warm_up()
    """
    for mode in ("L", "LA", "RGB", "RGBA"):
        buf = io.BytesIO()
        Image.new(mode, (2, 2)).save(buf, "PNG")
        decode_rgb(buf.getvalue())

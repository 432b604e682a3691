"""Decode only the top rows of a PNG: what ``SRPairs(partial_decode=True)`` uses when a patch needs no more.

A PNG's rows are filtered and compressed in order, so Pillow's decoder, given a tile that ends at row
``rows``, stops there with exactly the rows a full decode gives (``tests/test_sr_partial.py`` checks this
against :func:`diverseg_hf.images.decode_rgb` on every PNG colour type and real images). The header
checks (pixel limit) and every chunk's CRC and the IEND marker are still verified for the whole file
(:func:`diverseg_hf.containers.check_container`), so a damaged or truncated file is still an error.

The trade-off, why it is opt-in: the compressed stream after the last needed row is not inflated, so a
stream that is bad *inside* chunks whose CRCs match (an encoder bug, not transmission damage, which the
CRCs catch), or whose zlib checksum is wrong, is not seen when the patch lies above the bad part.

Interlaced, animated or EXIF-oriented PNGs (and anything else) return None: decode those whole.

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

from ..containers import PNG_MAGIC, check_container
from ..images import pil_to_rgb, probe


def png_top_rows(data: bytes, rows: int) -> np.ndarray | None:
    """``decode_rgb(data)[:rows]`` of a PNG, decoding only those rows; None when ``data`` is not a PNG that
    can be cut this way. Raises :class:`~diverseg_hf.errors.ImageError` as ``decode_rgb`` would for a
    damaged header, chunk or the rows decoded."""
    if not data.startswith(PNG_MAGIC) or b"eXIf" in data:  # an orientation may turn the rows: decode whole
        return None
    info = probe(data)  # the pixel limit, from the header
    check_container(data)  # every chunk's CRC, and IEND
    im = Image.open(io.BytesIO(data))
    if info.format != "PNG" or len(im.tile) != 1 or im.info.get("interlace") or getattr(im, "n_frames", 1) != 1:
        return None
    tile = im.tile[0]
    im.tile = [tile._replace(extents=(0, 0, im.width, min(rows, im.height)))]
    return np.ascontiguousarray(pil_to_rgb(im)[:rows])

"""Decode only the top rows of a PNG: what ``SRPairs(partial_decode=True)`` uses when a patch needs no more.

A PNG's rows are filtered and compressed in order, so inflating only the first ``rows`` rows' bytes
and undoing their filters with the package's own compiled un-filter (:mod:`diverseg_hf.png`) gives
exactly the rows of the full decode (``tests/test_sr_partial.py`` checks this against
:func:`diverseg_hf.images.decode_rgb` on the PNG colour types of the test zoo, generated and real
images). Every chunk's CRC and the IEND marker are still verified for the whole file
(:func:`diverseg_hf.containers.check_container`), and damage inside the inflated part (a bad zlib
stream, missing data, an unknown filter type) is still an error.

The trade-off, why it is opt-in: the compressed stream after the last needed row is not inflated, so
its Adler-32 checksum is not checked, and a stream that is bad *after* the needed rows while the chunk
CRCs match (an encoder bug; transmission damage breaks a CRC) is not seen.

What :func:`diverseg_hf.png.decode_png` leaves to Pillow (palette, 1/2/4/16-bit, interlaced), images
with an ``eXIf`` chunk (an orientation turns the rows) and images over the pixel limit return None:
decode those whole.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (6, 5), (9, 8, 7)).save(buf, "PNG")
    >>> png_top_rows(buf.getvalue(), 2).shape
    (2, 6, 3)
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from ..containers import PNG_MAGIC, check_container, png_chunks
from ..errors import ImageError
from ..images import MAX_PIXELS, decode_rgb
from ..png import _SAMPLES, _UNFILTER  # the package's un-filter; decode_png itself has no row limit


def _inflate_start(stream: bytes, size: int) -> np.ndarray:
    """The first ``size`` bytes of a zlib stream; ImageError if they are damaged or missing."""
    try:
        raw = zlib.decompressobj().decompress(stream, size)
    except zlib.error as exc:
        raise ImageError("corrupt", f"PNG image data: {exc}") from exc
    if len(raw) < size:
        raise ImageError("truncated", f"PNG image data ends after {len(raw):,} of {size:,} bytes")
    return np.frombuffer(raw, np.uint8)


def png_top_rows(data: bytes, rows: int) -> np.ndarray | None:
    """``decode_rgb(data)[:rows]`` of a PNG, inflating only those rows; None when ``data`` is not a PNG that
    can be cut this way. Raises :class:`~diverseg_hf.errors.ImageError` as ``decode_rgb`` would for a
    damaged chunk or damage in the rows decoded."""
    if not data.startswith(PNG_MAGIC):
        return None
    check_container(data)  # every chunk's CRC, and IEND
    header, pieces = b"", []
    for _, tag, body, _ in png_chunks(data):
        if tag == b"IHDR":
            header = bytes(body[4:])
        elif tag == b"IDAT":
            pieces.append(body[4:])
        elif tag == b"eXIf":  # an orientation may turn the rows: decode whole
            return None
    if len(header) != 13:
        return None
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    bpp = _SAMPLES.get(header[9])
    if header[8] != 8 or header[12] != 0 or bpp is None or not 0 < width * height <= MAX_PIXELS:
        return None
    rows, row_bytes = min(rows, height), width * bpp
    raw = _inflate_start(b"".join(pieces), rows * (row_bytes + 1))
    pixels = np.empty((rows, row_bytes), np.uint8)
    bad = _UNFILTER[bpp](raw, rows, row_bytes, pixels)
    if bad >= 0:
        raise ImageError("corrupt", f"PNG row {bad}: unknown filter type {raw[bad * (row_bytes + 1)]}")
    pixels = pixels.reshape(rows, width, bpp)
    return np.ascontiguousarray(pixels[..., :3] if bpp >= 3 else np.repeat(pixels[..., :1], 3, axis=2))


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

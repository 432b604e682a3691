"""Strict JPEG decoding with libjpeg-turbo (through simplejpeg), exactly as OpenCV's ``imread`` reads JPEGs.

simplejpeg runs libjpeg-turbo with the settings OpenCV uses (accurate integer IDCT, fancy upsampling)
straight into a NumPy buffer, and in strict mode turns libjpeg's warnings into errors: "Corrupt JPEG
data: N extraneous bytes before marker", "premature end of data segment", "Premature end of JPEG
file" and the rest. Pillow and OpenCV print or ignore those warnings and return a damaged image.

CMYK and YCCK JPEGs are returned by libjpeg as CMYK samples (inverted for Adobe files, as libjpeg
hands them over) and converted with OpenCV's integer formula; the EXIF orientation tag of the first
``Exif`` APP1 segment is applied, as ``imread`` does.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (16, 8), (200, 10, 10)).save(buf, "JPEG", quality=95)
    >>> decode_jpeg(buf.getvalue()).shape
    (8, 16, 3)
    >>> decode_jpeg(buf.getvalue()[:-2])  # EOI marker cut
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ImageError: truncated: Premature end of JPEG file
"""

from __future__ import annotations

import numpy as np
import simplejpeg

from ..errors import ImageError
from .orientation import orient, orientation_of

#: The first bytes of every JPEG file: SOI marker and the start of the next marker.
JPEG_MAGIC = b"\xff\xd8\xff"

_SOS, _APP1 = 0xDA, 0xE1
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # markers without a length field
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def _image_error(exc: Exception) -> ImageError:
    text = str(exc).strip() or type(exc).__name__
    return ImageError("truncated" if "premature end of jpeg file" in text.lower() else "corrupt", text)


def _segments(data: bytes):
    """``(marker, segment)`` for each marker segment before the first scan (``segment`` without the length)."""
    pos, end = 2, len(data)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == _SOS:
            return
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield marker, data[pos + 4 : pos + 2 + length]
        pos += 2 + length


def jpeg_size(data: bytes) -> tuple[int, int, str]:
    """Height, width and libjpeg colour space (``"YCbCr"``, ``"Gray"``, ``"CMYK"``...) from the header.

    A frame of other than 8 bits per sample (12-bit, 16-bit lossless) is ``unsupported: N-bit JPEG``.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (16, 8)).save(buf, "JPEG")
        >>> jpeg_size(buf.getvalue())
        (8, 16, 'Gray')
    """
    for marker, segment in _segments(data):
        if marker in _SOF and segment[:1] not in (b"", b"\x08"):
            raise ImageError("unsupported", f"{segment[0]}-bit JPEG")  # libjpeg's 8-bit API reads 8-bit only
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except (ValueError, RuntimeError) as exc:
        raise _image_error(exc) from exc
    return height, width, colorspace


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG, 1 when absent or unreadable; reads only the markers before SOS.

    Example:
        >>> exif_orientation(b"\\xff\\xd8\\xff\\xda\\x00\\x02")
        1
    """
    for marker, segment in _segments(data):
        if marker == _APP1 and segment[:6] == b"Exif\0\0":
            return orientation_of(segment)
    return 1


def cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """CMYK samples as libjpeg returns them -> RGB, with OpenCV's integer formula ``k - (255 - c) * k / 256``.

    Example:
        >>> cmyk_to_rgb(np.array([[[0, 255, 128, 200]]], np.uint8)).tolist()
        [[[1, 200, 101]]]
    """
    k = cmyk[..., 3:4].astype(np.int32)
    cmy = cmyk[..., :3].astype(np.int32)
    return (k - (((255 - cmy) * k) >> 8)).astype(np.uint8)


def decode_jpeg(data: bytes, colorspace: str | None = None) -> np.ndarray:
    """Decode JPEG bytes to HxWx3 uint8 RGB, upright; any libjpeg warning or error raises ImageError.

    ``colorspace`` is the header's (from :func:`jpeg_size`), read again when not given. The result
    may be a non-contiguous view (when an EXIF orientation applies).
    """
    if colorspace is None:
        colorspace = jpeg_size(data)[2]
    try:
        if colorspace == "CMYK":
            rgb = cmyk_to_rgb(simplejpeg.decode_jpeg(data, "CMYK", strict=True))
        else:
            rgb = simplejpeg.decode_jpeg(data, "RGB", strict=True)
    except (ValueError, RuntimeError) as exc:
        raise _image_error(exc) from exc
    return orient(rgb, exif_orientation(data))

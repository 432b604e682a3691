"""Container damage that Pillow's decoders let through: PNG chunk CRCs and IEND, the GIF trailer, RIFF sizes.

Pillow skips the CRC of PNG image-data chunks and stops reading at the last image row, so a PNG with
a damaged CRC, a cut IEND chunk or a lost last byte decodes without complaint; a GIF missing its
trailer byte decodes too. These checks walk the container structure (no pixel is decoded) and raise
:class:`~diverseg_hf.errors.ImageError` for such files. Data after PNG's IEND or GIF's trailer is
ignored, as every decoder ignores it. JPEG is checked by libjpeg itself (see :mod:`diverseg_hf.decode.jpeg`);
TIFF, BMP and the other formats rely on Pillow's own truncation errors.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (4, 4)).save(buf, "PNG")
    >>> check_container(buf.getvalue())
    >>> check_container(buf.getvalue()[:-12])
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ImageError: truncated: PNG ends without an IEND chunk
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ..errors import ImageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGICS = (b"GIF87a", b"GIF89a")
_GIF_TRAILER = 0x3B


def png_chunks(data: bytes) -> Iterator[tuple[int, bytes, memoryview, int]]:
    """Walk a PNG's chunks up to and including IEND: ``(position, tag, tag + payload, stored CRC)`` each.

    Raises ImageError when a chunk is cut off or the file ends before IEND. CRCs are not checked here
    (:func:`check_png` does).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("L", (2, 2)).save(buf, "PNG")
        >>> [tag for _, tag, _, _ in png_chunks(buf.getvalue())]
        [b'IHDR', b'IDAT', b'IEND']
    """
    view = memoryview(data)
    pos, end = len(PNG_MAGIC), len(data)
    while pos + 8 <= end:
        length = int.from_bytes(view[pos : pos + 4], "big")
        tag = bytes(view[pos + 4 : pos + 8])
        stop = pos + 8 + length
        if stop + 4 > end:
            raise ImageError("truncated", f"PNG chunk {tag.decode('latin-1')!r} at byte {pos} is cut off")
        yield pos, tag, view[pos + 4 : stop], int.from_bytes(view[stop : stop + 4], "big")
        if tag == b"IEND":
            return
        pos = stop + 4
    raise ImageError("truncated", "PNG ends without an IEND chunk")


def check_png(data: bytes) -> None:
    """Every chunk complete and matching its CRC, up to and including IEND."""
    for pos, tag, body, crc in png_chunks(data):
        if zlib.crc32(body) != crc:
            raise ImageError("corrupt", f"PNG chunk {tag.decode('latin-1')!r} at byte {pos}: CRC mismatch")


def check_gif(data: bytes) -> None:
    """The file ends with the GIF trailer byte (a cut file loses it first)."""
    if data.rstrip(b"\0")[-1:] != bytes([_GIF_TRAILER]):
        raise ImageError("truncated", "GIF ends without its trailer byte")


def check_riff(data: bytes) -> None:
    """A RIFF (WebP) file holds at least as many bytes as its header declares."""
    declared = int.from_bytes(data[4:8], "little") + 8
    if len(data) < declared:
        raise ImageError("truncated", f"RIFF header declares {declared} bytes, the file has {len(data)}")


def check_container(data: bytes) -> None:
    """Raise ImageError for container damage in PNG, GIF and WebP files; other formats pass through."""
    if data.startswith(PNG_MAGIC):
        check_png(data)
    elif data[:6] in _GIF_MAGICS:
        check_gif(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        check_riff(data)

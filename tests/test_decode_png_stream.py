"""One rule for every PNG layout: the image data's zlib stream must be complete, with its Adler-32."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from image_zoo import textured
from PIL import Image
from test_png import chunk, png_file

from diverseg_hf.decode.containers import png_chunks
from diverseg_hf.decode.images import decode_rgb
from diverseg_hf.decode.png import check_image_data
from diverseg_hf.errors import ImageError


def pillow_png(mode: str) -> bytes:
    rgb = textured(24, 20, 3)
    im = Image.fromarray(rgb)
    if mode == "P":
        im = im.quantize(16)
    elif mode == "1":
        im = im.convert("1")
    elif mode == "I;16":
        im = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


LAYOUTS = {
    "palette": lambda: pillow_png("P"),
    "1-bit": lambda: pillow_png("1"),
    "16-bit": lambda: pillow_png("I;16"),
    "interlaced": lambda: png_file(textured(24, 20, 4), interlaced=True),
    "8-bit": lambda: pillow_png("RGB"),  # the package's own path, for the same damage
}


def restream(png: bytes, damage: str, pieces: int = 2) -> bytes:
    """``png`` with its image data re-compressed and damaged, in ``pieces`` IDAT chunks with valid CRCs."""
    chunks = [(tag, bytes(body[4:])) for _, tag, body, _ in png_chunks(png)]
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    if damage == "no-adler32":
        stream = zlib.compress(raw)[:-4]
    elif damage == "no-final-block":
        packer = zlib.compressobj()
        stream = packer.compress(raw) + packer.flush(zlib.Z_SYNC_FLUSH)
    else:
        stream = zlib.compress(raw)
    step = -(-len(stream) // pieces)
    idats = b"".join(chunk(b"IDAT", stream[i : i + step]) for i in range(0, len(stream), step))
    out = png[:8]
    for tag, body in chunks:
        if tag != b"IDAT":
            out += chunk(tag, body)
        elif idats:
            out, idats = out + idats, b""
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("damage", ["no-adler32", "no-final-block"])
def test_incomplete_zlib_stream_is_refused_in_every_layout(layout, damage):
    damaged = restream(LAYOUTS[layout](), damage)
    with pytest.raises(ImageError, match="PNG image data"):
        decode_rgb(damaged)
    assert cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR) is None  # libpng refuses it too


@pytest.mark.parametrize("layout", ["palette", "1-bit", "16-bit", "interlaced"])
@pytest.mark.parametrize("damage", ["no-adler32", "no-final-block"])
def test_pillow_alone_would_accept_the_damage(layout, damage):
    """Why the check exists: Pillow decodes these files without complaint."""
    Image.open(io.BytesIO(restream(LAYOUTS[layout](), damage))).load()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("pieces", [1, 3])
def test_complete_streams_still_decode_like_opencv(layout, pieces):
    png = restream(LAYOUTS[layout](), "none", pieces)
    check_image_data(png)
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decode_rgb(png), bgr[..., ::-1])


def test_a_wrong_checksum_is_refused_in_a_palette_png():
    chunks = [(tag, bytes(body[4:])) for _, tag, body, _ in png_chunks(pillow_png("P"))]
    stream = b"".join(body for tag, body in chunks if tag == b"IDAT")
    bad = stream[:-1] + bytes([stream[-1] ^ 1])
    png = b"\x89PNG\r\n\x1a\n" + b"".join(chunk(t, bad if t == b"IDAT" else b) for t, b in chunks)
    with pytest.raises(ImageError, match="corrupt: PNG image data"):
        decode_rgb(png)

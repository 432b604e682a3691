"""Valid images whose headers Pillow refuses decode as OpenCV reads them; a 12-bit JPEG is named as such."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from image_zoo import textured
from PIL import Image
from test_png import chunk

from diverseg_hf.decode.images import decode_gray, decode_rgb, probe
from diverseg_hf.errors import ImageError
from diverseg_hf.scoring.run import prepare_records
from diverseg_hf.sources.base import Record


def encoded(fmt: str, mode: str = "RGB", **options) -> bytes:
    im = Image.fromarray(textured(40, 56, 7))
    buf = io.BytesIO()
    im.convert(mode).save(buf, fmt, **options)
    return buf.getvalue()


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def with_text_chunk(tag: bytes, mode: str = "RGB") -> bytes:
    """A PNG with a 1.5 MB text chunk (inflated size) before its image data."""
    text = b"x" * 1_500_000
    payload = {b"tEXt": b"Comment\0" + text, b"zTXt": b"Comment\0\0" + zlib.compress(text),
               b"iTXt": b"Comment\0\x01\0\0\0" + zlib.compress(text)}[tag]
    png = encoded("PNG", mode)
    return png[:33] + chunk(tag, payload) + png[33:]


def with_app_segment(marker: int, body: bytes, mode: str = "RGB") -> bytes:
    """A JPEG whose first segment (JFIF APP0) is replaced by ``marker`` with a short ``body``."""
    jpeg = encoded("JPEG", mode, quality=90)
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:2] + segment(marker, body) + jpeg[app0_end:]


VALID = {
    "png-ztxt-1.5MB": lambda: with_text_chunk(b"zTXt"),
    "png-itxt-1.5MB": lambda: with_text_chunk(b"iTXt"),
    "png-palette-ztxt-1.5MB": lambda: with_text_chunk(b"zTXt", "P"),
    "jpeg-short-jfif": lambda: with_app_segment(0xE0, b"JFIF\0"),
    "jpeg-bare-jfif": lambda: with_app_segment(0xE0, b"JFIF"),
    "jpeg-short-adobe": lambda: with_app_segment(0xEE, b"Adobe"),
    "jpeg-gray-short-adobe": lambda: with_app_segment(0xEE, b"Adobe\0", "L"),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_pillow_refuses_decode_like_opencv(name):
    data = VALID[name]()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    np.testing.assert_array_equal(decode_rgb(data), bgr[..., ::-1])
    np.testing.assert_array_equal(decode_gray(data), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    info = probe(data)
    assert (info.width, info.height) == (bgr.shape[1], bgr.shape[0])


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_pillow_refuses_are_scored(name):
    rows, images = prepare_records([Record(key="k", origin="o", data=VALID[name]())], [])
    assert rows[0]["error"] is None and images[0] is not None


def test_pillow_does_refuse_them():
    """Why: without the workarounds, Pillow's header parser raises on each of them."""
    refused = 0
    for make in VALID.values():
        try:
            Image.open(io.BytesIO(make())).load()
        except Exception:
            refused += 1
    assert refused >= 5


def jpeg_12bit(width: int = 16, height: int = 8) -> bytes:
    """A flat 12-bit gray JPEG (extended sequential, SOF1), written from the specification."""
    one_code = bytes([1] + [0] * 15)  # one Huffman code of length 1: symbol 0 (DC diff 0, or AC end of block)
    blocks = (width // 8) * (height // 8)
    bits = "00" * blocks + "1" * (-2 * blocks % 8)
    scan = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    return (b"\xff\xd8" + segment(0xDB, b"\0" + bytes([1] * 64))
            + segment(0xC1, struct.pack(">BHHB", 12, height, width, 1) + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\x00")
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan + b"\xff\xd9")


@pytest.mark.parametrize("read", [decode_rgb, probe])
def test_12_bit_jpeg_is_named_unsupported(read):
    with pytest.raises(ImageError) as info:
        read(jpeg_12bit())
    assert info.value.reason == "unsupported: 12-bit JPEG"


def test_12_bit_jpeg_error_row():
    rows, _ = prepare_records([Record(key="k", origin="o", data=jpeg_12bit())], [])
    assert rows[0]["error"] == "unsupported: 12-bit JPEG"

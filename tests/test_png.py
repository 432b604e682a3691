"""The fast PNG path (diverseg_hf.decode.png) against Pillow, OpenCV and hand-built files with every row filter."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from image_zoo import textured
from PIL import Image
from shared_data import SHARED_IMAGES, encode, needs_shared_images

from diverseg_hf.decode.images import decode_rgb, pil_to_rgb
from diverseg_hf.decode.png import decode_png
from diverseg_hf.errors import ImageError

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # samples per pixel -> PNG colour type


def chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def filtered(rows: np.ndarray, bpp: int, kinds: list[int]) -> bytes:
    """PNG row filtering, written out from the specification: row y filtered with ``kinds[y]``."""
    out, up = bytearray(), np.zeros(rows.shape[1], np.int32)
    for row, kind in zip(rows.astype(np.int32), kinds):
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        if kind == 4:
            p = left + up - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
            guess = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        else:
            guess = [0 * row, left, up, (left + up) // 2][kind]
        out += bytes([kind]) + ((row - guess) % 256).astype(np.uint8).tobytes()
        up = row
    return bytes(out)


def png_file(pixels: np.ndarray, kinds: list[int] | None = None, stream: bytes | None = None,
             interlaced: bool = False, extra: bytes = b"") -> bytes:
    """An 8-bit PNG of HxWxC ``pixels`` (C = 1..4) with the given row filters (random when None)."""
    height, width, bpp = pixels.shape
    rng = np.random.default_rng(height * 1000 + width)
    if stream is None:
        if interlaced:  # Adam7: each pass's rows, filter 0
            passes = [pixels[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7]
            raw = b"".join(filtered(p.reshape(p.shape[0], -1), bpp, [0] * p.shape[0]) for p in passes if p.size)
        else:
            kinds = list(rng.integers(0, 5, height)) if kinds is None else kinds
            raw = filtered(pixels.reshape(height, -1), bpp, kinds)
        stream = zlib.compress(raw + extra)
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[bpp], 0, 0, int(interlaced))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """What imread gives for 8-bit gray / gray+alpha / RGB / RGBA samples: alpha dropped, gray expanded."""
    return pixels[..., :3] if pixels.shape[2] >= 3 else np.repeat(pixels[..., :1], 3, axis=2)


def pillow(data: bytes) -> np.ndarray:
    return pil_to_rgb(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_every_row_filter_decodes_to_the_pixels(bpp, seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 40, 2))
    pixels = rng.integers(0, 256, (height, width, bpp), dtype=np.uint8)
    if seed % 2:  # smooth content: the predictors' ties and small differences
        pixels = np.repeat(textured(height, width, seed)[..., :1], bpp, axis=2)
    for kinds in ([k] * height for k in range(5)):
        data = png_file(pixels, kinds)
        assert np.array_equal(decode_png(data), as_rgb(pixels))
        assert np.array_equal(decode_png(data), pillow(data))
    data = png_file(pixels)  # a random filter per row
    assert np.array_equal(decode_rgb(data), as_rgb(pixels))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_pillow_encoded_images_read_as_pillow_reads_them(mode):
    image = Image.fromarray(textured(67, 91, 2)).convert(mode)
    for options in ({}, {"optimize": True}, {"compress_level": 1}):
        data = encode(image, "PNG", **options)
        assert np.array_equal(decode_png(data), pillow(data))


@needs_shared_images
def test_reference_pngs_read_as_pillow_and_opencv_read_them():
    cv2 = pytest.importorskip("cv2")
    for path in sorted(SHARED_IMAGES.glob("*.png")):
        data = path.read_bytes()
        assert np.array_equal(decode_png(data), pillow(data)), path.name
        assert np.array_equal(decode_rgb(data), cv2.imread(str(path))[..., ::-1]), path.name


def test_layouts_left_to_pillow_still_decode_exactly():
    rgb = textured(37, 45, 5)
    palette = encode(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=50), "PNG")
    bilevel = encode(Image.fromarray(rgb[..., 0] > 99), "PNG")
    interlaced = png_file(rgb, interlaced=True)
    for data in (palette, bilevel, interlaced):
        assert decode_png(data) is None
        assert np.array_equal(decode_rgb(data), pillow(data))
    assert np.array_equal(decode_rgb(interlaced), rgb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(textured(20, 36, orientation)), "PNG", exif=exif)
    assert b"eXIf" in data
    expected = pil_to_rgb(Image.open(io.BytesIO(data)))
    assert np.array_equal(decode_png(data), expected)
    assert decode_png(data).shape == ((36, 20, 3) if orientation >= 5 else (20, 36, 3))


def test_unknown_filter_type_is_refused():
    pixels = textured(12, 10, 1)
    raw = bytearray(filtered(pixels.reshape(12, -1), 3, [1] * 12))
    raw[5 * 31] = 5  # row 5's filter byte
    with pytest.raises(ImageError, match="row 5: unknown filter type 5") as info:
        decode_png(png_file(pixels, stream=zlib.compress(bytes(raw))))
    assert info.value.reason.startswith("corrupt")


def test_damaged_image_data_with_valid_crcs_is_refused():
    pixels = textured(16, 16, 3)
    raw = filtered(pixels.reshape(16, -1), 3, [0] * 16)
    stream = zlib.compress(raw)
    short = png_file(pixels, stream=zlib.compress(raw[:-7]))
    cut = png_file(pixels, stream=stream[:-4])  # the Adler-32 checksum is missing
    wrong_sum = png_file(pixels, stream=stream[:-1] + bytes([stream[-1] ^ 1]))
    cases = {"short": (short, "truncated"), "cut": (cut, "truncated"), "checksum": (wrong_sum, "corrupt")}
    for name, (data, kind) in cases.items():
        with pytest.raises(ImageError) as info:
            decode_rgb(data)
        assert info.value.reason.startswith(kind), (name, info.value.reason)


def test_image_data_beyond_the_last_row_is_ignored_like_pillow():
    pixels = textured(9, 14, 4)
    data = png_file(pixels, extra=b"\0" * 50)
    assert np.array_equal(decode_png(data), pixels)
    assert np.array_equal(pillow(data), pixels)


def test_gamma_and_significant_bits_chunks_change_no_pixel_like_opencv():
    cv2 = pytest.importorskip("cv2")
    rgb = textured(30, 40, 9)
    plain = png_file(rgb)
    data = plain[:33] + chunk(b"gAMA", struct.pack(">I", 22727)) + chunk(b"sBIT", bytes([5, 6, 5])) + plain[33:]
    assert np.array_equal(decode_rgb(data), rgb)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], rgb)


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
def test_top_rows_equal_the_full_decodes(bpp):
    pixels = np.repeat(textured(53, 29, bpp)[..., :1], bpp, axis=2) if bpp < 3 else textured(53, 29, bpp)
    pixels = np.dstack([pixels, pixels[..., :1]]) if bpp == 4 else pixels
    data = png_file(pixels)
    full = decode_png(data)
    for rows in (0, 1, 7, 52, 53, 99):
        assert np.array_equal(decode_png(data, rows=rows), full[:rows])


def test_top_rows_skip_what_they_do_not_read_and_turned_images():
    pixels = textured(40, 30, 6)
    raw = filtered(pixels.reshape(40, -1), 3, [4] * 40)
    stream = zlib.compress(raw)
    damaged_tail = png_file(pixels, stream=stream[:-1] + bytes([stream[-1] ^ 1]))  # a wrong checksum only
    assert np.array_equal(decode_png(damaged_tail, rows=10), pixels[:10])  # the trade-off of rows=
    with pytest.raises(ImageError):
        decode_png(damaged_tail)
    short = png_file(pixels, stream=zlib.compress(raw[: 5 * 91]))
    with pytest.raises(ImageError, match="ends after"):
        decode_png(short, rows=10)
    exif = Image.Exif()
    exif[0x0112] = 6
    assert decode_png(encode(Image.fromarray(pixels), "PNG", exif=exif), rows=3) is None


def with_crcs_fixed(data: bytes) -> bytes:
    """Recompute every chunk's CRC (so that only zlib and the PNG rules can notice damage)."""
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        body = data[pos + 4 : pos + 8 + length]
        if len(body) < length + 4:
            return bytes(out + data[pos:])
        out += data[pos : pos + 4] + body + struct.pack(">I", zlib.crc32(body))
        pos += 12 + length
    return bytes(out + data[pos:])


@pytest.mark.parametrize("seed", range(300))
def test_damaged_files_with_valid_crcs_are_refused_or_read_as_pillow_reads_them(seed):
    """Random bit flips, cuts and inserted bytes anywhere, CRCs recomputed: an ImageError (never another
    exception), or Pillow's pixels where Pillow reads the file too."""
    rng = np.random.default_rng(seed)
    bpp = int(rng.integers(1, 5))
    height, width = (int(v) for v in rng.integers(1, 24, 2))
    data = bytearray(png_file(rng.integers(0, 256, (height, width, bpp), dtype=np.uint8)))
    for _ in range(int(rng.integers(1, 4))):
        where, how = int(rng.integers(8, len(data))), int(rng.integers(3))
        if how == 0:
            data[where] ^= 1 << int(rng.integers(8))
        elif how == 1:
            del data[where : where + int(rng.integers(1, 9))]
        else:
            data[where:where] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    data = with_crcs_fixed(bytes(data))
    try:
        ours = decode_rgb(data, max_pixels=10**6)
    except ImageError:
        return
    try:
        theirs = pillow(data)
    except Exception:  # Pillow refuses something we read: only acceptable when we read it exactly
        theirs = None
    if theirs is not None:
        assert np.array_equal(ours, theirs)

"""Strict decoding: every damage class a decoder can report is an ImageError, generated here byte by byte.

Valid files keep reading exactly as OpenCV's ``imread`` reads them (tests/test_images.py checks the zoo
and the reference images); here each damage class is made from good files: JPEG entropy data
overwritten, PNG CRCs broken or kept, IEND cut, truncation at many offsets, GIF/WebP/TIFF/BMP damage.
"""

from __future__ import annotations

import io
import math
import random
import struct
import zlib

import numpy as np
import pytest
from image_zoo import DAMAGED, MORE_VALID, entropy_segment, textured, write_zoo, zoo_bytes
from PIL import Image, ImageFile
from shared_data import encode

from diverseg_hf import score_image
from diverseg_hf.decode.images import MAX_PIXELS, decode_gray, decode_rgb, probe
from diverseg_hf.errors import ImageError

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (dev extra) is the reference decoder")


def pillow_decodes_silently(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data)).load()
    except Exception:
        return False
    return True


def opencv(data: bytes) -> np.ndarray | None:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else bgr[..., ::-1]


def assert_refused(data: bytes, kinds=("corrupt", "truncated")) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_rgb(data)
    assert info.value.kind in kinds, info.value.reason
    result = score_image(data)  # the pipeline's per-image path: an error row, never a value
    assert result.error and math.isnan(result.value) and result.reason == info.value.reason
    return info.value


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return encode(textured(120, 160, 11), "JPEG", quality=90)


@pytest.fixture(scope="module")
def png() -> bytes:
    # compress_level 0 and a large image give several IDAT chunks
    return encode(textured(300, 320, 12), "PNG", compress_level=0)


# --- JPEG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("bad Huffman code", lambda d, m: d[:m] + b"\xff\x00" * 4 + d[m + 8 :]),
        ("stray marker", lambda d, m: d[:m] + b"\xff\xd0" + d[m + 2 :]),
        ("inserted bytes", lambda d, m: d[:m] + b"junk" + d[m:]),
        ("scan cut, EOI kept", lambda d, m: d[:m] + b"\xff\xd9"),
    ],
)
def test_jpeg_entropy_damage_pillow_misses_is_an_error(jpeg, name, damage):
    start, end = entropy_segment(jpeg)
    data = damage(jpeg, (start + end) // 2)
    assert pillow_decodes_silently(data), name  # the class this rule exists for
    error = assert_refused(data)
    assert "Corrupt JPEG data" in error.reason


def test_random_jpeg_overwrites_are_refused_or_read_exactly_like_opencv(jpeg):
    """libjpeg reports most overwrites; where it reports nothing, the pixels are OpenCV's pixels."""
    start, end = entropy_segment(jpeg)
    rng = random.Random(7)
    refused = 0
    for _ in range(60):
        data = bytearray(jpeg)
        pos = rng.randrange(start, end - 8)
        data[pos : pos + 8] = bytes(rng.randrange(256) for _ in range(8))
        try:
            rgb = decode_rgb(bytes(data))
        except ImageError as exc:
            assert exc.kind in ("corrupt", "truncated"), exc.reason
            refused += 1
            continue
        assert np.array_equal(rgb, opencv(bytes(data)))
    assert refused >= 20  # about 60% in practice; a decoder that ignores warnings refuses almost none


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5, 0.8, 0.95, 0.999])
def test_truncated_jpeg_at_any_offset(jpeg, fraction):
    assert_refused(jpeg[: int(len(jpeg) * fraction)])


def test_jpeg_without_eoi(jpeg):
    assert assert_refused(jpeg[:-2]).kind == "truncated"


@pytest.mark.parametrize("case", ["cmyk_jpeg", "gray_jpeg", "progressive_jpeg", "restart_jpeg"])
def test_damaged_jpeg_variants(case):
    data = zoo_bytes()[case]
    assert_refused(data[: len(data) * 2 // 3])


def test_jpeg_pixel_limit_is_read_from_the_header(jpeg):
    sof = jpeg.index(b"\xff\xc0")
    huge = jpeg[: sof + 5] + struct.pack(">HH", 60000, 60000) + jpeg[sof + 9 :]
    with pytest.raises(ImageError) as info:
        decode_rgb(huge)
    assert info.value.reason == (
        f"too-large: 60000x60000 = 3,600,000,000 px exceeds the pixel limit of {MAX_PIXELS:,} px"
    )


# --- PNG ----------------------------------------------------------------------------------------


def chunks(png: bytes) -> list[tuple[bytes, int, int]]:
    """(tag, offset, payload length) of every chunk."""
    out, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        out.append((png[pos + 4 : pos + 8], pos, length))
        pos += 12 + length
    return out


def with_crc_fixed(data: bytearray, offset: int, length: int) -> bytes:
    crc = zlib.crc32(bytes(data[offset + 4 : offset + 8 + length]))
    data[offset + 8 + length : offset + 12 + length] = struct.pack(">I", crc)
    return bytes(data)


def test_png_has_several_idat_chunks(png):
    assert sum(tag == b"IDAT" for tag, _, _ in chunks(png)) >= 3


@pytest.mark.parametrize("which", [0, 1, -1])
def test_png_idat_byte_flipped_crc_broken(png, which):
    _, offset, length = [c for c in chunks(png) if c[0] == b"IDAT"][which]
    data = bytearray(png)
    data[offset + 8 + length // 2] ^= 0x10
    error = assert_refused(bytes(data))
    assert "CRC mismatch" in error.reason


def test_png_idat_byte_flipped_crc_kept_is_refused_or_identical(png):
    """With a matching CRC only zlib can notice: each flip is refused, or leaves the pixels unchanged."""
    good = decode_rgb(png)
    rng = random.Random(3)
    idats = [c for c in chunks(png) if c[0] == b"IDAT"]
    refused = 0
    for _ in range(30):
        _, offset, length = rng.choice(idats)
        data = bytearray(png)
        data[offset + 8 + rng.randrange(length)] ^= 1 << rng.randrange(8)
        try:
            rgb = decode_rgb(with_crc_fixed(data, offset, length))
        except ImageError:
            refused += 1
            continue
        assert np.array_equal(rgb, good)
    assert refused >= 1


@pytest.mark.parametrize("tag", [b"IHDR", b"IDAT", b"IEND"])
def test_png_crc_field_damaged_alone(png, tag):
    _, offset, length = next(c for c in chunks(png) if c[0] == tag)
    data = bytearray(png)
    data[offset + 8 + length] ^= 0x01
    assert_refused(bytes(data))


def test_png_without_iend(png):
    assert pillow_decodes_silently(png[:-12])
    assert assert_refused(png[:-12]).reason == "truncated: PNG ends without an IEND chunk"


@pytest.mark.parametrize("cut", [1, 4, 12, 13, 100, 5000, 50000, 150000])
def test_truncated_png_at_any_offset(png, cut):
    assert_refused(png[:-cut])


def test_data_after_iend_is_ignored_like_every_decoder(png):
    assert np.array_equal(decode_rgb(png + b"trailing"), opencv(png))


# --- GIF, WebP, TIFF, BMP -----------------------------------------------------------------------


def other_formats() -> dict[str, bytes]:
    rgb = textured(120, 150, 13)
    return {
        "gif": encode(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=64), "GIF"),
        "webp": encode(rgb, "WEBP", quality=80),
        "webp_lossless": encode(rgb, "WEBP", lossless=True),
        "tiff": encode(rgb, "TIFF"),
        "tiff_deflate": encode(rgb, "TIFF", compression="tiff_deflate"),
        "bmp": encode(rgb, "BMP"),
    }


@pytest.mark.parametrize("fmt", sorted(other_formats()))
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7, 0.99])
def test_truncated_other_formats(fmt, fraction):
    data = other_formats()[fmt]
    assert_refused(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fmt", sorted(set(other_formats()) - {"bmp"}))  # BMP's last byte is row padding
def test_last_byte_cut(fmt):
    assert_refused(other_formats()[fmt][:-1])


def test_riff_size_larger_than_the_file():
    data = bytearray(other_formats()["webp"])
    data[4:8] = struct.pack("<I", len(data) + 100)
    assert_refused(bytes(data))


def test_deflate_tiff_damage_is_refused_or_identical():
    """TIFF deflate strips carry a zlib checksum: flips are refused, or leave the pixels unchanged."""
    data = other_formats()["tiff_deflate"]
    good = decode_rgb(data)
    refused = 0
    for pos in range(200, len(data) - 300, (len(data) - 500) // 15):
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        try:
            rgb = decode_rgb(bytes(damaged))
        except ImageError:
            refused += 1
            continue
        assert np.array_equal(rgb, good) or np.array_equal(rgb, opencv(bytes(damaged)))
    assert refused >= 5


# --- limits and settings ------------------------------------------------------------------------


def test_pixel_limit_message_quotes_the_limit_applied():
    bomb = zoo_bytes()["bomb_header"]  # 60000 x 60000: Pillow itself refuses it before we see the size
    for call in (decode_rgb, decode_gray, probe):
        with pytest.raises(ImageError) as info:
            call(bomb)
        assert info.value.reason == f"too-large: 3,600,000,000 px exceeds the pixel limit of {MAX_PIXELS:,} px"
    png = encode(np.zeros((200, 300, 3), np.uint8), "PNG")
    with pytest.raises(ImageError) as info:
        decode_rgb(png, max_pixels=59_999)
    assert info.value.reason == "too-large: 300x200 = 60,000 px exceeds the pixel limit of 59,999 px"


def test_default_pixel_limit_is_the_documented_one():
    assert MAX_PIXELS == 89_478_485


def test_load_truncated_images_setting_is_refused(monkeypatch, png):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError, match="LOAD_TRUNCATED_IMAGES"):
        decode_rgb(png[:-5000])


def test_score_phase_records_damage_as_error_rows(tmp_path):
    """The pipeline's first phase: each damaged file is an error row with its reason, never a value."""
    from diverseg_hf.score import score
    from diverseg_hf.storage import ScoreTable

    paths = write_zoo(tmp_path / "src", extended=True)
    score(str(tmp_path / "src"), tmp_path / "scores", progress=False)
    rows = {r["origin"]: r for r in ScoreTable.open(tmp_path / "scores").read().to_pylist()}
    assert len(rows) == len(paths)
    for case in DAMAGED:
        row = rows[paths[case].name]
        assert row["blockiness"] is None and row["error"] == score_image(paths[case]).reason
        assert row["error"].split(":")[0] in ("corrupt", "truncated")
    for case in MORE_VALID:
        assert rows[paths[case].name]["error"] is None


def test_a_limit_above_pillows_own_names_pillows_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow hard-refuses above 2000 px
    png = encode(np.zeros((100, 100, 3), np.uint8), "PNG")
    with pytest.raises(ImageError, match="too-large: over Pillow's decompression-bomb limit"):
        decode_rgb(png)  # 10,000 px: under our limit, over Pillow's
    with pytest.raises(ImageError) as info:
        decode_rgb(png, max_pixels=5000)
    assert info.value.reason == "too-large: 10,000 px exceeds the pixel limit of 5,000 px"

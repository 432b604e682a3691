"""Partial PNG decoding: the same rows as the full strict decode, damage still an error, SRPairs unchanged."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from image_zoo import textured, zoo_bytes
from PIL import Image
from shared_data import SHARED_IMAGES, needs_shared_images
from sr_folder import encode, write_published_folder

from diverseg_hf.decode.images import decode_rgb
from diverseg_hf.errors import DiversegError, ImageError
from diverseg_hf.sr.partial import png_top_rows

torch = pytest.importorskip("torch")

from diverseg_hf.sr import SRPairs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

PNG_CASES = ["rgb_png", "rgba_png", "gray_png", "la_png", "flat_png"]
WHOLE_CASES = ["palette_png", "gray16_png", "rgb16_png", "exif_rotated_png"]  # left to the full decode


def _rows_match(data: bytes, rng: np.random.Generator, count: int = 6) -> None:
    full = decode_rgb(data)
    for rows in {1, full.shape[0], *rng.integers(1, full.shape[0] + 1, count).tolist()}:
        got = png_top_rows(data, int(rows))
        assert got is not None and got.flags.c_contiguous
        np.testing.assert_array_equal(got, full[:rows])


@pytest.mark.parametrize("case", PNG_CASES)
def test_top_rows_equal_the_full_decode(case):
    _rows_match(zoo_bytes()[case], np.random.default_rng(1))


def test_top_rows_of_large_and_many_chunked_pngs():
    rng = np.random.default_rng(2)
    for seed in range(6):
        rgb = textured(int(rng.integers(200, 400)), int(rng.integers(200, 500)), seed=seed)
        buf = io.BytesIO()
        image = Image.fromarray(rgb if seed % 3 else rgb[..., 0])  # gray too
        image.save(buf, "PNG", compress_level=int(rng.integers(0, 10)))
        _rows_match(buf.getvalue(), rng)


@needs_shared_images
def test_top_rows_of_real_images():
    rng = np.random.default_rng(3)
    for path in sorted(SHARED_IMAGES.glob("*.png")):
        _rows_match(path.read_bytes(), rng, count=3)


def test_what_is_decoded_whole_or_refused():
    zoo = zoo_bytes()
    for case in WHOLE_CASES:
        assert png_top_rows(zoo[case], 5) is None, case
    assert png_top_rows(zoo["jpeg_444"], 5) is None  # not a PNG
    with pytest.raises(ImageError):
        png_top_rows(zoo["png_bad_crc"], 5)
    with pytest.raises(ImageError):
        png_top_rows(zoo["png_no_iend"], 5)


def _with_idat(data: bytes, idat: bytes) -> bytes:
    """``data`` with its IDAT chunks replaced by one chunk holding ``idat`` (with a correct CRC)."""
    pos, head, tail = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos : pos + 12 + length]
        if kind == b"IDAT":
            head = head or data[:pos]
        elif head:
            tail += chunk
        pos += 12 + length
    return head + struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat)) + tail


def test_damage_in_the_rows_is_an_error_and_past_them_is_the_documented_trade_off():
    rgb = textured(64, 48, seed=4)
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)  # filter 0 rows
    good = encode(rgb, "PNG")
    ok = zlib.compress(raw, 0)  # stored blocks: a byte of the stream is a byte of a row
    np.testing.assert_array_equal(decode_rgb(_with_idat(good, ok)), rgb)
    stream = bytearray(ok)
    stream[-2] ^= 0xFF  # the zlib checksum at the end: CRCs match, the full decode sees it
    damaged = _with_idat(good, bytes(stream))
    with pytest.raises(ImageError):
        decode_rgb(damaged)
    np.testing.assert_array_equal(png_top_rows(damaged, 10), rgb[:10])  # not seen above it: opt-in
    stream = bytearray(zlib.compress(raw, 0))
    stream[7] = 9  # row 0's filter type becomes invalid: inside the rows asked for
    with pytest.raises(ImageError):
        png_top_rows(_with_idat(good, bytes(stream)), 10)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    records = []
    for i in range(12):
        fmt, ext = ("JPEG", "jpg") if i % 3 == 0 else ("PNG", "png")
        records.append((f"img{i:02d}", encode(textured(40 + 3 * i, 36 + 2 * i, seed=i), fmt), ext))
    records.append(("small", encode(textured(12, 40, seed=50)), "png"))
    records.append(("broken", zoo_bytes()["png_bad_crc"], "png"))
    return write_published_folder(tmp_path_factory.mktemp("partial"), records, shards=3)


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
@pytest.mark.parametrize("workers", [0, 2])
def test_srpairs_partial_decode_gives_the_same_pairs(folder, fmt, workers):
    def pairs(**kw):
        p = SRPairs.from_folder(folder, "I", format=fmt, scale=4, patch_size=32, pairs_per_image=2, **kw)
        loader = torch.utils.data.DataLoader(p, batch_size=3, num_workers=workers)
        seen = []
        for batch in loader:
            p.consumed(batch)
            seen += [(k, lr, hr) for k, lr, hr in zip(batch["key"], batch["lr"], batch["hr"])]
        return seen, p.skipped

    (whole, skipped), (cut, skipped_cut) = pairs(), pairs(partial_decode=True)
    assert len(whole) == len(cut) == 24 and skipped == skipped_cut == {"too_small": 1, "bad": 1}
    for (k1, lr1, hr1), (k2, lr2, hr2) in zip(whole, cut):
        assert k1 == k2 and torch.equal(lr1, lr2) and torch.equal(hr1, hr2)


def test_partial_decode_needs_lr_from_patch(folder):
    with pytest.raises(DiversegError, match="partial_decode"):
        SRPairs.from_folder(folder, "I", partial_decode=True, lr_from="image")

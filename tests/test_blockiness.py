"""Blockiness: exactness against the released scorer's values, a loop reference, and edge cases."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from image_zoo import DAMAGED, INVALID, VALID, textured, write_zoo, zoo_bytes
from PIL import Image
from shared_data import SHARED_IMAGES, needs_shared_images

from diverseg_hf import blockiness, blockiness_batch, score_image
from diverseg_hf.decode.images import decode_gray
from diverseg_hf.errors import ImageError
from diverseg_hf.quality.blockiness import block_counts, blockiness_of_gray, iter_blockiness

needs_shared = needs_shared_images


def reference_values() -> dict[str, float]:
    lines = (SHARED_IMAGES / "REFERENCE_BLOCKINESS.tsv").read_text().splitlines()
    return {name: float(value) for name, value in (line.split("\t") for line in lines if line)}


def loop_blockiness(gray: np.ndarray) -> float:
    """Straightforward translation of REFERENCE.md section 1: explicit DCT sums and block loops."""
    height, width = gray.shape

    def usable(n):
        m = n % 8
        return n - m if m >= 4 else n - m - 8

    hb, wb = usable(height) // 8, usable(width) // 8

    def alpha(k):
        return math.sqrt(1 / 8) if k == 0 else math.sqrt(2 / 8)

    def dct_block(block):
        out = np.zeros((8, 8))
        for u in range(8):
            for v in range(8):
                total = 0.0
                for x in range(8):
                    for y in range(8):
                        total += (
                            block[x, y]
                            * math.cos((2 * x + 1) * u * math.pi / 16)
                            * math.cos((2 * y + 1) * v * math.pi / 16)
                        )
                out[u, v] = alpha(u) * alpha(v) * total
        return out

    def mean_v(img):
        coef = [[dct_block(img[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8].astype(float)) for c in range(wb)]
                for r in range(hb)]
        v_avg = np.zeros((8, 8))
        for u in range(8):
            for v in range(8):
                total = 0.0
                for r in range(2, hb - 1):
                    for c in range(2, wb - 1):
                        a = coef[r][c][u, v]
                        h = coef[r][c - 1][u, v] + coef[r][c + 1][u, v] - 2 * a
                        w = coef[r - 1][c][u, v] + coef[r + 1][c][u, v] - 2 * a
                        total += math.sqrt(h * h + w * w)
                v_avg[u, v] = total / ((hb - 2) * (wb - 2))
        return v_avg

    v_aligned = mean_v(gray)
    v_shifted = mean_v(gray[4:, 4:])
    return float(sum(abs((v_shifted[u, v] - v_aligned[u, v]) / v_aligned[u, v])
                     for u in range(8) for v in range(8)))


@needs_shared
def test_matches_released_scorer_on_all_reference_images():
    values = reference_values()
    assert len(values) == 37
    for name, expected in values.items():
        got = blockiness(SHARED_IMAGES / name)
        assert abs(got - expected) <= 1e-9 * abs(expected), (name, got, expected)


@pytest.mark.parametrize("seed", range(6))
def test_fast_kernel_equals_loop_reference_on_random_images(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(36, 80, size=2)
    gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
    if seed % 2:  # smoother content, like photographs
        gray = decode_gray(textured(int(height), int(width), seed))
    expected = loop_blockiness(gray)
    assert blockiness_of_gray(gray).value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("shape", [(44, 301), (52, 203), (37, 517), (300, 45)])
def test_fast_kernel_equals_loop_reference_on_wide_and_tall_images(shape):
    """Many block columns: the SIMD loops over blocks run full vectors and remainders."""
    gray = decode_gray(textured(*shape, seed=sum(shape)))
    assert blockiness_of_gray(gray).value == pytest.approx(loop_blockiness(gray), rel=1e-12)


def test_kernel_reads_views_and_copies_alike():
    """A non-contiguous or offset view gives the value of its contiguous copy (the kernel reads 8-byte words)."""
    gray = decode_gray(textured(90, 130, seed=4))
    view = gray[3:80, 5:121]
    assert blockiness_of_gray(view).value == blockiness_of_gray(np.ascontiguousarray(view)).value
    flipped = gray[::-1, ::-1]
    assert blockiness_of_gray(flipped).value == blockiness_of_gray(flipped.copy()).value


@needs_shared
def test_fast_kernel_equals_loop_reference_on_real_crop():
    gray = decode_gray(SHARED_IMAGES / "lenna_q75.jpg")[100:180, 200:268]
    assert blockiness_of_gray(gray).value == pytest.approx(loop_blockiness(gray), rel=1e-12)


def test_block_count_margins():
    # margin m = n % 8: m >= 4 keeps n - m pixels, m < 4 drops another block
    assert block_counts(36, 43) == (4, 4)
    assert block_counts(44, 43) == (5, 4)
    assert block_counts(47, 48) == (5, 5)
    assert block_counts(480, 500) == (59, 62)


@pytest.mark.parametrize("size", [(35, 100), (100, 35), (1, 1), (20, 20)])
def test_too_small_is_undefined_with_reason(size):
    gray = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    result = blockiness_of_gray(gray)
    assert math.isnan(result.value) and not result.error
    assert "too small" in result.reason


def test_smallest_defined_size():
    gray = np.random.default_rng(1).integers(0, 256, (36, 36), dtype=np.uint8)
    assert blockiness_of_gray(gray).ok
    assert blockiness_of_gray(gray).value == pytest.approx(loop_blockiness(gray), rel=1e-12)


def test_flat_image_is_undefined():
    result = score_image(np.full((64, 64, 3), 77, np.uint8))
    assert math.isnan(result.value) and "flat" in result.reason and not result.error


def test_all_input_kinds_agree(tmp_path):
    rgb = textured(70, 90, 3)
    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    data = path.read_bytes()
    values = [
        blockiness(path),
        blockiness(str(path)),
        blockiness(data),
        blockiness(Image.open(io.BytesIO(data))),
        blockiness(rgb),
        blockiness(decode_gray(rgb)),
    ]
    assert len(set(values)) == 1 and math.isfinite(values[0])


@pytest.mark.parametrize("case", sorted(INVALID | DAMAGED))
def test_invalid_files_raise_image_error_and_batch_records_them(case):
    data = zoo_bytes()[case]
    with pytest.raises(ImageError):
        blockiness(data)
    result = score_image(data)
    assert result.error and math.isnan(result.value) and result.reason


def test_error_kinds():
    data = zoo_bytes()
    assert score_image(data["empty"]).reason.startswith("empty")
    assert score_image(data["text_as_png"]).reason.startswith("corrupt")
    assert score_image(data["truncated_jpeg"]).reason.startswith("truncated")
    assert score_image(data["bomb_header"]).reason.startswith("too-large")


def test_pixel_limit_is_checked_before_decoding():
    big = io.BytesIO()
    Image.new("RGB", (300, 200)).save(big, "PNG")
    with pytest.raises(ImageError, match="too-large"):
        decode_gray(big.getvalue(), max_pixels=300 * 200 - 1)
    assert decode_gray(big.getvalue(), max_pixels=300 * 200).shape == (200, 300)


def test_batch_never_dies_and_keeps_order(tmp_path):
    paths = write_zoo(tmp_path)
    ordered = [paths[c] for c in sorted(paths)]
    serial = blockiness_batch(ordered)
    parallel = list(iter_blockiness(ordered, workers=2))
    assert len(serial) == len(ordered)
    for case, a, b in zip(sorted(paths), serial, parallel):
        assert a.reason == b.reason
        assert (math.isnan(a.value) and math.isnan(b.value)) or a.value == b.value
        if case in INVALID:
            assert a.error
    defined = {c for c, r in zip(sorted(paths), serial) if r.ok}
    assert defined == set(VALID) - {"tiny_1px", "flat_png"}


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_below_one_is_a_parameter_error(workers):
    from diverseg_hf.errors import ParameterError

    with pytest.raises(ParameterError, match=r"^workers must be at least 1"):
        list(iter_blockiness([b""], workers=workers))

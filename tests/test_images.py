"""The decode path: OpenCV imread semantics reproduced with Pillow, bit for bit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from image_zoo import DAMAGED, INVALID, MORE_VALID, VALID, write_zoo, zoo_bytes
from PIL import Image
from shared_data import SHARED_IMAGES

from diverseg_hf.decode.images import decode_gray, decode_rgb, find_image_files, probe, rgb_to_gray
from diverseg_hf.errors import ImageError


def integer_gray(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit BGR2GRAY in plain integer arithmetic (15-bit weights, round half up)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 9798 + g * 19235 + b * 3735 + (1 << 14)) >> 15).astype(np.uint8)


def test_gray_weights_sum_to_one_in_fixed_point():
    assert 9798 + 19235 + 3735 == 1 << 15


def test_rgb_to_gray_matches_integer_formula_on_every_colour():
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    assert np.array_equal(rgb_to_gray(rgb), integer_gray(rgb))


def test_rgb_to_gray_matches_opencv_on_every_colour():
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (dev extra) cross-checks the decode path")
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    assert np.array_equal(rgb_to_gray(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


@pytest.mark.parametrize("case", sorted(VALID | MORE_VALID))
def test_valid_zoo_images_decode_like_opencv_imread(case):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (dev extra) cross-checks the decode path")
    data = zoo_bytes()[case]
    expected_bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    rgb = decode_rgb(data)
    assert rgb.dtype == np.uint8 and rgb.shape == expected_bgr.shape
    assert np.array_equal(rgb[..., ::-1], expected_bgr)
    assert np.array_equal(decode_gray(data), cv2.cvtColor(expected_bgr, cv2.COLOR_BGR2GRAY))


@pytest.mark.skipif(not SHARED_IMAGES.exists(), reason=f"{SHARED_IMAGES} not found")
def test_real_images_decode_like_opencv_imread():
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless (dev extra) cross-checks the decode path")
    files = find_image_files([SHARED_IMAGES])
    assert len(files) == 37
    for path in files:
        expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        assert np.array_equal(decode_gray(path), expected), path


def test_exif_orientation_is_applied():
    rgb = decode_rgb(zoo_bytes()["exif_rotated_jpeg"])
    assert rgb.shape == (72, 40, 3)  # stored 72 wide x 40 high, orientation 6 turns it upright


def test_sixteen_bit_keeps_high_byte():
    gray16 = np.array([[0x1234, 0xFFFF], [0x00FF, 0x8000]], np.uint16)
    buf = io.BytesIO()
    Image.fromarray(gray16).save(buf, "PNG")
    assert decode_gray(buf.getvalue()).tolist() == [[0x12, 0xFF], [0x00, 0x80]]


def test_alpha_is_dropped_not_composited():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200  # red, fully transparent
    assert decode_rgb(Image.fromarray(rgba, "RGBA"))[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("case", sorted(INVALID | DAMAGED))
def test_invalid_inputs_raise(case):
    with pytest.raises(ImageError) as info:
        decode_rgb(zoo_bytes()[case])
    assert info.value.kind in {"empty", "corrupt", "truncated", "too-large"}


def test_probe_reads_header_only():
    info = probe(zoo_bytes()["rgb_png"])
    assert (info.width, info.height, info.format) == (91, 67, "PNG")
    with pytest.raises(ImageError, match="too-large"):
        probe(zoo_bytes()["bomb_header"])


def test_bad_arrays_are_refused():
    with pytest.raises(ImageError, match="uint8"):
        decode_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="shape"):
        decode_rgb(np.zeros((4, 4, 2), np.uint8))


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="missing"):
        decode_rgb(tmp_path / "nope.png")


def test_find_image_files(tmp_path):
    write_zoo(tmp_path / "a")
    (tmp_path / "a" / "UPPER.PNG").write_bytes(zoo_bytes()["rgb_png"])
    (tmp_path / "a" / "readme.txt").write_text("x")
    found = find_image_files([tmp_path / "a"])
    assert [p.name for p in found] == sorted(p.name for p in found)
    assert "UPPER.PNG" in {p.name for p in found} and "readme.txt" not in {p.name for p in found}
    with pytest.raises(FileNotFoundError):
        find_image_files([tmp_path / "missing"])

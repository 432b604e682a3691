"""MATLAB bicubic imresize: hand-derived weights, size rule, invariants, a per-pixel loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from shared_data import SHARED_IMAGES, needs_shared_images

from diverseg_hf.errors import DiversegError
from diverseg_hf.sr import imresize
from diverseg_hf.sr.imresize import imresize_window, output_size, resize_weights

# Interior weights derived by hand from Keys' kernel (a = -0.5) at the half-integer distances of a
# 1/2 (kernel stretched x2, scaled by 1/2) and 1/4 (x4, 1/4) reduction; they already sum to 1.
HALF = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256
QUARTER_SIDE = np.array([987, 745, 399, 93, -49, -75, -45, -7])
QUARTER = np.concatenate([QUARTER_SIDE[::-1], QUARTER_SIDE]) / 4096
# x2 enlargement, no antialiasing: output 2k is centred at k + 0.25, so inputs k-1, k, k+1, k+2 sit at
# distances 1.25, 0.25, 0.75, 1.75.
DOUBLE = np.array([-9, 111, 29, -3]) / 128


def test_half_weights_interior_and_mirrored_border():
    m = resize_weights(16, 0.5)
    assert m.shape == (8, 16)
    # Output j (1-based) is centred at input 2j - 0.5: taps 2j-4 .. 2j+3.
    for j in range(3, 7):
        row = np.zeros(16)
        row[2 * j - 5 : 2 * j + 3] = HALF
        np.testing.assert_allclose(m[j - 1], row, atol=1e-15)
    # First output: taps at 1-based positions -2..5; 0, -1, -2 mirror onto 1, 2, 3.
    first = np.zeros(16)
    first[:5] = np.array([111 + 29, 111 - 9, 29 - 3, -9, -3]) / 256
    np.testing.assert_allclose(m[0], first, atol=1e-15)
    np.testing.assert_allclose(m[-1], first[::-1], atol=1e-15)


def test_quarter_weights_interior():
    m = resize_weights(32, 0.25)
    assert m.shape == (8, 32)
    for j in range(3, 7):  # centre 4j - 1.5: taps 4j-9 .. 4j+6 (1-based)
        row = np.zeros(32)
        row[4 * j - 10 : 4 * j + 6] = QUARTER
        np.testing.assert_allclose(m[j - 1], row, atol=1e-15)


def test_double_weights_interior():
    m = resize_weights(10, 2.0)
    assert m.shape == (20, 10)
    for j in range(4, 16, 2):  # even 1-based j=2k: centre k + 0.25, taps k-1 .. k+2
        k = j // 2
        row = np.zeros(10)
        row[k - 2 : k + 2] = DOUBLE
        np.testing.assert_allclose(m[j - 1], row, atol=1e-15)


def test_identity_at_scale_one():
    np.testing.assert_array_equal(resize_weights(7, 1.0), np.eye(7))
    img = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 1.0), img)


@pytest.mark.parametrize(
    ("size", "scale", "expected"), [(5, 0.5, 3), (7, 0.25, 2), (10, 1 / 3, 4), (3, 2, 6), (1, 0.25, 1)]
)
def test_output_size_is_ceil(size, scale, expected):
    assert output_size(size, scale) == expected
    assert imresize(np.zeros((size, size), np.uint8), scale).shape == (expected, expected)


@pytest.mark.parametrize("scale", [0.5, 0.25, 1 / 3, 2.0, 3.0, 0.7])
def test_constant_images_stay_constant(scale):
    img = np.full((13, 10, 3), 173, np.uint8)
    out = imresize(img, scale)
    assert out.dtype == np.uint8 and (out == 173).all()
    out_f = imresize(np.full((13, 10), 0.25), scale)
    np.testing.assert_allclose(out_f, 0.25, atol=1e-12)


# --- a straightforward per-pixel loop version, written independently of the module --------------
def _loop_cubic(x: float) -> float:
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _loop_contributions(n_in: int, scale: float) -> list[list[tuple[int, float]]]:
    """For each output sample: (0-based input index, weight) pairs, MATLAB style, mirrored."""
    n_out = math.ceil(n_in * scale)
    support = 4 / scale if scale < 1 else 4
    result = []
    for j in range(1, n_out + 1):
        centre = j / scale + 0.5 * (1 - 1 / scale)
        first = math.floor(centre - support / 2)
        taps = []
        for t in range(math.ceil(support) + 2):
            pos = first + t
            d = centre - pos
            w = scale * _loop_cubic(scale * d) if scale < 1 else _loop_cubic(d)
            # mirror 1-based pos into 1..n_in: ..., 2, 1 | 1, 2, ..., n | n, n-1, ...
            p = (pos - 1) % (2 * n_in)
            idx = p if p < n_in else 2 * n_in - 1 - p
            taps.append((idx, w))
        total = sum(w for _, w in taps)
        result.append([(i, w / total) for i, w in taps])
    return result


def _matlab_round(v: float) -> int:
    v = min(max(v, 0.0), 255.0)
    return math.floor(v + 0.5)


def _loop_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w, c = img.shape
    rows, cols = _loop_contributions(h, scale), _loop_contributions(w, scale)
    is_uint8 = img.dtype == np.uint8
    mid = np.zeros((len(rows), w, c))
    for i, taps in enumerate(rows):
        for x in range(w):
            for ch in range(c):
                v = sum(wt * float(img[k, x, ch]) for k, wt in taps)
                mid[i, x, ch] = _matlab_round(v) if is_uint8 else v
    out = np.zeros((len(rows), len(cols), c))
    for i in range(len(rows)):
        for j, taps in enumerate(cols):
            for ch in range(c):
                v = sum(wt * mid[i, k, ch] for k, wt in taps)
                out[i, j, ch] = _matlab_round(v) if is_uint8 else v
    return out.astype(np.uint8) if is_uint8 else out


@pytest.mark.parametrize(
    ("shape", "scale"),
    [((12, 9, 3), 0.5), ((17, 13, 3), 0.25), ((7, 5, 1), 1 / 3), ((5, 4, 2), 2.0), ((3, 3, 1), 0.25)],
)
def test_matches_per_pixel_loop(shape, scale):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, scale), _loop_imresize(img, scale))
    f = rng.random(shape)
    np.testing.assert_allclose(imresize(f, scale), _loop_imresize(f, scale), atol=1e-12)


def test_gray_and_color_paths_agree():
    img = np.random.default_rng(2).integers(0, 256, (20, 16, 3), dtype=np.uint8)
    out = imresize(img, 0.25)
    for ch in range(3):
        np.testing.assert_array_equal(imresize(np.ascontiguousarray(img[..., ch]), 0.25), out[..., ch])


def test_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    f = rng.random((2, 3, 24, 20))
    want = np.stack([np.moveaxis(imresize(np.moveaxis(x, 0, -1), 0.25), -1, 0) for x in f])
    got = imresize(torch.from_numpy(f), 0.25)
    assert got.dtype == torch.float64 and tuple(got.shape) == (2, 3, 6, 5)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    got3 = imresize(torch.from_numpy(f[0]).float(), 0.25)  # CxHxW float32
    np.testing.assert_allclose(got3.numpy(), want[0], atol=1e-5)
    # uint8 rounds after each pass (MATLAB), the float path does not: they differ by at most 1.
    u8 = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    via_torch = imresize(torch.from_numpy(np.moveaxis(u8, -1, 0).astype(np.float64)), 0.25).numpy()
    diff = np.abs(np.moveaxis(imresize(u8, 0.25), -1, 0).astype(float) - np.clip(np.round(via_torch), 0, 255))
    assert diff.max() <= 1
    # uint8 tensors take MATLAB's uint8 path, exactly like NumPy
    u8_t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(u8, -1, 0)))
    got_u8 = imresize(u8_t, 0.25)
    assert got_u8.dtype == torch.uint8
    np.testing.assert_array_equal(np.moveaxis(got_u8.numpy(), 0, -1), imresize(u8, 0.25))
    np.testing.assert_array_equal(imresize(u8_t[None], 1 / 3)[0].numpy(), np.moveaxis(imresize(u8, 1 / 3), -1, 0))


def test_rounds_half_away_from_zero():
    # One row (the row pass copies it) with one pixel of 64 at 1-based column 5, enlarged x2: output
    # column 8 sees it with weight 29/128 (64 * 29/128 = 14.5), column 10 with 111/128 (= 55.5).
    img = np.zeros((1, 8), np.uint8)
    img[0, 4] = 64
    out = imresize(img, 2.0)
    assert out.shape == (2, 16)
    assert out[0, 7] == 15 and out[0, 9] == 56  # banker's rounding would give 14 and 56
    assert out[1, 7] == 15


def test_misuse_raises():
    with pytest.raises(DiversegError, match="uint8 or float"):
        imresize(np.zeros((4, 4), np.int32), 0.5)
    with pytest.raises(DiversegError, match="positive"):
        imresize(np.zeros((4, 4), np.uint8), 0)
    with pytest.raises(DiversegError, match="HxW"):
        imresize(np.zeros((4,), np.uint8), 0.5)
    with pytest.raises(DiversegError, match="numpy array or a torch tensor"):
        imresize([[1, 2]], 0.5)


def _windows_match(torch, image, scale, rng, count):
    full = imresize(image, scale)
    chw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))
    for _ in range(count):
        h, w = int(rng.integers(1, full.shape[0] + 1)), int(rng.integers(1, full.shape[1] + 1))
        top, left = int(rng.integers(full.shape[0] - h + 1)), int(rng.integers(full.shape[1] - w + 1))
        got = imresize_window(chw, scale, top, left, h, w).numpy()
        np.testing.assert_array_equal(np.moveaxis(got, 0, -1), full[top : top + h, left : left + w])


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0])
def test_window_equals_the_window_of_the_full_resize(scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(int(1 / scale * 10))
    for shape in [(37, 53, 3), (64, 48, 3), (13, 90, 3)]:
        _windows_match(torch, rng.integers(0, 256, shape, dtype=np.uint8), scale, rng, 12)


@needs_shared_images
def test_window_on_real_images():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for name in ("baby", "butterfly", "comic"):
        hr = np.asarray(Image.open(SHARED_IMAGES / f"{name}.png").convert("RGB"))
        for s in (2, 3, 4):
            _windows_match(torch, hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s], 1 / s, rng, 6)
    with pytest.raises(DiversegError, match="outside the output"):
        imresize_window(torch.zeros(3, 8, 8, dtype=torch.uint8), 0.5, 3, 0, 2, 2)

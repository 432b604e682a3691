"""SR metrics: MATLAB rgb2ycbcr Y (unrounded by default, rounded on request), border crop, PSNR and SSIM
against hand cases and a plain per-window version."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diverseg_hf.errors import DiversegError
from diverseg_hf.sr.metrics import psnr, rgb_to_y, ssim


def test_y_of_uint8_rounded_on_request():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # 16 + 219 = 235; 16; 16 + 65.481 -> 81; 16 + 128.553 -> 145; 16 + 24.966 -> 41
    assert rgb_to_y(rgb, round_y=True).tolist() == [[235.0, 16.0, 81.0, 145.0, 41.0]]
    np.testing.assert_allclose(rgb_to_y(rgb), [[235.0, 16.0, 81.481, 144.553, 40.966]], atol=1e-9)
    # 100 gray: 16 + 100 * 219 / 255 = 101.88 (-> 102 rounded)
    assert rgb_to_y(np.full((1, 1, 3), 100, np.uint8), round_y=True)[0, 0] == 102.0
    assert rgb_to_y(np.full((1, 1, 3), 100, np.uint8))[0, 0] == pytest.approx(16 + 100 * 219 / 255, abs=1e-12)


def test_y_of_float_is_unrounded():
    rgb = np.array([[[1.0, 0.0, 0.0], [100 / 255, 100 / 255, 100 / 255]]])
    np.testing.assert_allclose(rgb_to_y(rgb), [[81.481, 16 + 100 * 219 / 255]], atol=1e-9)


def test_psnr_hand_case_and_border_crop():
    hr = np.full((16, 16, 3), 100, np.uint8)
    sr = hr.copy()
    sr[8, 8] = 110  # Y: 102 -> round(16 + 110 * 219 / 255 = 110.47) = 110, one of 8x8 kept pixels
    assert psnr(sr, hr, scale=4, round_y=True) == pytest.approx(10 * math.log10(255**2 / (64 / 64)))
    unrounded_mse = (10 * 219 / 255) ** 2 / 64  # Y differs by 8.588 at one pixel
    assert psnr(sr, hr, scale=4) == pytest.approx(10 * math.log10(255**2 / unrounded_mse))
    border = hr.copy()
    border[1, 1] = 0  # inside the cropped 4-pixel border
    assert psnr(border, hr, scale=4) == math.inf
    assert psnr(border, hr, scale=0) < math.inf


def test_psnr_rgb_mode_averages_channels():
    hr = np.zeros((10, 10, 3), np.uint8)
    sr = hr.copy()
    sr[5, 5, 0] = 30  # MSE over 6x6x3 values = 900 / 108
    assert psnr(sr, hr, scale=2, y_channel=False) == pytest.approx(10 * math.log10(255**2 * 108 / 900))
    f = psnr(sr.astype(np.float64) / 255, hr.astype(np.float64) / 255, scale=2, y_channel=False)
    assert f == pytest.approx(10 * math.log10(255**2 * 108 / 900))


def test_ssim_of_constants_is_the_luminance_term():
    a, b = np.full((20, 20), 80, np.uint8), np.full((20, 20), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    want = (2 * 80 * 120 + c1) / (80**2 + 120**2 + c1)  # variances and covariance are 0
    assert ssim(a, b, scale=2) == pytest.approx(want, rel=1e-12)
    img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert ssim(img, img, scale=4) == pytest.approx(1.0)


def _plain_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. by explicit 11x11 windows (valid positions only)."""
    x = np.arange(11) - 5
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            wa, wb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (g * wa).sum(), (g * wb).sum()
            va, vb = (g * (wa - ma) ** 2).sum(), (g * (wb - mb) ** 2).sum()
            cov = (g * (wa - ma) * (wb - mb)).sum()
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def _plain_y(rgb: np.ndarray, rounded: bool = False) -> np.ndarray:
    """Per pixel, as the MATLAB scripts write it: im2double, then rgb2ycbcr's first row, times 255."""
    out = np.empty(rgb.shape[:2])
    for i in range(rgb.shape[0]):
        for j in range(rgb.shape[1]):
            r, g, b = (float(v) / 255 for v in rgb[i, j])
            y = (16 / 255 + (65.481 * r + 128.553 * g + 24.966 * b) / 255) * 255
            out[i, j] = math.floor(y + 0.5) if rounded else y
    return out


@pytest.mark.parametrize("rounded", [False, True])
def test_psnr_and_ssim_match_plain_implementation(rounded):
    rng = np.random.default_rng(4 + rounded)
    hr = rng.integers(0, 256, (30, 27, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-25, 26, hr.shape), 0, 255).astype(np.uint8)
    ya, yb = _plain_y(sr, rounded)[3:-3, 3:-3], _plain_y(hr, rounded)[3:-3, 3:-3]
    assert ssim(sr, hr, scale=3, round_y=rounded) == pytest.approx(_plain_ssim(ya, yb), rel=1e-10)
    want_psnr = 10 * math.log10(255**2 / np.mean((ya - yb) ** 2))
    assert psnr(sr, hr, scale=3, round_y=rounded) == pytest.approx(want_psnr, rel=1e-12)
    # uint8 and [0, 1] float inputs of the same picture agree (MATLAB's im2double path)
    assert psnr(sr / 255.0, hr / 255.0, scale=3, round_y=rounded) == pytest.approx(want_psnr, rel=1e-12)
    crop_sr, crop_hr = sr[2:-2, 2:-2].astype(float), hr[2:-2, 2:-2].astype(float)
    want_rgb = np.mean([_plain_ssim(crop_sr[..., c], crop_hr[..., c]) for c in range(3)])
    assert ssim(sr, hr, scale=2, y_channel=False) == pytest.approx(want_rgb, rel=1e-10)


def test_gray_images_use_their_gray_channel():
    rng = np.random.default_rng(6)
    hr = rng.integers(0, 256, (24, 25), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    a, b = sr[2:-2, 2:-2].astype(float), hr[2:-2, 2:-2].astype(float)
    assert psnr(sr, hr, 2) == pytest.approx(10 * math.log10(255**2 / np.mean((a - b) ** 2)), rel=1e-12)
    assert ssim(sr, hr, 2) == pytest.approx(_plain_ssim(a, b), rel=1e-10)
    # the same picture as equal RGB channels goes through Y: errors shrink by 219/255
    rgb_sr, rgb_hr = (np.repeat(x[..., None], 3, axis=2) for x in (sr, hr))
    assert psnr(rgb_sr, rgb_hr, 2) == pytest.approx(psnr(sr, hr, 2) - 20 * math.log10(219 / 255), rel=1e-9)


def test_torch_tensors_match_float_arrays():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    hr, sr = rng.random((3, 20, 20)), rng.random((3, 20, 20))
    hwc = (np.moveaxis(sr, 0, -1), np.moveaxis(hr, 0, -1))
    assert psnr(torch.from_numpy(sr), torch.from_numpy(hr), 2) == pytest.approx(psnr(*hwc, 2))
    assert ssim(torch.from_numpy(sr), torch.from_numpy(hr), 2) == pytest.approx(ssim(*hwc, 2))


def test_misuse_raises():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(DiversegError, match="shapes differ"):
        psnr(a, a[:10], 2)
    with pytest.raises(DiversegError, match="dtypes differ"):
        psnr(a, a.astype(float), 2)
    with pytest.raises(DiversegError, match="at least 11x11"):
        ssim(a, a, 5)
    with pytest.raises(DiversegError, match="nothing left"):
        psnr(a, a, 10)

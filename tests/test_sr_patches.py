"""The fast pair path against the straightforward one: banded NumPy imresize vs the dense torch matrix
products, and ``make_pair`` vs the torch pipeline SRPairs used before (turn, dense LR, float)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from shared_data import SHARED_IMAGES, needs_shared_images

torch = pytest.importorskip("torch")

from diverseg_hf.sr import imresize  # noqa: E402
from diverseg_hf.sr.imresize import imresize_planes, imresize_window, resize_weights  # noqa: E402
from diverseg_hf.sr.patches import make_pair  # noqa: E402

SET5_SET14 = ["baby", "bird", "butterfly", "head", "woman", "baboon", "barbara", "bridge", "coastguard",
              "comic", "face", "flowers", "foreman", "lenna", "man", "monarch", "pepper", "ppt3", "zebra"]


def _chw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(hwc, -1, 0)))


def _dense(hwc: np.ndarray, scale: float) -> np.ndarray:
    """The dense reference: torch's matrix products on the CxHxW tensor (float64, uint8 rounding per pass)."""
    return np.moveaxis(imresize(_chw(hwc), scale).numpy(), 0, -1)


def _real_images() -> list[np.ndarray]:
    found = [SHARED_IMAGES / f"{name}.png" for name in SET5_SET14]
    return [np.asarray(Image.open(p).convert("RGB")) for p in found if p.is_file()]


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4, 2.0, 4.0])
def test_power_of_two_weights_are_exact_in_float64(scale):
    """Every weight a multiple of 2**-12: on uint8 input each product and partial sum is exact in float64,
    so the banded and dense evaluations agree bit for bit whatever their summation order."""
    for size in (7, 48, 192, 375, 500):
        w = resize_weights(size, scale) * 4096
        np.testing.assert_array_equal(w, np.round(w))


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0, 4.0, 0.7])
def test_banded_equals_dense_on_random_images(scale):
    rng = np.random.default_rng(int(scale * 1000))
    for _ in range(60):
        shape = (int(rng.integers(4, 90)), int(rng.integers(4, 90)), 3)
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(imresize(img, scale), _dense(img, scale))
        f = rng.random(shape)
        np.testing.assert_allclose(imresize(f, scale), np.moveaxis(imresize(_chw(f), scale).numpy(), 0, -1),
                                   atol=1e-12)


def test_banded_equals_dense_on_random_patches_and_smooth_images():
    """Many 192-pixel patches (the SR setting) and smooth images, where sums sit close to .5 more often."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:192, 0:192]
    for i in range(120):
        if i % 2:
            img = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
        else:
            a, b, c = rng.random(3) * 3
            img = np.stack([(127.5 + 127 * np.sin(a * yy / 37 + b * xx / 53 + c * k)) for k in range(3)], -1)
            img = np.round(img).astype(np.uint8)
        for s in (2, 3, 4):
            np.testing.assert_array_equal(imresize(img, 1 / s), _dense(img, 1 / s))
            np.testing.assert_array_equal(imresize_planes(np.moveaxis(img, -1, 0), 1 / s),
                                          np.moveaxis(_dense(img, 1 / s), -1, 0))


@needs_shared_images
def test_banded_equals_dense_on_real_images():
    images = _real_images()
    assert len(images) >= 15
    for hr in images:
        for s in (2, 3, 4):
            mod = hr[: hr.shape[0] // s * s, : hr.shape[1] // s * s]
            lr = imresize(mod, 1 / s)
            np.testing.assert_array_equal(lr, _dense(mod, 1 / s))
            np.testing.assert_array_equal(imresize(lr, float(s)), _dense(lr, float(s)))


def test_numpy_window_equals_window_of_full_resize():
    rng = np.random.default_rng(11)
    for s in (2, 3, 4):
        img = rng.integers(0, 256, (int(rng.integers(40, 120)), int(rng.integers(40, 120)), 3), dtype=np.uint8)
        full = imresize(img, 1 / s)
        for _ in range(20):
            h, w = int(rng.integers(1, full.shape[0] + 1)), int(rng.integers(1, full.shape[1] + 1))
            top, left = int(rng.integers(full.shape[0] - h + 1)), int(rng.integers(full.shape[1] - w + 1))
            got = imresize_window(img[..., :], 1 / s, top, left, h, w)
            np.testing.assert_array_equal(got, full[top : top + h, left : left + w])
            gray = np.ascontiguousarray(img[..., 0])
            np.testing.assert_array_equal(imresize_window(gray, 1 / s, top, left, h, w),
                                          imresize(gray, 1 / s)[top : top + h, left : left + w])


# --- make_pair against the torch pipeline SRPairs used before it ------------------------------------------
def _torch_dihedral(chw, k):
    out = torch.rot90(chw, k % 4, dims=(1, 2))
    return out.flip(2) if k >= 4 else out


def _reference_pair(rgb, top, left, p, s, k, lr_from):
    """Crop to a CxHxW tensor, turn with torch, dense LR (of the turned patch, or the image's window)."""
    crop = rgb[top : top + p, left : left + p]
    hr_t = _torch_dihedral(torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))), k)
    if lr_from == "patch":
        lr_t = imresize(hr_t.contiguous(), 1.0 / s)
    else:
        h, w = rgb.shape[0] // s * s, rgb.shape[1] // s * s
        source = torch.from_numpy(np.ascontiguousarray(rgb[:h, :w].transpose(2, 0, 1)))
        lr_t = _torch_dihedral(imresize_window(source, 1.0 / s, top // s, left // s, p // s, p // s), k)
    return lr_t.float().div_(255.0), hr_t.float().div_(255.0)


def _check_pairs(rgb, rng, count, patches=(8, 16, 48)):
    for _ in range(count):
        s = int(rng.choice([2, 3, 4]))
        p = s * int(rng.choice(patches) // s)
        if p > min(rgb.shape[:2]):
            continue
        top = s * int(rng.integers((rgb.shape[0] - p) // s + 1))
        left = s * int(rng.integers((rgb.shape[1] - p) // s + 1))
        k = int(rng.integers(8))
        for lr_from in ("patch", "image"):
            mod = rgb[: rgb.shape[0] // s * s, : rgb.shape[1] // s * s] if lr_from == "image" else None
            lr, hr = make_pair(rgb, top, left, p, s, k, mod)
            want_lr, want_hr = _reference_pair(rgb, top, left, p, s, k, lr_from)
            assert lr.is_contiguous() and hr.is_contiguous()
            assert torch.equal(hr, want_hr) and torch.equal(lr, want_lr), (s, p, top, left, k, lr_from)


def test_make_pair_equals_the_torch_pipeline_on_random_images():
    rng = np.random.default_rng(3)
    for _ in range(40):
        shape = (int(rng.integers(16, 70)), int(rng.integers(16, 70)), 3)
        _check_pairs(rng.integers(0, 256, shape, dtype=np.uint8), rng, 8)


@needs_shared_images
def test_make_pair_equals_the_torch_pipeline_on_real_images():
    rng = np.random.default_rng(4)
    for rgb in _real_images():
        _check_pairs(rgb, rng, 6, patches=(48, 96, 192))

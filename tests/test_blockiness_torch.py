"""The batched torch path gives the same numbers as the CPU kernel (float64, CPU and CUDA)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from image_zoo import textured
from shared_data import SHARED_IMAGES

from diverseg_hf.decode.images import decode_gray, find_image_files, rgb_to_gray
from diverseg_hf.quality.blockiness import blockiness_of_gray

torch = pytest.importorskip("torch", reason="the torch path needs the [sam] extra")
from diverseg_hf.quality.blockiness_torch import blockiness_torch, rgb_to_gray_torch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def assert_same(results, grays):
    for result, gray in zip(results, grays, strict=True):
        expected = blockiness_of_gray(gray)
        assert result.reason == expected.reason
        if expected.ok:
            assert result.value == pytest.approx(expected.value, rel=1e-12)
        else:
            assert math.isnan(result.value)


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_batch_equals_cpu_kernel(device):
    rng = np.random.default_rng(7)
    grays = [rng.integers(0, 256, (64, 80), dtype=np.uint8) for _ in range(3)]
    grays += [decode_gray(textured(67, 91, s)) for s in range(3)]  # another block layout
    grays += [np.zeros((20, 20), np.uint8), np.full((48, 48), 9, np.uint8)]  # too small, flat
    assert_same(blockiness_torch(grays, device=device), grays)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.skipif(not SHARED_IMAGES.exists(), reason=f"{SHARED_IMAGES} not found")
def test_real_images_equal_cpu_kernel(device):
    grays = [decode_gray(p) for p in find_image_files([SHARED_IMAGES])]
    assert_same(blockiness_torch(grays, device=device), grays)


def test_torch_tensors_accepted():
    gray = decode_gray(textured(70, 70, 1))
    (result,) = blockiness_torch([torch.from_numpy(gray)])
    assert result.value == pytest.approx(blockiness_of_gray(gray).value, rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_gray_on_device_is_bit_exact(device):
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    chw = torch.from_numpy(rgb).permute(2, 0, 1).to(device)
    assert np.array_equal(rgb_to_gray_torch(chw).cpu().numpy(), rgb_to_gray(rgb))

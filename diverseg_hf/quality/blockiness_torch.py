"""Batched blockiness on torch tensors (float64, CPU or CUDA), for the GPU scoring phase.

Same numbers as :mod:`diverseg_hf.quality.blockiness` (float64 throughout; only summation order differs).
Images of equal block counts are stacked and scored in one pass; gray conversion can run on the
device too (bit-exact with OpenCV's BGR2GRAY).

Example:
    >>> import numpy as np
    >>> from diverseg_hf.quality.blockiness import blockiness_of_gray
    >>> rng = np.random.default_rng(0)
    >>> grays = [rng.integers(0, 256, (64, 80), dtype=np.uint8) for _ in range(3)]
    >>> [round(r.value, 6) for r in blockiness_torch(grays)] == [
    ...     round(blockiness_of_gray(g).value, 6) for g in grays]
    True
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence

from ..errors import require
from .blockiness import BlockinessResult, _undefined_reason, block_counts, from_variations
from .kernel import DCT8

__all__ = ["blockiness_torch", "rgb_to_gray_torch"]


def _torch():
    return require("torch", "sam")


def rgb_to_gray_torch(rgb):
    """uint8 RGB tensor (..., 3, H, W) -> uint8 gray (..., H, W), bit-exact with OpenCV BGR2GRAY.

    Example:
        >>> import torch
        >>> rgb_to_gray_torch(torch.full((3, 1, 1), 255, dtype=torch.uint8)).item()
        255
    """
    torch = _torch()
    x = rgb.to(torch.int32)
    acc = x[..., 0, :, :] * 9798 + x[..., 1, :, :] * 19235 + x[..., 2, :, :] * 3735 + (1 << 14)
    return (acc >> 15).to(torch.uint8)


def _mean_variation(coef, hb: int, wb: int):
    """(N, hb, wb, 64) coefficients -> (N, 64) V averaged with the scorer's (hb-2)(wb-2) divisor."""
    centre = coef[:, 2 : hb - 1, 2 : wb - 1]
    horizontal = coef[:, 2 : hb - 1, 1 : wb - 2] + coef[:, 2 : hb - 1, 3:wb] - 2 * centre
    vertical = coef[:, 1 : hb - 2, 2 : wb - 1] + coef[:, 3:hb, 2 : wb - 1] - 2 * centre
    return (horizontal.square() + vertical.square()).sqrt().sum(dim=(1, 2)) / ((hb - 2) * (wb - 2))


def _stack_variations(stack, hb: int, wb: int):
    """(N, H, W) uint8 on a device -> (aligned, shifted) V averages, each (N, 64) float64."""
    torch = _torch()
    dct = torch.as_tensor(DCT8, dtype=torch.float64, device=stack.device)
    out = []
    for offset in (0, 4):
        x = stack[:, offset : offset + hb * 8, offset : offset + wb * 8].to(torch.float64)
        blocks = x.reshape(-1, hb, 8, wb, 8)
        coef = torch.einsum("ui,nhiwj,vj->nhwuv", dct, blocks, dct).reshape(-1, hb, wb, 64)
        out.append(_mean_variation(coef, hb, wb))
    return out[0], out[1]


def blockiness_torch(grays: Sequence, device: str | None = None) -> list[BlockinessResult]:
    """Blockiness of many gray images (HxW uint8 arrays or tensors) on ``device``, in input order.

    Images with the same block counts are scored together as one float64 batch.
    """
    torch = _torch()
    results: list[BlockinessResult | None] = [None] * len(grays)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, gray in enumerate(grays):
        height, width = gray.shape[-2:]
        reason = _undefined_reason(height, width)
        if reason:
            results[index] = BlockinessResult(math.nan, reason)
        else:
            groups[block_counts(height, width)].append(index)
    for (hb, wb), members in groups.items():
        rows, cols = hb * 8 + 4, wb * 8 + 4  # both grids fit inside this crop
        with warnings.catch_warnings():  # read-only arrays are only read: torch.stack copies them
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            stack = torch.stack([torch.as_tensor(grays[i])[:rows, :cols] for i in members]).to(device or "cpu")
        aligned, shifted = _stack_variations(stack, hb, wb)
        for i, a, s in zip(members, aligned.cpu().numpy(), shifted.cpu().numpy()):
            results[i] = from_variations(a, s)
    return [r for r in results if r is not None]

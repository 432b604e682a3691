"""The pixel work of one (LR, HR) pair: crop, dihedral turn and LR in ``uint8``, then one conversion to float.

Everything stays ``uint8`` until the end: the crop is a view of the decoded HxWx3 image, the turn and
the move to channels-first one contiguous copy of the patch, the LR the banded MATLAB bicubic of
:mod:`.imresize` on those planes, and each output is written once as a contiguous CxHxW float32 array
in [0, 1] (``level / 255`` in float32, the value ``torch``'s ``x.float() / 255`` gives) that
``torch.from_numpy`` wraps without a copy.

Example:
    >>> rgb = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    >>> lr, hr = make_pair(rgb, top=4, left=8, patch=32, scale=4, turn=5)
    >>> tuple(lr.shape), tuple(hr.shape), hr.dtype
    ((3, 8, 8), (3, 32, 32), torch.float32)
"""

from __future__ import annotations

import numpy as np

from ..errors import require
from .imresize import imresize_planes, imresize_window

torch = require("torch", "sr")


def dihedral(hwc: np.ndarray, k: int) -> np.ndarray:
    """Variant ``k`` (0..7) of an HxWxC array, as a view: ``k % 4`` quarter turns (``np.rot90``), then a
    left-right flip when ``k >= 4``.

    Example:
        >>> a = np.arange(4).reshape(2, 2, 1)
        >>> dihedral(a, 1)[..., 0].tolist(), dihedral(a, 4)[..., 0].tolist()
        ([[1, 3], [0, 2]], [[1, 0], [3, 2]])
    """
    out = np.rot90(hwc, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def to_unit(chw: np.ndarray) -> torch.Tensor:
    """CxHxW ``uint8`` (any strides) -> contiguous CxHxW float32 tensor in [0, 1], written once.

    ``level / 255`` in float32, as ``torch``'s ``x.float() / 255``.

    Example:
        >>> to_unit(np.array([[[0, 51, 255]]], np.uint8)).tolist()
        [[[0.0, 0.20000000298023224, 1.0]]]
    """
    out = np.empty(chw.shape, np.float32)
    np.divide(chw, np.float32(255), out=out)
    return torch.from_numpy(out)


def make_pair(
    rgb: np.ndarray, top: int, left: int, patch: int, scale: int, turn: int, lr_image: np.ndarray | None = None,
    levels: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) float CxHxW tensors of the ``patch``-pixel crop of the HxWx3 ``rgb`` at (``top``, ``left``),
    turned by :func:`dihedral` ``turn``; with ``levels``, contiguous ``uint8`` tensors of the same levels.

    The LR is ``imresize(turned patch, 1/scale)``, or, given ``lr_image`` (the image cropped to a
    multiple of ``scale``), the patch's window of ``imresize(lr_image, 1/scale)`` given the same turn.
    """
    hr = np.ascontiguousarray(dihedral(rgb[top : top + patch, left : left + patch], turn).transpose(2, 0, 1))
    if lr_image is None:
        lr = imresize_planes(hr, 1.0 / scale)
    else:
        n = patch // scale
        lr = dihedral(imresize_window(lr_image, 1.0 / scale, top // scale, left // scale, n, n), turn)
        lr = lr.transpose(2, 0, 1)
    if levels:
        return torch.from_numpy(np.ascontiguousarray(lr)), torch.from_numpy(hr)
    return to_unit(lr), to_unit(hr)


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of a pair, in this process, before workers fork.

    Example:
        >>> warm_up()
    """
    rgb = np.zeros((8, 9, 3), np.uint8)
    make_pair(rgb, 0, 0, 8, 4, 1)
    make_pair(rgb, 0, 0, 8, 4, 1, rgb[:, :8])  # a mod-cropped image is a strided view

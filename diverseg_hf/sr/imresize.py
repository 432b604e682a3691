"""MATLAB-compatible bicubic ``imresize``: how SR papers make their low-resolution inputs.

MATLAB's ``imresize(image, scale)`` with the default bicubic method uses Keys' cubic kernel with
a = -0.5; when shrinking (scale < 1) it antialiases by stretching the kernel by ``1/scale`` (and
scaling it by ``scale``); pixels beyond the border are mirrored (``[1..n, n..1]`` repeated); the
output size is ``ceil(in * scale)``; the weights of every output sample are normalised to sum to 1.
Resizing is separable: rows first, then columns (MATLAB resizes the dimension with the smaller scale
first; with one scale for both dimensions that is the rows). For ``uint8`` images MATLAB rounds (half
away from zero) and saturates to ``uint8`` after EACH pass; this module does the same.

Here each 1-D resize is a dense ``out x in`` weight matrix (cached per size and scale), applied as a
matrix product: fast on CPU with NumPy and on GPU with torch.

Example:
    >>> import numpy as np
    >>> imresize(np.full((8, 6, 3), 77, np.uint8), 0.5).shape
    (4, 3, 3)
    >>> int(imresize(np.full((8, 6), 77, np.uint8), 0.25)[0, 0])
    77
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import DiversegError

#: Support of the cubic kernel (it is zero outside [-2, 2]).
KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, MATLAB's ``cubic``.

    Example:
        >>> cubic(np.array([0.0, 1.0, 0.5])).tolist()
        [1.0, 0.0, 0.5625]
    """
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def output_size(size: int, scale: float) -> int:
    """MATLAB's output-size rule: ``ceil(size * scale)``.

    Example:
        >>> output_size(5, 0.5), output_size(7, 0.25), output_size(3, 2)
        (3, 2, 6)
    """
    return math.ceil(size * scale)


@lru_cache(maxsize=256)
def _weights_cached(in_size: int, scale: float) -> np.ndarray:
    out_size = output_size(in_size, scale)
    antialias = scale < 1
    width = KERNEL_WIDTH / scale if antialias else KERNEL_WIDTH
    # Output pixel j (1-based) maps to input coordinate u, as in MATLAB's contributions().
    j = np.arange(1, out_size + 1, dtype=np.float64)
    u = j / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions, may fall outside
    dist = u[:, None] - idx
    w = scale * cubic(scale * dist) if antialias else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric (mirrored) boundary: positions 1..n, n..1, repeating.
    mirror = np.concatenate([np.arange(in_size), np.arange(in_size - 1, -1, -1)])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_size)]
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), taps), src.ravel()), w.ravel())
    matrix.setflags(write=False)
    return matrix


def resize_weights(in_size: int, scale: float) -> np.ndarray:
    """The ``ceil(in_size*scale) x in_size`` float64 matrix of one 1-D MATLAB bicubic resize.

    Example:
        >>> resize_weights(4, 1.0).tolist() == np.eye(4).tolist()
        True
    """
    if in_size < 1:
        raise DiversegError(f"cannot resize an empty dimension (size {in_size})")
    if not (scale > 0 and math.isfinite(scale)):
        raise DiversegError(f"scale must be a positive finite number, got {scale!r}")
    return _weights_cached(int(in_size), float(scale))


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's conversion to uint8: saturate, then round half away from zero."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def _imresize_numpy(image: np.ndarray, scale: float) -> np.ndarray:
    if image.ndim not in (2, 3):
        raise DiversegError(f"expected an HxW or HxWxC array, got shape {image.shape}")
    is_uint8 = image.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(image.dtype, np.floating)):
        raise DiversegError(f"arrays must be uint8 or float, got {image.dtype}")
    h, w = image.shape[:2]
    rows, cols = resize_weights(h, scale), resize_weights(w, scale)
    x = image.astype(np.float64)
    x = np.tensordot(rows, x, axes=(1, 0))  # rows first, as MATLAB does for equal scales
    if is_uint8:
        x = _round_uint8(x).astype(np.float64)
    x = np.moveaxis(np.tensordot(cols, x, axes=(1, 1)), 0, 1)
    return _round_uint8(x) if is_uint8 else x


@lru_cache(maxsize=64)
def _torch_weights(in_size: int, scale: float, dtype: Any, device: Any) -> Any:
    """:func:`resize_weights` as a tensor, cached per dtype and device (no copy to the GPU per call)."""
    import torch

    return torch.tensor(resize_weights(in_size, scale), dtype=dtype, device=device)


def _check_torch(image: Any) -> tuple[bool, Any]:
    """(is uint8, the dtype to compute in) of a CxHxW / BxCxHxW tensor, or a DiversegError."""
    import torch

    if image.dim() not in (3, 4):
        raise DiversegError(f"expected a CxHxW or BxCxHxW tensor, got shape {tuple(image.shape)}")
    is_uint8 = image.dtype == torch.uint8
    if not (is_uint8 or image.is_floating_point()):
        raise DiversegError(f"tensors must be float or uint8, got {image.dtype}")
    return is_uint8, torch.float64 if is_uint8 else image.dtype


def _imresize_torch(image: Any, scale: float) -> Any:
    is_uint8, dtype = _check_torch(image)
    h, w = image.shape[-2:]
    rows = _torch_weights(h, scale, dtype, image.device)
    cols = _torch_weights(w, scale, dtype, image.device)
    return _resize_torch(image, rows, cols, is_uint8)


def _resize_torch(image: Any, rows: Any, cols: Any, is_uint8: bool) -> Any:
    """``rows @ image @ cols.T`` with MATLAB's uint8 rounding after each pass when ``is_uint8``."""
    import torch

    x = torch.matmul(rows, image.to(rows.dtype))
    if is_uint8:  # MATLAB: saturate and round half away from zero after each pass
        x = torch.floor(x.clamp_(0.0, 255.0) + 0.5)
    x = torch.matmul(x, cols.T)
    return torch.floor(x.clamp_(0.0, 255.0) + 0.5).to(torch.uint8) if is_uint8 else x


def imresize(image: Any, scale: float) -> Any:
    """Resize like MATLAB's ``imresize(image, scale)`` (bicubic, antialiased when shrinking).

    * NumPy ``uint8`` HxW or HxWxC -> ``uint8`` (rounded and clipped after each pass, as MATLAB);
      NumPy float arrays -> float64 (MATLAB's ``double`` path, no rounding).
    * torch float CxHxW or BxCxHxW -> same dtype and device, no rounding (runs on GPU);
      torch ``uint8`` -> ``uint8`` with MATLAB's rounding, computed in float64.

    Example:
        >>> import numpy as np
        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> imresize(img, 0.5).shape, bool((imresize(img, 1.0) == img).all())
        ((2, 2, 3), True)
    """
    if isinstance(image, np.ndarray):
        return _imresize_numpy(image, scale)
    if type(image).__module__.startswith("torch"):
        return _imresize_torch(image, scale)
    raise DiversegError(f"imresize takes a numpy array or a torch tensor, got {type(image).__name__}")


def _band(weights: np.ndarray, start: int, size: int) -> tuple[np.ndarray, int, int]:
    """Output rows ``start:start+size`` of a 1-D resize, restricted to the input span ``[a, b)`` they read."""
    sub = weights[start : start + size]
    if sub.shape[0] != size or start < 0:
        raise DiversegError(f"window {start}:{start + size} is outside the output (size {weights.shape[0]})")
    used = np.flatnonzero(sub.any(axis=0))
    a, b = int(used[0]), int(used[-1]) + 1
    return sub[:, a:b], a, b


def imresize_window(image: Any, scale: float, top: int, left: int, height: int, width: int) -> Any:
    """``imresize(image, scale)[..., top:top+height, left:left+width]`` of a torch CxHxW / BxCxHxW tensor,
    computed from only the input rows and columns that window reads (the same weights, hence the same
    values, rounding included).

    Example:
        >>> import torch
        >>> x = torch.arange(3 * 40 * 36, dtype=torch.float64).reshape(3, 40, 36) % 251
        >>> bool((imresize_window(x.byte(), 0.25, 2, 3, 5, 4) == imresize(x.byte(), 0.25)[:, 2:7, 3:7]).all())
        True
    """
    import torch

    is_uint8, dtype = _check_torch(image)
    h, w = image.shape[-2:]
    rows, r0, r1 = _band(resize_weights(h, scale), top, height)
    cols, c0, c1 = _band(resize_weights(w, scale), left, width)
    part = image[..., r0:r1, c0:c1]
    as_tensor = {"dtype": dtype, "device": image.device}
    return _resize_torch(part, torch.tensor(rows, **as_tensor), torch.tensor(cols, **as_tensor), is_uint8)

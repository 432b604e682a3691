"""MATLAB-compatible bicubic ``imresize``: how SR papers make their low-resolution inputs.

MATLAB's ``imresize(image, scale)`` with the default bicubic method uses Keys' cubic kernel with
a = -0.5; when shrinking (scale < 1) it antialiases by stretching the kernel by ``1/scale`` (and
scaling it by ``scale``); pixels beyond the border are mirrored (``[1..n, n..1]`` repeated); the
output size is ``ceil(in * scale)``; the weights of every output sample are normalised to sum to 1.
Resizing is separable: rows first, then columns (MATLAB resizes the dimension with the smaller scale
first; with one scale for both dimensions that is the rows). For ``uint8`` images MATLAB rounds (half
away from zero) and saturates to ``uint8`` after EACH pass; this module does the same.

Each 1-D resize is an ``out x in`` weight matrix (cached per size and scale). NumPy arrays take a
compiled *banded* evaluation: every output sample sums only the span of inputs its row of the matrix
covers (16 taps at 1/4, instead of a dense product over all inputs), tap by tap in input order.
torch tensors take the dense matrix products (one kernel call each, on CPU or GPU).

Exactness. Both sum exactly the nonzero terms of the same matrix, in float64, only in different
orders. At scales 1/2, 1/4 (any 2**-k) and 2, 4 every weight is a multiple of 2**-12 or coarser,
so on ``uint8`` input every product and partial sum is exact in float64 and the two paths are
bit-identical in any order (``tests/test_sr_patches.py`` checks that the weights are such
multiples and the outputs equal). At other scales (1/3) the weights are rounded and two orders can
differ in the last bit; after uint8 rounding that matters only for a sum within ~1e-13 of a .5
boundary, which the tests have not met on random and real images (MATLAB's own summation order is no
better defined).

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

import numba
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


@lru_cache(maxsize=256)
def _bands_cached(in_size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    matrix = resize_weights(in_size, scale)
    nonzero = matrix != 0
    first = nonzero.argmax(axis=1)
    last = in_size - 1 - nonzero[:, ::-1].argmax(axis=1)
    taps = int((last - first).max()) + 1
    start = np.minimum(first, in_size - taps)  # a window of ``taps`` inputs holding the row's nonzero span
    band = matrix[np.arange(matrix.shape[0])[:, None], start[:, None] + np.arange(taps)]
    start.setflags(write=False)
    band.setflags(write=False)
    return start, band


def resize_bands(in_size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resize_weights` in banded form: ``start`` (per output, nondecreasing) and ``band`` (outputs x
    taps) with ``band[i, t] == resize_weights(in_size, scale)[i, start[i] + t]`` and every nonzero weight of
    row ``i`` inside ``start[i] : start[i] + taps``.

    Example:
        >>> start, band = resize_bands(32, 0.25)
        >>> band.shape, start[:3].tolist()
        ((8, 16), [0, 0, 2])
    """
    return _bands_cached(in_size, scale)


@numba.njit(nogil=True, cache=True)
def _banded_rows(src, start, band, offset, out, to_uint8):  # pragma: no cover - compiled
    """``out[b, i] = sum_t band[i, t] * src[b, start[i] - offset + t]`` over the rows (axis 1) of 3-D arrays,
    taps in order; with ``to_uint8``, saturated and rounded half away from zero (MATLAB's uint8 conversion)."""
    n_out, taps = band.shape
    width = src.shape[2]
    acc = np.empty(width)
    for b in range(src.shape[0]):
        for i in range(n_out):
            acc[:] = 0.0
            row0 = start[i] - offset
            for t in range(taps):
                w = band[i, t]
                for k in range(width):
                    acc[k] += w * src[b, row0 + t, k]
            for k in range(width):
                v = acc[k]
                if to_uint8:
                    v = math.floor(min(max(v, 0.0), 255.0) + 0.5)
                out[b, i, k] = v


def _span(bands: tuple[np.ndarray, np.ndarray], first: int, count: int) -> tuple[int, int]:
    """The input span ``[lo, hi)`` that outputs ``first:first+count`` read (the starts are nondecreasing)."""
    return int(bands[0][first]), int(bands[0][first + count - 1]) + bands[1].shape[1]


def _resize_axis1(x: np.ndarray, bands: tuple[np.ndarray, np.ndarray], first: int, count: int, is_uint8: bool,
                  base: int = 0) -> np.ndarray:
    """Resize axis 1 of a BxHxWxC stack (whose row 0 is input row ``base``) to outputs ``first:first+count``
    of ``bands``, reading only the rows they need."""
    start, band = bands[0][first : first + count], bands[1][first : first + count]
    lo, hi = _span(bands, first, count)
    src = np.ascontiguousarray(x[:, lo - base : hi - base]).reshape(x.shape[0], hi - lo, -1)  # so the loop vectorizes
    out = np.empty((x.shape[0], count, src.shape[2]), np.uint8 if is_uint8 else np.float64)
    _banded_rows(src, start, band, lo, out, is_uint8)
    return out.reshape((x.shape[0], count, *x.shape[2:]))


def _banded(stack: np.ndarray, scale: float, window: tuple[int, int, int, int] | None) -> np.ndarray:
    """The NumPy path: a BxHxWxC stack of images resized (or cut to ``window``), rows first, then columns."""
    is_uint8 = stack.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(stack.dtype, np.floating)):
        raise DiversegError(f"arrays must be uint8 or float, got {stack.dtype}")
    row_bands, col_bands = resize_bands(stack.shape[1], scale), resize_bands(stack.shape[2], scale)
    top, left, height, width = window or (0, 0, len(row_bands[0]), len(col_bands[0]))
    _check_window(len(row_bands[0]), top, height)
    _check_window(len(col_bands[0]), left, width)
    lo, hi = _span(col_bands, left, width)  # the row pass needs only the columns the column pass reads
    x = stack[:, :, lo:hi] if is_uint8 else stack[:, :, lo:hi].astype(np.float64)
    x = _resize_axis1(x, row_bands, top, height, is_uint8)
    x = _resize_axis1(np.swapaxes(x, 1, 2), col_bands, left, width, is_uint8, base=lo)
    return np.ascontiguousarray(np.swapaxes(x, 1, 2))


def _image_banded(image: np.ndarray, scale: float, window: tuple[int, int, int, int] | None) -> np.ndarray:
    """:func:`_banded` of one HxW or HxWxC array, as a 1xHxWxC stack (a view)."""
    if image.ndim not in (2, 3):
        raise DiversegError(f"expected an HxW or HxWxC array, got shape {image.shape}")
    out = _banded(image.reshape((1, *image.shape[:2], -1)), scale, window)
    return out[0] if image.ndim == 3 else out[0, ..., 0]


def imresize_planes(planes: np.ndarray, scale: float) -> np.ndarray:
    """:func:`imresize` of a NumPy CxHxW array (channels first, e.g. a tensor's ``.numpy()``), per plane.

    Example:
        >>> x = np.random.default_rng(0).integers(0, 256, (3, 16, 12), dtype=np.uint8)
        >>> bool((imresize_planes(x, 0.5) == imresize(x.transpose(1, 2, 0), 0.5).transpose(2, 0, 1)).all())
        True
    """
    if planes.ndim != 3:
        raise DiversegError(f"expected a CxHxW array, got shape {planes.shape}")
    return _banded(planes[..., None], scale, None)[..., 0]


def _check_window(size: int, start: int, length: int) -> None:
    if start < 0 or length < 1 or start + length > size:
        raise DiversegError(f"window {start}:{start + length} is outside the output (size {size})")


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
      NumPy float arrays -> float64 (MATLAB's ``double`` path, no rounding); banded, compiled.
    * torch float CxHxW or BxCxHxW -> same dtype and device, no rounding (runs on GPU);
      torch ``uint8`` -> ``uint8`` with MATLAB's rounding, computed in float64.

    Example:
        >>> import numpy as np
        >>> img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
        >>> imresize(img, 0.5).shape, bool((imresize(img, 1.0) == img).all())
        ((2, 2, 3), True)
    """
    if isinstance(image, np.ndarray):
        return _image_banded(image, scale, None)
    if type(image).__module__.startswith("torch"):
        return _imresize_torch(image, scale)
    raise DiversegError(f"imresize takes a numpy array or a torch tensor, got {type(image).__name__}")


def _dense_window(size: int, scale: float, first: int, count: int) -> tuple[np.ndarray, int, int]:
    """Output rows ``first:first+count`` of the 1-D resize of ``size`` inputs, restricted to the input span
    ``[lo, hi)`` they read (:func:`_span`; weights outside it are zero)."""
    _check_window(len(resize_bands(size, scale)[0]), first, count)
    lo, hi = _span(resize_bands(size, scale), first, count)
    return resize_weights(size, scale)[first : first + count, lo:hi], lo, hi


def imresize_window(image: Any, scale: float, top: int, left: int, height: int, width: int) -> Any:
    """``imresize(image, scale)`` cut to ``[top:top+height, left:left+width]``, computed from only the input
    rows and columns that window reads (the same weights, hence the same values, rounding included).

    NumPy HxW / HxWxC arrays (banded, like :func:`imresize`) or torch CxHxW / BxCxHxW tensors (dense).

    Example:
        >>> x = (np.arange(40 * 36 * 3).reshape(40, 36, 3) % 251).astype(np.uint8)
        >>> bool((imresize_window(x, 0.25, 2, 3, 5, 4) == imresize(x, 0.25)[2:7, 3:7]).all())
        True
    """
    if isinstance(image, np.ndarray):
        return _image_banded(image, scale, (top, left, height, width))
    import torch

    is_uint8, dtype = _check_torch(image)
    h, w = image.shape[-2:]
    rows, r0, r1 = _dense_window(h, scale, top, height)
    cols, c0, c1 = _dense_window(w, scale, left, width)
    part = image[..., r0:r1, c0:c1]
    as_tensor = {"dtype": dtype, "device": image.device}
    return _resize_torch(part, torch.tensor(rows, **as_tensor), torch.tensor(cols, **as_tensor), is_uint8)

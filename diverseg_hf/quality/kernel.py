"""The compiled blockiness kernel: per-coefficient sums of DCT variations over 8x8 blocks, blocks in SIMD lanes.

:func:`variation_sums` returns, for one grid (aligned, or shifted by (4, 4)), the sum over the scored blocks
of ``sqrt(h^2 + v^2)`` for each of the 64 DCT coefficients, where h and v are the second differences of that
coefficient across the left/right and upper/lower neighbouring blocks. :mod:`diverseg_hf.quality.blockiness` turns
the two grids' sums into B.

How it is fast (docs/decoding.md, section 4): each block's 8 pixels of a row are read as one 64-bit word,
and the row DCTs, column DCTs and variations are loops over blocks that LLVM vectorises. Its results are the
same on every CPU: no fused multiply-add, and each block's terms are added in their own slot and summed in a
fixed order at the end.

Example:
    >>> import numpy as np
    >>> gray = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> variation_sums(gray, 0, 7, 7).shape
    (64,)
"""

from __future__ import annotations

import sys

import numba
import numpy as np

BLOCK = 8


def _dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II matrix, rows = frequencies."""
    k = np.arange(BLOCK)
    mat = np.sqrt(2.0 / BLOCK) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * BLOCK))
    mat[0] = 1.0 / np.sqrt(BLOCK)
    return mat


DCT8 = _dct_matrix()
# Even/odd halves of the DCT matrix: even frequencies act on x[n] + x[7-n], odd ones on x[n] - x[7-n].
_EVEN = np.ascontiguousarray(DCT8[0::2, :4])
_ODD = np.ascontiguousarray(DCT8[1::2, :4])


# Byte order of a uint64 word holding 8 consecutive pixels: pixel m sits at bit 8m on little-endian CPUs.
_BYTE_SHIFTS = tuple(np.uint64(8 * m if sys.byteorder == "little" else 56 - 8 * m) for m in range(BLOCK))


@numba.njit(inline="always")
def _dct8(x0, x1, x2, x3, x4, x5, x6, x7):  # pragma: no cover - compiled
    """8-point orthonormal DCT-II of eight scalars, by the even/odd split (half the multiplies).

    The matrix halves are module constants, so LLVM knows no store can change them and vectorizes
    the loops that call this across blocks.
    """
    s0, s1, s2, s3 = x0 + x7, x1 + x6, x2 + x5, x3 + x4
    d0, d1, d2, d3 = x0 - x7, x1 - x6, x2 - x5, x3 - x4
    even, odd = _EVEN, _ODD
    return (
        even[0, 0] * s0 + even[0, 1] * s1 + even[0, 2] * s2 + even[0, 3] * s3,
        odd[0, 0] * d0 + odd[0, 1] * d1 + odd[0, 2] * d2 + odd[0, 3] * d3,
        even[1, 0] * s0 + even[1, 1] * s1 + even[1, 2] * s2 + even[1, 3] * s3,
        odd[1, 0] * d0 + odd[1, 1] * d1 + odd[1, 2] * d2 + odd[1, 3] * d3,
        even[2, 0] * s0 + even[2, 1] * s1 + even[2, 2] * s2 + even[2, 3] * s3,
        odd[2, 0] * d0 + odd[2, 1] * d1 + odd[2, 2] * d2 + odd[2, 3] * d3,
        even[3, 0] * s0 + even[3, 1] * s1 + even[3, 2] * s2 + even[3, 3] * s3,
        odd[3, 0] * d0 + odd[3, 1] * d1 + odd[3, 2] * d2 + odd[3, 3] * d3,
    )


@numba.njit(inline="always")
def _pixel(word, m):  # pragma: no cover - compiled
    """Pixel ``m`` (0-7) of a uint64 word that holds 8 consecutive uint8 pixels, as a float."""
    return float((word >> _BYTE_SHIFTS[m]) & np.uint64(255))


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _row_dcts(gray, top, left, count, rows):  # pragma: no cover - compiled
    """1-D DCTs of pixel rows ``top..top+7`` of ``count`` blocks starting at column ``left``.

    ``rows[i, v, c]`` = frequency ``v`` of row ``i`` of block ``c``. Each block's 8 pixels of a row are
    read as one uint64 word, so the loop over blocks runs in SIMD lanes (one block per lane).
    """
    for i in range(8):
        words = gray[top + i, left : left + 8 * count].view(np.uint64)
        out = rows[i]
        for c in range(count):
            w = words[c]
            y = _dct8(_pixel(w, 0), _pixel(w, 1), _pixel(w, 2), _pixel(w, 3),
                      _pixel(w, 4), _pixel(w, 5), _pixel(w, 6), _pixel(w, 7))
            for v in range(8):
                out[v, c] = y[v]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _column_dcts(rows, coef, count):  # pragma: no cover - compiled
    """The column DCTs completing the 2-D DCT: ``coef[u * 8 + v, c]``, blocks in SIMD lanes."""
    for v in range(8):
        for c in range(count):
            y = _dct8(rows[0, v, c], rows[1, v, c], rows[2, v, c], rows[3, v, c],
                      rows[4, v, c], rows[5, v, c], rows[6, v, c], rows[7, v, c])
            for u in range(8):
                coef[u * 8 + v, c] = y[u]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _add_variations(up, centre, down, acc, count):  # pragma: no cover - compiled
    """``acc[k, c] += sqrt(h^2 + v^2)`` for the centre block row's blocks 1..count-2 (their neighbours exist)."""
    for k in range(64):
        total, above, middle, below = acc[k], up[k], centre[k], down[k]
        for c in range(1, count - 1):
            twice = 2.0 * middle[c]
            horizontal = middle[c - 1] + middle[c + 1] - twice
            vertical = above[c] + below[c] - twice
            total[c] += np.sqrt(horizontal * horizontal + vertical * vertical)


@numba.njit(nogil=True, cache=True, boundscheck=False)
def variation_sums(gray, offset, hb, wb):  # pragma: no cover - compiled
    """Sum over blocks 2..hb-2 x 2..wb-2 of V per coefficient, for the grid starting at (offset, offset).

    Block row 0 and column 0 are never anyone's neighbour and are skipped: column index c below is
    block column c + 1. Block rows are transformed one at a time into a ring of three; each block's
    terms are accumulated in its own slot and summed at the end (a fixed order, the same on every CPU:
    no reassociation, no fused multiply-add).
    """
    count = wb - 1
    rows = np.empty((8, 8, count))
    ring = np.empty((3, 64, count))
    acc = np.zeros((64, count))
    for r in range(1, hb):
        coef = ring[r % 3]
        _row_dcts(gray, offset + r * 8, offset + 8, count, rows)
        _column_dcts(rows, coef, count)
        if r >= 3:  # block row r-1 now has both vertical neighbours
            _add_variations(ring[(r - 2) % 3], ring[(r - 1) % 3], coef, acc, count)
    sums = np.zeros(64)
    for k in range(64):
        for c in range(1, count - 1):
            sums[k] += acc[k, c]
    return sums

"""Per-image JPEG blockiness B(x) (Bhardwaj & Pankajakshan 2018), exactly as the DiverSeg scorer.

B compares, for each of the 64 DCT frequencies, how much block-DCT coefficients vary between
neighbouring 8x8 blocks on the JPEG grid and on a grid shifted by (4, 4). JPEG-compressed images
have much smoother coefficients across true block borders, so B grows with compression: pristine
images score about 1-3, JPEG q75 about 20-120.

The released scorer's quirks are reproduced: block counts leave a margin of 4-11 pixels, only blocks
2..n-2 are summed, and the sum is divided by (n-2)(m-2). Values agree with it to float64 rounding.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(blockiness(rng.integers(0, 256, (64, 64), dtype=np.uint8)), 4)  # white noise
    13.1841
    >>> blockiness_of_gray(np.zeros((64, 64), np.uint8)).reason
    'undefined: flat image (a DCT coefficient never varies across blocks)'
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from ..decode.images import ImageLike, decode_gray, find_image_files
from ..errors import DiversegError, ImageError, check_at_least
from ..files import write_atomic
from ..processes import process_pool
from .basis import escape_name
from .kernel import BLOCK, variation_sums

#: Fewest 8x8 blocks per dimension for which B is defined (the summed range 2..n-2 must be non-empty).
MIN_BLOCKS = 4


@dataclass(frozen=True)
class BlockinessResult:
    """A blockiness value, or NaN with the reason it is undefined or the image failed.

    ``error`` is True for images that could not be decoded (corrupt, truncated, too large), False
    for decodable images whose blockiness is simply undefined (too small, flat).
    """

    value: float
    reason: str | None = None
    error: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


def block_counts(height: int, width: int) -> tuple[int, int]:
    """Blocks per column and row used by the scorer: a margin of 4..11 pixels is always left.

    Example:
        >>> block_counts(480, 500)  # 480 % 8 = 0 -> 472 usable rows; 500 % 8 = 4 -> 496 columns
        (59, 62)
    """

    def usable(n: int) -> int:
        margin = n % BLOCK
        return n - margin if margin >= 4 else n - margin - BLOCK

    return max(usable(height), 0) // BLOCK, max(usable(width), 0) // BLOCK


def _undefined_reason(height: int, width: int) -> str | None:
    hb, wb = block_counts(height, width)
    if hb < MIN_BLOCKS or wb < MIN_BLOCKS:
        return (
            f"undefined: image {width}x{height} too small "
            f"(needs at least {MIN_BLOCKS} 8x8 blocks per side after margins, i.e. 36x36 px)"
        )
    return None


def mean_variations(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """V_avg on the aligned grid and on the (4, 4)-shifted grid, 64 values each.

    ``gray`` must be large enough (see :func:`block_counts`, at least 4 blocks per side).
    """
    hb, wb = block_counts(*gray.shape)
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    divisor = (hb - 2) * (wb - 2)
    aligned = variation_sums(gray, 0, hb, wb) / divisor
    shifted = variation_sums(gray, 4, hb, wb) / divisor
    return aligned, shifted


def from_variations(aligned: np.ndarray, shifted: np.ndarray) -> BlockinessResult:
    """B = sum |(Vc - V) / V| over the 64 positions; NaN with a reason when some V is zero."""
    if not np.all(aligned > 0):
        return BlockinessResult(math.nan, "undefined: flat image (a DCT coefficient never varies across blocks)")
    return BlockinessResult(float(np.sum(np.abs((shifted - aligned) / aligned))))


def blockiness_of_gray(gray: np.ndarray) -> BlockinessResult:
    """B of an HxW uint8 gray image (already converted the OpenCV way).

    Example:
        >>> blockiness_of_gray(np.zeros((20, 20), np.uint8)).reason[:9]
        'undefined'
    """
    height, width = gray.shape
    reason = _undefined_reason(height, width)
    if reason:
        return BlockinessResult(math.nan, reason)
    return from_variations(*mean_variations(gray))


def score_image(image: ImageLike) -> BlockinessResult:
    """B of any image-like input; never raises for a bad image (the reason is in the result).

    Example:
        >>> score_image(b"not an image").reason
        'corrupt: not a recognised image format'
    """
    try:
        gray = decode_gray(image)
    except ImageError as exc:
        return BlockinessResult(math.nan, exc.reason, error=True)
    return blockiness_of_gray(gray)


def blockiness(image: ImageLike) -> float:
    """B(x) of a path, bytes, PIL image or uint8 array (HxWx3 RGB or HxW gray).

    Returns NaN when B is undefined (image too small, flat); use :func:`score_image` for the reason.
    Raises :class:`~diverseg_hf.errors.ImageError` for corrupt, truncated or oversized files.

    Example:
        >>> import numpy as np
        >>> math.isnan(blockiness(np.zeros((100, 100, 3), np.uint8)))
        True
    """
    gray = decode_gray(image)
    return blockiness_of_gray(gray).value


def iter_blockiness(
    images: Iterable[ImageLike], workers: int = 1, chunksize: int = 8
) -> Iterator[BlockinessResult]:
    """Score many images in order, over ``workers`` processes; one bad image never stops the run.

    Example:
        >>> [r.reason.split(":")[0] for r in iter_blockiness([b"", np.zeros((9, 9), np.uint8)])]
        ['empty', 'undefined']
    """
    check_at_least("workers", workers)
    if workers == 1:
        yield from map(score_image, images)
        return
    with process_pool(workers) as pool:
        yield from pool.map(score_image, images, chunksize=chunksize)


def blockiness_batch(images: Iterable[ImageLike], workers: int = 1) -> list[BlockinessResult]:
    """List form of :func:`iter_blockiness`."""
    return list(iter_blockiness(images, workers=workers))


#: One scored file: its path and result.
Scored = tuple[Path, BlockinessResult]


@dataclass
class TsvSummary:
    """How many files of a TSV run were scored, undefined (too small, flat) or errors (undecodable)."""

    scored: int = 0
    undefined: int = 0
    errors: int = 0

    def add(self, result: BlockinessResult) -> None:
        if result.ok:
            self.scored += 1
        elif result.error:
            self.errors += 1
        else:
            self.undefined += 1

    @property
    def total(self) -> int:
        return self.scored + self.undefined + self.errors

    def __str__(self) -> str:
        return f"{self.scored} scored, {self.undefined} undefined, {self.errors} errors"


def tsv_line(path: str | os.PathLike, result: BlockinessResult) -> str:
    r"""One line of the released scorer's format: ``path<TAB>value``, ``nan`` where there is no value.

    A name that would break the format (a line break, an undecodable byte, a leading quote) is written
    quoted (:func:`~diverseg_hf.quality.basis.escape_name`); other names exactly as the released scorer.

    Example:
        >>> tsv_line("a.png", BlockinessResult(1.5)), tsv_line("b.png", BlockinessResult(math.nan, "empty", True))
        ('a.png\t1.5\n', 'b.png\tnan\n')
    """
    name = escape_name(str(path))
    return f"{name}\t{result.value!r}\n" if result.ok else f"{name}\tnan\n"


def write_blockiness_tsv(
    paths: Iterable[str | os.PathLike],
    output: str | os.PathLike | TextIO | None = None,
    workers: int = 1,
    monitor: Callable[[Iterator[Scored], int], Iterable[Scored]] | None = None,
) -> TsvSummary:
    r"""Score image files and folders (recursive) into ``path<TAB>value`` lines, in sorted order.

    ``output`` is a file path (written atomically: absent, old or complete), an open text stream, or
    None for stdout. ``monitor(pairs, total)`` wraps the ``(path, result)`` pairs as they come, e.g. to
    show progress and reasons (the CLI passes a tqdm bar).
    Raises DiversegError before any work for a missing path, no image files or ``workers`` < 1.

    Example:
        >>> import io, tempfile
        >>> folder = Path(tempfile.mkdtemp()); _ = (folder / "a.png").write_bytes(b"")
        >>> out = io.StringIO(); str(write_blockiness_tsv([folder], out)), out.getvalue().endswith("a.png\tnan\n")
        ('0 scored, 0 undefined, 1 errors', True)
    """
    check_at_least("workers", workers)
    paths = list(paths)
    try:
        files = find_image_files(paths)
    except FileNotFoundError as exc:
        raise DiversegError(str(exc)) from None
    if not files:
        raise DiversegError(f"no image files found under {' '.join(str(p) for p in paths)}")
    summary = TsvSummary()

    def write(sink: TextIO) -> None:
        pairs = zip(files, iter_blockiness((str(f) for f in files), workers=workers))
        for path, result in monitor(pairs, len(files)) if monitor else pairs:
            sink.write(tsv_line(path, result))
            summary.add(result)

    def write_utf8(raw: BinaryIO) -> None:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        write(text)
        text.flush()
        text.detach()

    if output is None or hasattr(output, "write"):
        write(output or sys.stdout)
    else:
        write_atomic(output, write_utf8)
    return summary

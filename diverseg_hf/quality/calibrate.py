"""Build a quality-estimate basis from any pristine corpus: re-encode as JPEG at known qualities, score.

For each image of the reference corpus, quality 100 scores the original file as it is (the paper
used the PNG originals); every other quality scores the image after a Pillow JPEG round trip in
memory (decode -> encode at that quality -> decode). The encoder settings are fixed and recorded in
``basis.json`` (see :data:`ENCODER`). Output, in the released format that :func:`load_basis` reads::

    OUT/NAME.txt        q100 (the originals)     path<TAB>value
    OUT/NAME_q95.txt    q95 ...
    OUT/basis.json      qualities, encoder settings, package version, n per quality, failures

Images that fail to decode, or whose blockiness is undefined at some quality, are skipped (for that
quality) and counted.

Example:
    >>> basis = calibrate("pristine_pngs/", "my_basis/", qualities=(100, 75), workers=2)  # doctest: +SKIP
    >>> sorted(basis)  # doctest: +SKIP
    [75, 100]
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, features
from tqdm import tqdm

from ..decode.images import decode_rgb, find_image_files, read_bytes
from ..errors import DiversegError, ImageError, check_at_least
from ..files import write_bytes_atomic
from ..keys import printable_name
from ..processes import process_pool
from ..version import __version__
from .basis import Basis
from .blockiness import BlockinessResult, score_image, tsv_line

logger = logging.getLogger(__name__)

DEFAULT_QUALITIES = (100, 95, 85, 75, 50)

#: Pillow JPEG settings used for every quality below 100 (baseline, 4:2:0, standard tables).
ENCODER = {"format": "JPEG", "subsampling": "4:2:0", "optimize": False, "progressive": False}
_PIL_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
_MAX_EXAMPLES = 20


def encoder_settings() -> dict[str, object]:
    """The JPEG encoder and settings calibration uses, with library versions (recorded in basis.json)."""
    return {
        **ENCODER,
        "encoder": "Pillow",
        "pillow": Image.__version__,
        "libjpeg_turbo": features.version_feature("libjpeg_turbo"),
        "q100": "original file, not re-encoded",
    }


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an HxWx3 uint8 RGB array as JPEG bytes with the calibration encoder settings.

    Example:
        >>> jpeg_roundtrip(np.zeros((16, 16, 3), np.uint8), 75)[:2]
        b'\\xff\\xd8'
    """
    buf = io.BytesIO()
    Image.fromarray(rgb).save(
        buf,
        format=ENCODER["format"],
        quality=int(quality),
        subsampling=_PIL_SUBSAMPLING[ENCODER["subsampling"]],
        optimize=ENCODER["optimize"],
        progressive=ENCODER["progressive"],
    )
    return buf.getvalue()


def score_versions(path: str | os.PathLike | bytes, qualities: Iterable[int]) -> dict[int, BlockinessResult]:
    """Blockiness of one reference image at each quality (100 = the original bytes); never raises.

    Example:
        >>> score_versions(b"not an image", [100, 75])[75].reason
        'corrupt: not a recognised image format'
    """
    qualities = list(qualities)
    try:
        data = read_bytes(path)
        rgb = decode_rgb(data) if any(q != 100 for q in qualities) else None
    except ImageError as exc:
        failed = BlockinessResult(float("nan"), exc.reason, error=True)
        return dict.fromkeys(qualities, failed)
    return {q: score_image(data if q == 100 else jpeg_roundtrip(rgb, q)) for q in qualities}


def _iter_scores(files: list[Path], qualities: tuple[int, ...], workers: int) -> Iterator[dict[int, BlockinessResult]]:
    job = partial(score_versions, qualities=qualities)
    if workers <= 1:
        yield from map(job, files)
        return
    with process_pool(workers) as pool:
        yield from pool.map(job, files, chunksize=4)


def _tsv_name(name: str, quality: int) -> str:
    return f"{name}.txt" if quality == 100 else f"{name}_q{quality}.txt"


def calibrate(
    reference: str | os.PathLike,
    out_dir: str | os.PathLike,
    qualities: Iterable[int] = DEFAULT_QUALITIES,
    workers: int = 1,
    name: str | None = None,
) -> Basis:
    """Score a pristine corpus at each JPEG quality and write a basis folder; return the basis.

    ``reference`` is a folder of images (searched recursively) or one image file; ``name`` (default:
    the folder's name) names the TSV files. The written folder is what ``load_basis(out_dir)`` and
    ``diverseg quality --basis out_dir`` read.

    Example:
        >>> basis = calibrate("DF2K_HR/", "basis_df2k/", workers=2)  # doctest: +SKIP
        >>> {q: len(v) for q, v in basis.items()}  # doctest: +SKIP
        {100: 3450, 95: 3450, 85: 3450, 75: 3450, 50: 3450}
    """
    qualities = tuple(sorted({int(q) for q in qualities}, reverse=True))
    if not qualities or not all(1 <= q <= 100 for q in qualities):
        raise DiversegError(f"qualities must be integers in 1..100, got {qualities or 'none'}")
    check_at_least("workers", workers)
    reference = Path(reference)
    try:
        files = find_image_files([reference])
    except FileNotFoundError as exc:
        raise DiversegError(str(exc)) from None
    if not files:
        raise DiversegError(f"no image files found under {reference}")
    name = name or reference.resolve().stem
    if not name or "/" in name or os.sep in name or re.search(r"_q\d+$", name):
        raise DiversegError(f"invalid basis name {name!r} (no slashes, must not end in _q<digits>)")
    root = reference if reference.is_dir() else reference.parent

    lines: dict[int, list[str]] = {q: [] for q in qualities}
    values: dict[int, list[float]] = {q: [] for q in qualities}
    failures = {q: {"errors": 0, "undefined": 0} for q in qualities}
    examples: list[str] = []
    results = _iter_scores(files, qualities, workers)
    for path, by_quality in tqdm(zip(files, results), total=len(files), unit="img", desc="calibrate"):
        rel = path.relative_to(root).as_posix()
        for q, result in by_quality.items():
            if result.ok:
                lines[q].append(tsv_line(rel, result))
                values[q].append(result.value)
                continue
            failures[q]["errors" if result.error else "undefined"] += 1
            if len(examples) < _MAX_EXAMPLES:
                examples.append(f"{printable_name(rel)} (q{q}): {result.reason}")
            logger.info("%s at q%d skipped: %s", printable_name(rel), q, result.reason)

    out = Path(out_dir)
    for q in qualities:
        write_bytes_atomic(out / _tsv_name(name, q), "".join(lines[q]).encode("utf-8"))
    record = {
        "name": name,
        "reference": str(reference),
        "images": len(files),
        "qualities": list(qualities),
        "files": {str(q): _tsv_name(name, q) for q in qualities},
        "n": {str(q): len(values[q]) for q in qualities},
        "failures": {str(q): failures[q] for q in qualities},
        "failure_examples": examples,
        "encoder": encoder_settings(),
        "scorer": "diverseg_hf.quality.blockiness.score_image",
        "diverseg_hf": __version__,
    }
    write_bytes_atomic(out / "basis.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    skipped = {q: sum(failures[q].values()) for q in qualities if sum(failures[q].values())}
    if skipped:
        logger.warning("calibrate: skipped images per quality: %s", skipped)
    return {q: np.asarray(values[q], np.float64) for q in qualities}

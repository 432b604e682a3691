"""Running scorers over records: decode once, batch, merge columns and errors, survive out-of-memory.

The engine-agnostic work of one unit (:func:`score_unit`) is a pure function any engine calls: it
decodes each record once (:func:`prepare_records`), runs CPU scorers on the decoded images and GPU
scorers in batches (:func:`run_scorer`: an out-of-memory batch is halved and retried; any other
failure is retried image by image, and what still fails is recorded in ``error``, never lost).

Example:
    >>> from diverseg_hf.sources import Record
    >>> rows, images = prepare_records([Record("k", b"not an image", "x")], [])
    >>> rows[0]["error"].split(":")[0], images
    ('corrupt', [None])
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..errors import DiversegError, ImageError, is_out_of_memory
from ..images import decode_rgb, probe
from ..storage.score_table import table_schema
from .base import Scorer

if TYPE_CHECKING:
    from ..sources import Record, Unit

logger = logging.getLogger(__name__)


def _join_errors(*reasons: str | None) -> str | None:
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None


def prepare_records(records: Iterable[Record], scorers: Sequence[Scorer]) -> tuple[list[dict], list]:
    """Decode each record once, fill the base columns, run ``scorers`` on the good images.

    Returns ``(rows, images)``: one row dict per record and the decoded RGB array (None where the
    record could not be decoded; its ``error`` holds the :class:`ImageError` reason).
    """
    rows: list[dict] = []
    images: list[np.ndarray | None] = []
    for record in records:
        row: dict[str, Any] = {
            "key": record.key,
            "origin": record.origin,
            "sha256": hashlib.sha256(record.data).hexdigest(),
            "bytes": len(record.data),
            "width": None,
            "height": None,
            "format": None,
            "error": None,
        }
        rgb = None
        try:
            if record.error:  # the source could not hand over the bytes
                row["error"] = record.error
            else:
                info = probe(record.data)
                row["format"] = info.format
                row["width"], row["height"] = info.width, info.height
                rgb = decode_rgb(record.data)
                row["height"], row["width"] = int(rgb.shape[0]), int(rgb.shape[1])  # after EXIF rotation
        except ImageError as exc:
            row["error"] = exc.reason
        rows.append(row)
        images.append(rgb)
    for scorer in scorers:
        _merge(rows, images, scorer)
    return rows, images


def run_scorer(scorer: Scorer, images: list[np.ndarray], batch_size: int) -> dict[str, list]:
    """Call ``scorer`` over ``images`` in batches; never loses an image.

    Out of memory: the batch is halved and retried (logged). Any other exception: the batch is
    retried one image at a time, and an image that still fails gets the exception as its error.
    """
    out: dict[str, list] = {name: [] for name in [*scorer.columns, "error"]}
    start = 0
    size = max(1, batch_size)
    while start < len(images):
        chunk = images[start : start + size]
        try:
            result = scorer(chunk)
        except Exception as exc:
            if is_out_of_memory(exc) and size > 1:
                size = max(1, size // 2)
                logger.warning("%s: out of memory; retrying with batch size %d", scorer.name, size)
                _empty_cache()
                continue
            if len(chunk) > 1:
                result = _one_by_one(scorer, chunk)
            else:
                kind = "oom" if is_out_of_memory(exc) else "scorer"
                result = {name: [None] for name in scorer.columns}
                result["error"] = [f"{kind}: {scorer.name}: {type(exc).__name__}: {exc}"]
        for name in out:
            values = result.get(name) or [None] * len(chunk)
            if len(values) != len(chunk):
                raise DiversegError(f"scorer {scorer.name} returned {len(values)} {name!r} values for {len(chunk)}")
            out[name].extend(values)
        start += len(chunk)
    return out


def _one_by_one(scorer: Scorer, chunk: list[np.ndarray]) -> dict[str, list]:
    parts = [run_scorer(scorer, [image], 1) for image in chunk]
    return {name: [p[name][0] for p in parts] for name in parts[0]}


def _empty_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _merge(rows: list[dict], images: list, scorer: Scorer, batch_size: int | None = None) -> None:
    """Run ``scorer`` on the decodable images of ``rows`` and merge its columns and errors."""
    good = [i for i, im in enumerate(images) if im is not None]
    for row in rows:
        for name in scorer.columns:
            row.setdefault(name, None)
    if not good:
        return
    result = run_scorer(scorer, [images[i] for i in good], batch_size or scorer.default_batch_size)
    for j, i in enumerate(good):
        for name in scorer.columns:
            rows[i][name] = result[name][j]
        rows[i]["error"] = _join_errors(rows[i]["error"], result["error"][j])


def score_unit(
    unit: Unit,
    scorers: Sequence[Scorer],
    batch_size: int | None = None,
    prepare: Callable[[list[Record]], tuple[list[dict], list]] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> pa.Table:
    """Score every record of ``unit``: the engine-agnostic work of one unit, as an Arrow table.

    Records are read in batches of ``batch_size`` (default: the largest scorer default). With
    ``prepare`` (an engine's pool doing decode + CPU scorers elsewhere), only GPU scorers run here.
    """
    size = batch_size or max((s.default_batch_size for s in scorers), default=32)
    here = [s for s in scorers if s.uses_gpu] if prepare else list(scorers)
    rows: list[dict] = []
    batch: list[Record] = []

    def flush() -> None:
        if not batch:
            return
        if prepare is not None:
            done, images = prepare(batch)
            for scorer in here:
                _merge(done, images, scorer, size)
        else:
            done, images = prepare_records(batch, [s for s in here if not s.uses_gpu])
            for scorer in here:
                if scorer.uses_gpu:
                    _merge(done, images, scorer, size)
        rows.extend(done)
        if on_batch:
            on_batch(len(batch))
        batch.clear()

    for record in unit.records():
        batch.append(record)
        if len(batch) >= size:
            flush()
    flush()
    schema = table_schema(scorers)
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)

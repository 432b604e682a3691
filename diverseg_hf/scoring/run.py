"""Running scorers over records: decode once, batch, merge columns and errors, survive out-of-memory.

Each batch of records goes through two stages. The CPU stage (:func:`prepare_batch`, run by the
engine's CPU workers) decodes each record once, runs the CPU scorers and the GPU scorers'
preparers (:meth:`~diverseg_hf.scoring.base.Scorer.preparer`). The GPU stage (:func:`score_batch`)
runs the GPU scorers in batches (:func:`run_scorer`, the one layer that survives a scorer's failures:
on out-of-memory the scorer's own batches, then the images per call, are halved and the call retried;
any other failure is retried image by image, and what still fails is recorded in ``error``, never
lost). :func:`score_units` pipelines the two: the CPU stage of the next batches runs in a background
thread (which may hand it to a process pool) while the GPU stage runs the current one.

Example:
    >>> from diverseg_hf.sources import Record
    >>> rows, images = prepare_records([Record("k", b"not an image", "x")], [])
    >>> rows[0]["error"].split(":")[0], images
    ('corrupt', [None])
"""

from __future__ import annotations

import collections
import functools
import hashlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..decode.images import decode_rgb, probe
from ..errors import DiversegError, ImageError, is_out_of_memory
from ..storage.score_table import table_schema
from .base import Scorer

if TYPE_CHECKING:
    from ..sources import Record, Unit

logger = logging.getLogger(__name__)

#: Batches the CPU stage may run ahead of the GPU stage when GPU scorers are present.
DEFAULT_AHEAD = 2


def _join_errors(*reasons: str | None) -> str | None:
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None


@dataclass
class Batch:
    """The CPU stage's output for a batch of records.

    ``rows``: one row dict per record (base columns, CPU scorers' columns, errors so far);
    ``images``: the decoded RGB arrays (None where decoding failed); ``inputs``: per GPU scorer with
    a preparer, its prepared item per image (None where decoding or preparing failed).
    """

    rows: list[dict] = field(default_factory=list)
    images: list = field(default_factory=list)
    inputs: dict[str, list] = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: Iterable[Batch]) -> Batch:
        """One batch from consecutive parts (e.g. the chunks a process pool prepared)."""
        out = cls()
        for part in parts:
            out.rows.extend(part.rows)
            out.images.extend(part.images)
            for name, items in part.inputs.items():
                out.inputs.setdefault(name, []).extend(items)
        return out


def decode_record(record: Record) -> tuple[dict[str, Any], np.ndarray | None]:
    """The base columns of ``record`` and its decoded RGB array (None + ``error`` when it cannot be decoded)."""
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
    return row, rgb


def prepare_records(records: Iterable[Record], scorers: Sequence[Scorer]) -> tuple[list[dict], list]:
    """Decode each record once, fill the base columns, run ``scorers`` on the good images.

    Returns ``(rows, images)``: one row dict per record and the decoded RGB array (None where the
    record could not be decoded; its ``error`` holds the :class:`ImageError` reason).
    """
    batch = prepare_batch(records, scorers)
    return batch.rows, batch.images


def prepare_batch(records: Sequence[Record], cpu_scorers: Sequence[Scorer],
                  preparers: dict[str, Callable[[np.ndarray], Any]] | None = None) -> Batch:
    """The CPU stage: decode each record once (:func:`decode_record`), then :func:`prepare_decoded`.

    ``preparers`` maps a GPU scorer's name to its :meth:`~diverseg_hf.scoring.base.Scorer.preparer`.
    """
    decoded = [decode_record(record) for record in records]
    return prepare_decoded([row for row, _ in decoded], [rgb for _, rgb in decoded], cpu_scorers, preparers)


def prepare_decoded(rows: list[dict], images: list, cpu_scorers: Sequence[Scorer],
                    preparers: dict[str, Callable[[np.ndarray], Any]] | None = None) -> Batch:
    """The CPU stage after decoding: ``cpu_scorers`` on ``images`` (None where decoding failed, its
    ``rows[i]["error"]`` saying why), then the GPU scorers' ``preparers``."""
    for scorer in cpu_scorers:
        _merge(rows, images, scorer)
    inputs = {name: _prepare(rows, images, name, fn) for name, fn in (preparers or {}).items()}
    return Batch(rows, images, inputs)


def _prepare(rows: list[dict], images: list, name: str, fn: Callable[[np.ndarray], Any]) -> list:
    items: list = []
    for row, image in zip(rows, images):
        item = None
        if image is not None:
            try:
                item = fn(image)
            except Exception as exc:
                row["error"] = _join_errors(row["error"], f"prepare: {name}: {type(exc).__name__}: {exc}")
        items.append(item)
    return items


def preparers_of(scorers: Sequence[Scorer]) -> dict[str, Callable[[np.ndarray], Any]]:
    """The preparers of the GPU scorers that have one, by scorer name."""
    found = {s.name: s.preparer() for s in scorers if s.uses_gpu}
    return {name: fn for name, fn in found.items() if fn is not None}


def pin_inputs(batch: Batch) -> Batch:
    """``batch`` with its prepared torch tensors in pinned memory when CUDA is present (else unchanged).

    Pinned (page-locked) memory lets a scorer copy them to the GPU with ``non_blocking=True``.
    """
    torch = sys.modules.get("torch")
    if not batch.inputs or torch is None or not torch.cuda.is_available():
        return batch

    def pin(item: Any) -> Any:
        if isinstance(item, torch.Tensor):
            return item.pin_memory()
        return tuple(pin(x) for x in item) if isinstance(item, tuple) else item

    batch.inputs = {name: [pin(item) for item in items] for name, items in batch.inputs.items()}
    return batch


def run_scorer(scorer: Scorer, images: list[Any], batch_size: int) -> dict[str, list]:
    """Call ``scorer`` over ``images`` (or prepared items) in batches; never loses an image.

    Out of memory: the scorer's own batches are halved first (:meth:`~diverseg_hf.scoring.base.Scorer.halve_batches`,
    e.g. SAM's prompts per decoder call), then the batch (the images actually sent); each time the call
    is retried (logged). Any other exception: the batch is retried one image at a time, and an image
    that still fails gets the exception as its error (an :class:`ImageError`'s reason as it is).
    """
    out: dict[str, list] = {name: [] for name in [*scorer.columns, "error"]}
    start = 0
    size = max(1, batch_size)
    while start < len(images):
        chunk = images[start : start + size]
        try:
            result = scorer(chunk)
        except Exception as exc:
            if is_out_of_memory(exc) and scorer.halve_batches():
                logger.warning("%s: out of memory; its own batches halved (%s)", scorer.name, scorer.settings())
                _empty_cache()
                continue
            if is_out_of_memory(exc) and len(chunk) > 1:
                size = len(chunk) // 2
                logger.warning("%s: out of memory; retrying with batch size %d", scorer.name, size)
                _empty_cache()
                continue
            if len(chunk) > 1:
                result = _one_by_one(scorer, chunk)
            else:
                kind = "oom" if is_out_of_memory(exc) else "scorer"
                result = {name: [None] for name in scorer.columns}
                reason = exc.reason if isinstance(exc, ImageError) else \
                    f"{kind}: {scorer.name}: {type(exc).__name__}: {exc}"
                result["error"] = [reason.splitlines()[0]]
        for name in out:
            values = result.get(name) or [None] * len(chunk)
            if len(values) != len(chunk):
                raise DiversegError(f"scorer {scorer.name} returned {len(values)} {name!r} values for {len(chunk)}")
            out[name].extend(values)
        start += len(chunk)
    return out


def _one_by_one(scorer: Scorer, chunk: list[Any]) -> dict[str, list]:
    parts = [run_scorer(scorer, [image], 1) for image in chunk]
    return {name: [p[name][0] for p in parts] for name in parts[0]}


def _empty_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _merge(rows: list[dict], inputs: list, scorer: Scorer, batch_size: int | None = None) -> None:
    """Run ``scorer`` on the inputs of ``rows`` that are not None and merge its columns and errors."""
    good = [i for i, item in enumerate(inputs) if item is not None]
    for row in rows:
        for name in scorer.columns:
            row.setdefault(name, None)
    if not good:
        return
    result = run_scorer(scorer, [inputs[i] for i in good], batch_size or scorer.default_batch_size)
    for j, i in enumerate(good):
        for name in scorer.columns:
            rows[i][name] = result[name][j]
        rows[i]["error"] = _join_errors(rows[i]["error"], result["error"][j])


def score_batch(batch: Batch, gpu_scorers: Sequence[Scorer], batch_size: int | None = None) -> list[dict]:
    """The GPU stage: run each GPU scorer on its inputs (prepared items, else the images); the finished rows."""
    for scorer in gpu_scorers:
        _merge(batch.rows, batch.inputs.get(scorer.name, batch.images), scorer, batch_size)
    return batch.rows


class _Inline(Executor):
    """An executor that runs each call at once, in the caller's thread (no look-ahead)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _batches(units: Iterable[Unit], size: int) -> Iterator[tuple[Unit, list[Record], bool]]:
    """``(unit, records, is_last_of_unit)`` for consecutive batches of ``size`` records of each unit."""
    for unit in units:
        batch: list[Record] = []
        for record in unit.records():
            if len(batch) == size:
                yield unit, batch, False
                batch = []
            batch.append(record)
        yield unit, batch, True


def score_units(
    units: Iterable[Unit],
    scorers: Sequence[Scorer],
    batch_size: int | None = None,
    *,
    prepare: Callable[[list[Record]], Batch] | None = None,
    ahead: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, pa.Table]]:
    """Score ``units`` in order; yields ``(unit_id, table)`` as soon as each unit's last batch is scored.

    Records go in batches of ``batch_size`` (default: the largest scorer default) through the CPU
    stage (``prepare``; default :func:`prepare_batch` in a background thread) and the GPU stage
    (:func:`score_batch`, here). With ``ahead`` > 0 (default :data:`DEFAULT_AHEAD` when there are
    GPU scorers, else 0) the CPU stage runs up to ``ahead`` batches ahead, across unit boundaries,
    so that the next batches are decoded and prepared while the GPU scorers run the current one.
    The rows are the same whatever ``ahead`` is.
    """
    size = batch_size or max((s.default_batch_size for s in scorers), default=32)
    gpu = [s for s in scorers if s.uses_gpu]
    if prepare is None:
        prepare = functools.partial(prepare_batch, cpu_scorers=[s for s in scorers if not s.uses_gpu],
                                    preparers=preparers_of(gpu))
    ahead = (DEFAULT_AHEAD if gpu else 0) if ahead is None else ahead
    schema = table_schema(scorers)
    pending: collections.deque[tuple[Unit, bool, Future]] = collections.deque()
    rows: list[dict] = []
    with ThreadPoolExecutor(1, thread_name_prefix="diverseg-cpu-stage") if ahead > 0 else _Inline() as stage:
        for unit, records, last in _batches(units, size):
            pending.append((unit, last, stage.submit(lambda r=records: pin_inputs(prepare(r)))))
            while len(pending) > ahead:
                yield from _finish(*pending.popleft(), rows, gpu, size, schema, on_batch)
        while pending:
            yield from _finish(*pending.popleft(), rows, gpu, size, schema, on_batch)


def _finish(unit: Unit, last: bool, future: Future, rows: list[dict], gpu: Sequence[Scorer], size: int,
            schema: pa.Schema, on_batch: Callable[[int], None] | None) -> Iterator[tuple[str, pa.Table]]:
    """The GPU stage of one batch; yields the unit's table (and empties ``rows``) after its last batch."""
    done = score_batch(future.result(), gpu, size)
    rows.extend(done)
    if on_batch and done:
        on_batch(len(done))
    if last:
        table = pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
        rows.clear()
        yield unit.id, table


def score_unit(unit: Unit, scorers: Sequence[Scorer], batch_size: int | None = None, **options: Any) -> pa.Table:
    """Score every record of ``unit``: the engine-agnostic work of one unit, as an Arrow table.

    ``options``: ``prepare``, ``ahead`` and ``on_batch`` of :func:`score_units`.
    """
    return next(score_units([unit], scorers, batch_size, **options))[1]

"""Copy the selected records' original bytes into Parquet and tar shards, in tasks that workers run apart.

A :class:`CopyTask` is a run of shards together with the source units their rows come from; tasks share
no unit (:func:`plan_tasks`), so every unit is read once even when several processes write shards
(:func:`run_tasks`). Each shard file is written atomically, so a shard whose files exist is done and a
killed run resumes with the others. Every record is checked against the selection: same order, same
sha256 of its bytes.

Example:
    >>> plan_tasks([(0, 0, 0), (1, 0, 1), (2, 2, 2), (3, 3, 4), (4, 4, 4)])
    [[0, 1], [2], [3, 4]]
    >>> image_extension("JPEG"), tar_image_extension(["PNG", "JPEG", "JPEG"])
    ('jpg', 'jpg')
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, wait
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import DiversegError
from ..processes import process_pool
from ..sources import Record, Unit
from ..storage.formats import SHARD_FORMATS

_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff",
        "GIF": "gif", "PPM": "ppm"}


def image_extension(fmt: str | None) -> str:
    """File extension for a PIL format name (``"JPEG"`` -> ``"jpg"``)."""
    return _EXT.get((fmt or "").upper(), (fmt or "bin").lower())


def tar_image_extension(formats: Iterable[str | None]) -> str:
    """The one extension of every image member of a config's tars: its originals' most common (ties: first
    alphabetically). One name keeps one image column in ``datasets``; readers decode by content, so a PNG
    named ``.jpg`` in a mixed config still decodes as the PNG it is (its json's ``format`` says which)."""
    counts = Counter(image_extension(f) for f in formats)
    return min(counts, key=lambda ext: (-counts[ext], ext))


@dataclass(frozen=True)
class ShardJob:
    """One shard still to write: its selection rows and the final path of each format still missing."""

    index: int
    rows: pa.Table
    paths: dict[str, str]


@dataclass(frozen=True)
class CopyTask:
    """Shards that read the same units, and those units (in source order)."""

    units: tuple[Unit, ...]
    shards: tuple[ShardJob, ...]

    @property
    def num_rows(self) -> int:
        return sum(s.rows.num_rows for s in self.shards)


@dataclass(frozen=True)
class CopyContext:
    """What every shard of a config shares: the Parquet schema, the score columns, the tars' image extension,
    and the command that brings the score table up to date when the source changed since scoring."""

    schema: pa.Schema
    score_columns: tuple[str, ...]
    tar_extension: str
    rescore: str = "diverseg score"


def plan_tasks(shard_units: Sequence[tuple[int, int, int]]) -> list[list[int]]:
    """Group shards, given as ``(shard, first unit, last unit)`` in order, into runs that share no unit."""
    groups: list[list[int]] = []
    last_unit = -1
    for shard, first, last in shard_units:
        if groups and first <= last_unit:
            groups[-1].append(shard)
        else:
            groups.append([shard])
        last_unit = max(last_unit, last)
    return groups


def _checked_records(units: Iterable[Unit], keys: list[str], hashes: list[str], rescore: str) -> Iterator[Record]:
    """The records of ``keys`` from ``units``, in that order, each checked against its sha256."""
    want = set(keys)
    expected = 0
    fix = f"run `{rescore}` (a resume re-scores the changed files), then select and publish again"
    for unit in units:
        for record in unit.records(want):
            if expected >= len(keys) or record.key != keys[expected]:
                raise DiversegError(f"source changed since scoring: {record.key!r} is out of order; {fix}")
            if hashlib.sha256(record.data).hexdigest() != hashes[expected]:
                raise DiversegError(f"source changed since scoring: {record.key!r} has other bytes; {fix}")
            yield record
            expected += 1
    if expected != len(keys):
        raise DiversegError(f"source changed since scoring: {keys[expected]!r} is missing from it; {fix}")


def _open_writers(paths: dict[str, str], context: CopyContext) -> dict[str, Any]:
    return {fmt: SHARD_FORMATS[fmt].writer(path, context.schema) for fmt, path in paths.items()}


def _write_row(writers: dict[str, Any], row: dict[str, Any], data: bytes, context: CopyContext) -> None:
    scores = {c: row[c] for c in context.score_columns}  # the scores include the original format
    for fmt, writer in writers.items():
        shard = SHARD_FORMATS[fmt]
        extension = context.tar_extension if shard.one_extension else image_extension(row["format"])
        writer.write(shard.item(row["key"], data, scores, extension))


def run_task(task: CopyTask, context: CopyContext, on_row: Callable[[], None] | None = None) -> int:
    """Write the shards of ``task``; returns the number of rows written."""
    keys = [k for s in task.shards for k in s.rows.column("key").to_pylist()]
    hashes = [h for s in task.shards for h in s.rows.column("sha256").to_pylist()]
    records = _checked_records(task.units, keys, hashes, context.rescore)
    for shard in task.shards:
        writers = _open_writers(shard.paths, context)
        try:
            for row in shard.rows.to_pylist():
                _write_row(writers, row, next(records).data, context)
                if on_row is not None:
                    on_row()
            for writer in writers.values():
                writer.close()
        except BaseException:  # also a close that fails (a full disk): the other writers drop their temp files
            for writer in writers.values():
                writer.abort()
            raise
    return len(keys)


def run_tasks(tasks: list[CopyTask], context: CopyContext, workers: int, on_rows: Callable[[int], None]) -> None:
    """Run ``tasks`` in this process (``workers == 1``) or in a pool of ``workers`` processes."""
    if workers == 1 or len(tasks) <= 1:
        for task in tasks:
            run_task(task, context, lambda: on_rows(1))
        return
    with process_pool(min(workers, len(tasks))) as pool:
        pending = {pool.submit(run_task, task, context) for task in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()  # type: ignore[misc]
                on_rows(future.result())

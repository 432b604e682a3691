"""The Ray engine: score a source over a Ray cluster (one machine or many nodes) with Ray Data.

The same guarantees as the local engine, on as many GPUs as the cluster has:

1. read: one Ray task per source unit reads the unit's records (the source's own reader, so the
   source must be reachable from every node: a shared filesystem or a Hub dataset) and ends the
   unit with a marker row; blocks are sized in rows (``rows_per_block``), not bytes, so a small
   corpus is still spread over every worker.
2. score: a pool of ``workers`` actors, each holding ``gpus_per_worker`` GPUs and its own Scorer
   objects (one model load per actor, built from the specs, so with the engine options such as
   ``points_per_batch``), runs :func:`diverseg_hf.scoring.run.score_unit` on each block (``batch_size``
   images per scorer call; the CPU stage of the next batches overlaps the GPU scorers). A crashed
   actor is restarted and its block retried.
3. commit: the driver gathers each unit's rows, puts them back in source order and commits the
   unit atomically (:meth:`diverseg_hf.storage.ScoreTable.commit`) as soon as its marker and all its
   rows have arrived, so a killed driver re-run skips finished units. The table is row for row
   the one the local engine writes.

Example:
    >>> from diverseg_hf.score import score
    >>> summary = score("photos/", "scores/", ["blockiness"], workers=4, engine=ray_engine())  # doctest: +SKIP
    >>> summary = score("photos/", "scores/", ["sam"], workers=16, batch_size=8,  # doctest: +SKIP
    ...                 engine=ray_engine(address="head:6379", gpus_per_worker=1))
"""

from __future__ import annotations

import functools
import logging
import pickle
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from ..errors import DiversegError, ParameterError, check_at_least, require
from ..scoring.run import score_unit
from ..scoring.specs import ScorerSpec, build_scorers
from ..sources import Record, Unit
from ..storage import table_schema
from .records import RECORD_TYPE, pack_record, unpack_record

logger = logging.getLogger(__name__)

#: Records per Ray Data block: the unit of work handed to one actor call (and retried on a crash).
DEFAULT_ROWS_PER_BLOCK = 64
#: Seconds without any progress after which a Ray run fails (Ray Data's ExecutionTimeoutError).
DEFAULT_TIMEOUT_S = 1800.0
#: Restarts of a crashed actor, and retries of the block it was scoring.
DEFAULT_MAX_RETRIES = 3

# Helper columns that travel with the records through the pipeline, dropped before commit.
_UNIT, _SEQ, _END = "__unit", "__seq", "__end"
_RECORD = "__record"  # the whole Record (engines.records), None on an end marker
_RECORD_SCHEMA = pa.schema([(_UNIT, pa.int64()), (_SEQ, pa.int64()), (_END, pa.bool_()), (_RECORD, RECORD_TYPE)])

Engine = Callable[..., None]


@dataclass(frozen=True)
class _Block(Unit):
    """Records already read (one block of a unit), so :func:`score_unit` can score them as a unit."""

    rows: tuple[Record, ...] = ()

    def _iter(self, keys: Any) -> Iterator[Record]:
        return iter(self.rows)


def _read_units(batch: pa.Table, rows_per_block: int) -> Iterator[pa.Table]:
    """Ray read step: the records of each unit in ``batch``, then one end marker row per unit."""
    for index, blob in zip(batch.column(_UNIT).to_pylist(), batch.column("unit").to_pylist()):
        unit: Unit = pickle.loads(blob)
        rows: list[dict[str, Any]] = []
        seq = 0
        for record in unit.records():
            rows.append({_UNIT: index, _SEQ: seq, _END: False, _RECORD: pack_record(record)})
            seq += 1
            if len(rows) >= rows_per_block:
                yield pa.Table.from_pylist(rows, schema=_RECORD_SCHEMA)
                rows = []
        rows.append({_UNIT: index, _SEQ: seq, _END: True, _RECORD: None})
        yield pa.Table.from_pylist(rows, schema=_RECORD_SCHEMA)


class _ScoringActor:
    """One Ray actor: builds the scorers once, then scores blocks of records."""

    def __init__(self, specs: Sequence[ScorerSpec], batch_size: int | None, gpus: float):
        self.scorers = build_scorers(specs, ("cuda" if gpus > 0 else "cpu"))
        self.batch_size = batch_size
        self.schema = table_schema(self.scorers)

    def __call__(self, batch: pa.Table) -> pa.Table:
        is_end = batch.column(_END)
        records = batch.filter(pc.invert(is_end))
        block = _Block("block", records.num_rows,
                       rows=tuple(unpack_record(blob) for blob in records.column(_RECORD).to_pylist()))
        scored = score_unit(block, self.scorers, self.batch_size)
        markers = batch.filter(is_end)
        unscored = pa.Table.from_pylist([{}] * markers.num_rows, schema=self.schema)
        helpers = [_UNIT, _SEQ, _END]
        return pa.concat_tables([
            pa.Table.from_arrays([*records.select(helpers).columns, *scored.columns],
                                 names=[*helpers, *scored.column_names]),
            pa.Table.from_arrays([*markers.select(helpers).columns, *unscored.columns],
                                 names=[*helpers, *unscored.column_names]),
        ])


class _Assembler:
    """Driver side: collects scored rows per unit and yields each unit's table once it is complete.

    A unit is complete when its end marker (which carries the unit's record count) and every
    sequence number below it have arrived; a row delivered twice (a retried task) is kept once.
    """

    def __init__(self, units: Sequence[Unit]):
        self.units = units
        self.parts: dict[int, list[pa.Table]] = {}
        self.seen: dict[int, set[int]] = {}
        self.size: dict[int, int] = {}
        self.done: set[int] = set()

    def add(self, batch: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """Take one scored batch; yields ``(unit_id, table)`` for every unit it completes."""
        for index in sorted(set(batch.column(_UNIT).to_pylist()) - self.done):
            part = batch.filter(pc.equal(batch.column(_UNIT), index))
            ends = part.filter(part.column(_END))
            if ends.num_rows:
                self.size[index] = ends.column(_SEQ)[0].as_py()
            rows = part.filter(pc.invert(part.column(_END)))
            self.parts.setdefault(index, []).append(rows)
            self.seen.setdefault(index, set()).update(rows.column(_SEQ).to_pylist())
            if self.size.get(index) == len(self.seen[index]):
                table = pa.concat_tables(self.parts.pop(index)).sort_by(_SEQ)
                seqs = table.column(_SEQ).to_pylist()
                if len(seqs) > len(set(seqs)):
                    table = table.take([i for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]])
                del self.seen[index], self.size[index]
                self.done.add(index)
                yield self.units[index].id, table.drop_columns([_UNIT, _SEQ, _END])


def _check_reachable(address: str) -> None:
    """Fail fast, with a one-line error, when ``host:port`` (or ``ray://host:port``) does not answer."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ParameterError("address", f"must be HOST:PORT, ray://HOST:PORT or auto, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise DiversegError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _connect(ray: Any, address: str | None, runtime_env: dict[str, Any] | None) -> bool:
    """Connect to ``address`` (or start a local cluster); True when this call started Ray.

    An existing connection (``ray.init`` done by the caller) is reused as it is.
    """
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and address.removeprefix("ray://") != current:
            logger.warning("ray: already connected to %s; using it rather than %s", current, address)
        return False
    try:
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError...
        where = address or "a new local cluster"
        raise DiversegError(f"cannot start Ray on {where}: {type(exc).__name__}: {exc}") from None
    return True


def run_ray(
    units: Sequence[Unit],
    specs: Sequence[ScorerSpec],
    commit: Callable[[str, pa.Table], None],
    *,
    workers: int = 1,
    gpus: Sequence[int] | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    total: int | None = None,
    progress: bool = True,
    address: str | None = None,
    gpus_per_worker: float = 0,
    cpus_per_worker: float | None = None,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    runtime_env: dict[str, Any] | None = None,
) -> None:
    """Score ``units`` on a Ray cluster and ``commit`` each unit's table here as it completes.

    Same call shape as :func:`diverseg_hf.engines.local.run_local` (``score(..., engine=...)``);
    ``gpus``/``device`` are the local engine's and are refused or ignored here: each actor gets
    ``gpus_per_worker`` GPUs from Ray and puts its GPU scorers on ``cuda``.
    """
    if gpus:
        raise ParameterError("gpus", "picks local GPUs; with the ray engine use gpus_per_worker")
    check_at_least("rows_per_block", rows_per_block)
    if gpus_per_worker < 0 or (cpus_per_worker or 0) < 0:
        raise ParameterError("gpus_per_worker", "and cpus_per_worker must not be negative")
    if device:
        logger.info("ray: --device %s ignored; actors use cuda when --gpus-per-worker > 0", device)
    if not units:
        return
    ray = require("ray", "ray")
    require("ray.data", "ray")
    started = _connect(ray, address, runtime_env)
    try:
        _run(ray, list(units), list(specs), commit, workers=workers, batch_size=batch_size, total=total,
             progress=progress, gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
             rows_per_block=rows_per_block, timeout_s=timeout_s, max_retries=max_retries)
    finally:
        if started:
            ray.shutdown()


def _dataset(ray: Any, units: list[Unit], specs: list[ScorerSpec], *, workers: int, batch_size: int | None,
             gpus_per_worker: float, cpus_per_worker: float | None, rows_per_block: int, max_retries: int) -> Any:
    """The Ray Data pipeline: units -> read tasks (blocks of rows) -> scoring actor pool."""
    items = [{_UNIT: i, "unit": pickle.dumps(u)} for i, u in enumerate(units)]
    reads = (
        ray.data.from_items(items, override_num_blocks=len(items))
        .map_batches(_read_units, batch_size=1, batch_format="pyarrow",
                     fn_kwargs={"rows_per_block": rows_per_block})
        .repartition(target_num_rows_per_block=rows_per_block)
    )
    with warnings.catch_warnings():  # max_restarts/max_task_retries: no named parameter before Ray 2.64
        warnings.simplefilter("ignore", DeprecationWarning)
        return reads.map_batches(
            _ScoringActor, batch_size=rows_per_block, batch_format="pyarrow",
            fn_constructor_kwargs={"specs": specs, "batch_size": batch_size, "gpus": gpus_per_worker},
            compute=ray.data.ActorPoolStrategy(size=workers), num_gpus=gpus_per_worker or None,
            num_cpus=cpus_per_worker, max_restarts=max_retries, max_task_retries=max_retries,
        )


def _run(ray: Any, units: list[Unit], specs: list[ScorerSpec], commit: Callable[[str, pa.Table], None], *,
         workers: int, batch_size: int | None, total: int | None, progress: bool, gpus_per_worker: float,
         cpus_per_worker: float | None, rows_per_block: int, timeout_s: float, max_retries: int) -> None:
    resources = ray.cluster_resources()
    if gpus_per_worker * workers > resources.get("GPU", 0):
        logger.warning("ray: %d workers x %s GPUs requested, the cluster has %s GPUs now; waiting for more",
                       workers, gpus_per_worker, resources.get("GPU", 0))
    if workers * (1 if cpus_per_worker is None else cpus_per_worker) > resources.get("CPU", 0) - 1:
        logger.warning("ray: %d workers x %s CPUs leave no CPU of the %s for reading; lower cpus_per_worker "
                       "or the run may stall", workers, cpus_per_worker or 1, resources.get("CPU", 0))
    # A Dataset copies the current DataContext when it is created; put the caller's back afterwards.
    ctx = ray.data.DataContext.get_current()
    settings = {"execution_no_progress_timeout_s": timeout_s, "wait_for_min_actors_s": int(timeout_s),
                "enable_progress_bars": False, "print_on_execution_start": False}
    saved = {name: getattr(ctx, name) for name in settings}
    for name, value in settings.items():
        setattr(ctx, name, value)
    try:
        ds = _dataset(ray, units, specs, workers=workers, batch_size=batch_size, gpus_per_worker=gpus_per_worker,
                      cpus_per_worker=cpus_per_worker, rows_per_block=rows_per_block, max_retries=max_retries)
    finally:
        for name, value in saved.items():
            setattr(ctx, name, value)
    assembler = _Assembler(units)
    committed = 0
    bar = tqdm(total=total, unit="img", desc="score (ray)", disable=not progress, dynamic_ncols=True)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            bar.update(batch.num_rows - sum(batch.column(_END).to_pylist()))
            for unit_id, table in assembler.add(batch):
                commit(unit_id, table)
                committed += 1
                bar.set_postfix(units=f"{committed}/{len(units)}")
    except (DiversegError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise DiversegError(f"ray engine failed after {committed} of {len(units)} units "
                            f"(committed units are kept; re-run to resume): {type(exc).__name__}: {exc}") from exc
    finally:
        bar.close()
    if committed != len(units):
        raise DiversegError(f"ray engine returned {committed} of {len(units)} units; re-run to resume")


def ray_engine(
    *,
    address: str | None = None,
    gpus_per_worker: float = 0,
    cpus_per_worker: float | None = None,
    rows_per_block: int = DEFAULT_ROWS_PER_BLOCK,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    runtime_env: dict[str, Any] | None = None,
) -> Engine:
    """The Ray engine with its cluster options bound, for ``score(..., engine=ray_engine(...))``.

    Example:
        >>> callable(ray_engine(address="head:6379", gpus_per_worker=1))
        True
    """
    return functools.partial(run_ray, address=address, gpus_per_worker=gpus_per_worker,
                             cpus_per_worker=cpus_per_worker, rows_per_block=rows_per_block,
                             timeout_s=timeout_s, max_retries=max_retries, runtime_env=runtime_env)

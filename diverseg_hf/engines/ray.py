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

The options (:class:`~diverseg_hf.engines.options.EngineOptions`) are the same object as the local
engine's: ``workers`` actors, ``batch_size`` images per scorer call, and the Ray-only fields.

Example:
    >>> from diverseg_hf.score import score
    >>> summary = score("photos/", "scores/", ["blockiness"], workers=4, engine="ray")  # doctest: +SKIP
    >>> summary = score("photos/", "scores/", ["sam"], batch_size=8, engine=EngineOptions(  # doctest: +SKIP
    ...     engine="ray", workers=16, address="head:6379", gpus_per_worker=1))
"""

from __future__ import annotations

import logging
import pickle
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from ..errors import DiversegError, ParameterError, require
from ..scoring.run import score_unit
from ..scoring.specs import ScorerSpec, build_scorers
from ..sources import Record, Unit
from ..storage import table_schema
from .options import Commit, EngineOptions, engine_options
from .records import RECORD_TYPE, pack_record, unpack_record

logger = logging.getLogger(__name__)

# Helper columns that travel with the records through the pipeline, dropped before commit.
_UNIT, _SEQ, _END = "__unit", "__seq", "__end"
_RECORD = "__record"  # the whole Record (engines.records), None on an end marker
_RECORD_SCHEMA = pa.schema([(_UNIT, pa.int64()), (_SEQ, pa.int64()), (_END, pa.bool_()), (_RECORD, RECORD_TYPE)])


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
        self.scorers = build_scorers(specs, ("cuda" if gpus > 0 else "cpu"), load=True)
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


class RayEngine:
    """A Ray cluster (see the module doc), with ``options`` (:class:`EngineOptions` with ``engine="ray"``).

    ``device`` is the local engine's and is ignored here: each actor gets ``gpus_per_worker`` GPUs
    from Ray and puts its GPU scorers on ``cuda``.
    """

    def __init__(self, options: EngineOptions | None = None):
        self.options = options or EngineOptions(engine="ray")
        if self.options.engine != "ray":
            raise ParameterError("engine", f"of a RayEngine's options must be 'ray', not {self.options.engine!r}")

    def check(self) -> None:
        """The ``[ray]`` extra must be installed (a one-line :class:`MissingExtraError` otherwise)."""
        require("ray", "ray")
        require("ray.data", "ray")

    def run(self, units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Commit, *,
            total: int | None = None, progress: bool = True) -> None:
        """Score ``units`` on the cluster and ``commit`` each unit's table here as it completes."""
        opts = self.options
        if opts.device:
            logger.info("ray: device %s ignored; actors use cuda when gpus_per_worker > 0", opts.device)
        if not units:
            return
        self.check()
        ray = require("ray", "ray")
        started = _connect(ray, opts.address, opts.runtime_env)
        try:
            _run(ray, list(units), list(specs), commit, opts, total=total, progress=progress)
        finally:
            if started:
                ray.shutdown()


def run_ray(units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Commit, *, total: int | None = None,
            progress: bool = True, **options: Any) -> None:
    """:class:`RayEngine` with ``options`` (fields of :class:`EngineOptions`) run over ``units``.

    Example:
        >>> run_ray([], [("blockiness", {})], print, workers=2, progress=False)
    """
    RayEngine(engine_options("ray", **options)).run(units, specs, commit, total=total, progress=progress)


def _dataset(ray: Any, units: list[Unit], specs: list[ScorerSpec], opts: EngineOptions) -> Any:
    """The Ray Data pipeline: units -> read tasks (blocks of rows) -> scoring actor pool."""
    rows_per_block, gpus_per_worker, max_retries = opts.rows_per_block, opts.gpus_per_worker, opts.max_retries
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
            fn_constructor_kwargs={"specs": specs, "batch_size": opts.batch_size, "gpus": gpus_per_worker},
            compute=ray.data.ActorPoolStrategy(size=opts.workers), num_gpus=gpus_per_worker or None,
            num_cpus=opts.cpus_per_worker, max_restarts=max_retries, max_task_retries=max_retries,
        )


def _run(ray: Any, units: list[Unit], specs: list[ScorerSpec], commit: Commit, opts: EngineOptions, *,
          total: int | None, progress: bool) -> None:
    workers, gpus_per_worker, cpus_per_worker = opts.workers, opts.gpus_per_worker, opts.cpus_per_worker
    resources = ray.cluster_resources()
    if gpus_per_worker * workers > resources.get("GPU", 0):
        logger.warning("ray: %d workers x %s GPUs requested, the cluster has %s GPUs now; waiting for more",
                       workers, gpus_per_worker, resources.get("GPU", 0))
    if workers * (1 if cpus_per_worker is None else cpus_per_worker) > resources.get("CPU", 0) - 1:
        logger.warning("ray: %d workers x %s CPUs leave no CPU of the %s for reading; lower cpus_per_worker "
                       "or the run may stall", workers, cpus_per_worker or 1, resources.get("CPU", 0))
    # A Dataset copies the current DataContext when it is created; put the caller's back afterwards.
    ctx = ray.data.DataContext.get_current()
    settings = {"execution_no_progress_timeout_s": opts.timeout_s, "wait_for_min_actors_s": int(opts.timeout_s),
                "enable_progress_bars": False, "print_on_execution_start": False}
    saved = {name: getattr(ctx, name) for name in settings}
    for name, value in settings.items():
        setattr(ctx, name, value)
    try:
        ds = _dataset(ray, units, specs, opts)
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

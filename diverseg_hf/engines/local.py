"""The local engine: units scored in this process, over CPU worker processes, or one process per GPU.

- CPU scorers only, ``workers > 1``: whole units go to ``workers`` processes.
- GPU scorers, ``gpus=[0, 1]``: one process per GPU, each scoring whole units on ``cuda:<i>``.
- GPU scorers, one device, ``workers > 1``: GPU scorers run here in batches; decoding, the CPU
  scorers and the GPU scorers' preparers of each batch run over ``workers`` processes.
- Otherwise everything runs in this process.

With GPU scorers, the CPU work of the next batches runs while the GPU scorers run the current one
(:func:`diverseg_hf.scoring.run.score_units`: a background thread, or the worker processes). Models
load only in the processes that run them (:func:`diverseg_hf.scoring.specs.build_scorers` with
``load=True``), once each. Worker processes come from :func:`diverseg_hf.processes.process_pool`.

Results are committed by the caller's ``commit(unit_id, table)`` in this process, as units finish.

Example:
    >>> seen = []
    >>> LocalEngine(EngineOptions(workers=2)).run([], [("blockiness", {})], lambda uid, t: seen.append(uid))
    >>> seen
    []
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from ..processes import process_pool
from ..scoring import Scorer, get_scorer_class
from ..scoring.run import Batch, prepare_batch, preparers_of, score_unit, score_units
from ..scoring.specs import ScorerSpec, build_scorers
from ..sources import Record, Unit
from .options import Commit, EngineOptions, engine_options

logger = logging.getLogger(__name__)

_WORKER: dict = {}


def _init_worker(specs: Sequence[ScorerSpec], devices: mp.Queue | None, batch_size: int | None) -> None:
    device = devices.get() if devices is not None else None
    _WORKER.update(specs=specs, device=device, batch_size=batch_size, scorers=None)
    logger.info("worker ready on %s", device or "cpu")


def _worker_scorers() -> list[Scorer]:
    """The worker's scorers, built and loaded on its first task (a model that fails to load fails that task,
    whose error reaches the driver, rather than the pool's start-up)."""
    if _WORKER["scorers"] is None:
        _WORKER["scorers"] = build_scorers(_WORKER["specs"], _WORKER["device"], load=True)
    return _WORKER["scorers"]


def _score_unit_in_worker(unit: Unit) -> pa.Table:
    return score_unit(unit, _worker_scorers(), _WORKER["batch_size"])


def _prepare_in_worker(records: list[Record], preparers: dict[str, Callable]) -> Batch:
    return prepare_batch(records, [s for s in _worker_scorers() if not s.uses_gpu], preparers)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class LocalEngine:
    """This machine (see the module doc), with ``options`` (:class:`EngineOptions` with ``engine="local"``)."""

    def __init__(self, options: EngineOptions | None = None):
        self.options = options or EngineOptions()

    def check(self) -> None:
        """Nothing to check: this machine is always there."""

    def run(self, units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Commit, *,
            total: int | None = None, progress: bool = True) -> None:
        """Score ``units`` with the scorers of ``specs`` and ``commit`` each unit's table."""
        if not units:
            return
        opts = self.options
        uses_gpu = any(get_scorer_class(name).uses_gpu for name, _ in specs)
        bar = tqdm(total=total, unit="img", desc="score", disable=not progress, dynamic_ncols=True)
        try:
            if uses_gpu and opts.gpus:
                _run_pool(units, specs, commit, [f"cuda:{g}" for g in opts.gpus], opts.batch_size, bar)
            elif not uses_gpu and opts.workers > 1:
                _run_pool(units, specs, commit, [None] * opts.workers, opts.batch_size, bar)
            else:
                target = (opts.device or _default_device()) if uses_gpu else None
                scorers = build_scorers(specs, target, load=True)
                if uses_gpu and opts.workers > 1:
                    _run_with_decode_pool(units, specs, scorers, commit, opts.workers, opts.batch_size, bar)
                else:
                    for unit_id, table in score_units(units, scorers, opts.batch_size, on_batch=bar.update):
                        commit(unit_id, table)
        finally:
            bar.close()


def run_local(units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Commit, *, total: int | None = None,
              progress: bool = True, **options: Any) -> None:
    """:class:`LocalEngine` with ``options`` (fields of :class:`EngineOptions`) run over ``units``.

    Example:
        >>> run_local([], [("blockiness", {})], print, workers=2, progress=False)
    """
    LocalEngine(engine_options("local", **options)).run(units, specs, commit, total=total, progress=progress)


def _run_pool(units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Callable[[str, pa.Table], None],
              devices: list[str | None], batch_size: int | None, bar: tqdm) -> None:
    """Whole units over one process per entry of ``devices`` (None = CPU).

    CPU-only pools fork where the platform can (fast start); GPU pools spawn (CUDA cannot fork).
    """
    cpu_only = not any(devices)
    queue = None
    if not cpu_only:
        queue = mp.get_context("spawn").Queue()
        for device in devices:
            queue.put(device)
    with process_pool(len(devices), fork=cpu_only, initializer=_init_worker,
                      initargs=(list(specs), queue, batch_size)) as pool:
        pending: dict[Future, Unit] = {}
        todo = list(units)
        while todo or pending:
            while todo and len(pending) < 2 * len(devices):  # bounded in-flight work
                unit = todo.pop(0)
                pending[pool.submit(_score_unit_in_worker, unit)] = unit
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                unit = pending.pop(future)
                table = future.result()
                commit(unit.id, table)
                bar.update(table.num_rows)


def _run_with_decode_pool(units: Sequence[Unit], specs: Sequence[ScorerSpec], scorers: list[Scorer],
                          commit: Callable[[str, pa.Table], None], workers: int, batch_size: int | None,
                          bar: tqdm) -> None:
    """GPU scorers here; the CPU stage of each batch (decoding, CPU scorers, preparers) over ``workers`` processes."""
    cpu_specs = [spec for spec in specs if not get_scorer_class(spec[0]).uses_gpu]
    with process_pool(workers, fork=False, initializer=_init_worker, initargs=(cpu_specs, None, batch_size)) as pool:
        prepare = functools.partial(_prepare_over_pool, pool, workers, preparers_of(scorers))
        for unit_id, table in score_units(units, scorers, batch_size, prepare=prepare, on_batch=bar.update):
            commit(unit_id, table)


def _prepare_over_pool(pool: Executor, workers: int, preparers: dict[str, Callable],
                       records: list[Record]) -> Batch:
    """The CPU stage of one batch, split in ``workers`` consecutive chunks over ``pool``."""
    step = max(1, -(-len(records) // workers))
    chunks = [records[i : i + step] for i in range(0, len(records), step)]
    return Batch.concat(pool.map(_prepare_in_worker, chunks, [preparers] * len(chunks)))

"""The local engine: units scored in this process, over CPU worker processes, or one process per GPU.

- CPU scorers only, ``workers > 1``: whole units go to ``workers`` processes.
- GPU scorers, ``gpus=[0, 1]``: one process per GPU, each scoring whole units on ``cuda:<i>``.
- GPU scorers, one device, ``workers > 1``: GPU scorers run here in batches; decoding, the CPU
  scorers and the GPU scorers' preparers of each batch run over ``workers`` processes.
- Otherwise everything runs in this process.

With GPU scorers, the CPU work of the next batches runs while the GPU scorers run the current one
(:func:`diverseg_hf.scoring.run.score_units`: a background thread, or the worker processes).

Results are committed by the caller's ``commit(unit_id, table)`` in this process, as units finish.

Example:
    >>> from diverseg_hf.sources import FolderUnit
    >>> seen = []
    >>> run_local([], [("blockiness", {})], lambda uid, t: seen.append(uid), progress=False)
    >>> seen
    []
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import pyarrow as pa
from tqdm import tqdm

from ..scoring import Scorer, get_scorer_class
from ..scoring.run import Batch, prepare_batch, preparers_of, score_unit, score_units
from ..scoring.specs import ScorerSpec, build_scorers
from ..sources import Record, Unit

logger = logging.getLogger(__name__)

_WORKER: dict = {}


def _init_worker(specs: Sequence[ScorerSpec], devices: mp.Queue | None, batch_size: int | None) -> None:
    device = devices.get() if devices is not None else None
    _WORKER["scorers"] = build_scorers(specs, device)
    _WORKER["batch_size"] = batch_size
    logger.info("worker ready on %s", device or "cpu")


def _score_unit_in_worker(unit: Unit) -> pa.Table:
    return score_unit(unit, _WORKER["scorers"], _WORKER["batch_size"])


def _prepare_in_worker(records: list[Record], preparers: dict[str, Callable]) -> Batch:
    return prepare_batch(records, [s for s in _WORKER["scorers"] if not s.uses_gpu], preparers)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_local(
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
    scorers: list[Scorer] | None = None,
) -> None:
    """Score ``units`` with the scorers of ``specs`` and ``commit`` each unit's table.

    ``scorers``: instances already built from ``specs`` (e.g. to read their settings), reused when
    scoring runs in this process so that models load once; the list is emptied when worker
    processes build their own, releasing this process's copies.
    """
    if not units:
        return
    uses_gpu = any(get_scorer_class(name).uses_gpu for name, _ in specs)
    in_process = not (uses_gpu and gpus) and not (not uses_gpu and workers > 1)
    if not in_process and scorers is not None:
        scorers.clear()
    bar = tqdm(total=total, unit="img", desc="score", disable=not progress, dynamic_ncols=True)
    try:
        if uses_gpu and gpus:
            devices = [f"cuda:{g}" for g in gpus]
            _run_pool(units, specs, commit, devices, batch_size, bar)
        elif not in_process:
            _run_pool(units, specs, commit, [None] * workers, batch_size, bar)
        else:
            target = (device or _default_device()) if uses_gpu else None
            if scorers:
                scorers = [s.to(target) if target and s.uses_gpu else s for s in scorers]
            else:
                scorers = build_scorers(specs, target)
            if uses_gpu and workers > 1:
                _run_with_decode_pool(units, specs, scorers, commit, workers, batch_size, bar)
            else:
                for unit_id, table in score_units(units, scorers, batch_size, on_batch=bar.update):
                    commit(unit_id, table)
    finally:
        bar.close()


def _run_pool(units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Callable[[str, pa.Table], None],
              devices: list[str | None], batch_size: int | None, bar: tqdm) -> None:
    """Whole units over one process per entry of ``devices`` (None = CPU).

    CPU-only pools fork where the platform can (fast start); GPU pools spawn (CUDA cannot fork).
    """
    cpu_only = not any(devices)
    ctx = mp.get_context("fork" if cpu_only and "fork" in mp.get_all_start_methods() else "spawn")
    queue = None if cpu_only else ctx.Queue()
    for device in devices:
        if queue is not None:
            queue.put(device)
    with ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker,
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
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cpu_specs, None, batch_size)) as pool:
        prepare = functools.partial(_prepare_over_pool, pool, workers, preparers_of(scorers))
        for unit_id, table in score_units(units, scorers, batch_size, prepare=prepare, on_batch=bar.update):
            commit(unit_id, table)


def _prepare_over_pool(pool: ProcessPoolExecutor, workers: int, preparers: dict[str, Callable],
                       records: list[Record]) -> Batch:
    """The CPU stage of one batch, split in ``workers`` consecutive chunks over ``pool``."""
    step = max(1, -(-len(records) // workers))
    chunks = [records[i : i + step] for i in range(0, len(records), step)]
    return Batch.concat(pool.map(_prepare_in_worker, chunks, [preparers] * len(chunks)))

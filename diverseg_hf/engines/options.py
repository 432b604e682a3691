"""The engine options, spelled once: :class:`EngineOptions`, and the :class:`Engine` protocol.

Every way of running ``score`` (the Python keyword arguments, ``score_with_ray``, ``curate``/``build``'s
score options, the CLI flags) ends up as one frozen :class:`EngineOptions`, checked here; the engine
object (:class:`~diverseg_hf.engines.local.LocalEngine` or :class:`~diverseg_hf.engines.ray.RayEngine`,
made by :func:`~diverseg_hf.engines.make_engine`) runs with it. The model options among them
(:data:`diverseg_hf.scoring.base.ENGINE_OPTIONS`) go to each scorer that accepts them.

Example:
    >>> options = engine_options("ray", workers=4, address="head:6379", gpus_per_worker=1)
    >>> options.engine, options.workers, options.rows_per_block
    ('ray', 4, 64)
    >>> engine_options(None, rows_per_block=8)
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ParameterError: rows_per_block is an option of the ray engine (engine='ray')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from ..errors import ParameterError, check_at_least
from ..scoring.base import ENGINE_OPTIONS
from ..scoring.specs import ScorerSpec, check_device
from ..sources import Unit

#: The engines by name.
ENGINES = ("local", "ray")
#: Options only the Ray engine uses (a local run refuses them when they differ from their defaults).
RAY_ONLY = frozenset({"address", "gpus_per_worker", "cpus_per_worker", "rows_per_block", "timeout_s",
                      "max_retries", "runtime_env"})


@dataclass(frozen=True)
class EngineOptions:
    """How a score run is executed (never what it computes: none of these change a table's values).

    Local and Ray: ``workers`` (local: CPU worker processes; Ray: scoring actors), ``batch_size``
    (images per scorer call). Local only: ``gpus`` (one process per GPU), ``device`` (GPU scorers in
    this process). Model options, for the scorers that take them: ``dtype``, ``points_per_batch``,
    ``image_batch_size``, ``compile``. Ray only: ``address`` (``HOST:PORT``, ``ray://HOST:PORT``,
    ``auto``; None = a throw-away local cluster), ``gpus_per_worker``, ``cpus_per_worker``,
    ``rows_per_block`` (images per Ray block: the work of one actor call, retried on a crash),
    ``timeout_s`` (seconds without progress before the run fails), ``max_retries`` (actor restarts
    and block retries), ``runtime_env`` (Ray's, e.g. a ``worker_process_setup_hook``).

    Example:
        >>> EngineOptions(workers=2, batch_size=8).scorer_options()
        {'batch_size': 8}
    """

    engine: str = "local"
    workers: int = 1
    batch_size: int | None = None
    gpus: tuple[int, ...] | None = None
    device: str | None = None
    dtype: str | None = None
    points_per_batch: int | None = None
    image_batch_size: int | None = None
    compile: bool = False
    address: str | None = None
    gpus_per_worker: float = 0
    cpus_per_worker: float | None = None
    rows_per_block: int = 64
    timeout_s: float = 1800.0
    max_retries: int = 3
    runtime_env: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ParameterError("engine", f"must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        for name in ("workers", "batch_size", "points_per_batch", "image_batch_size", "rows_per_block"):
            if getattr(self, name) is not None:
                check_at_least(name, getattr(self, name))
        check_at_least("max_retries", self.max_retries, 0)
        if self.gpus_per_worker < 0 or (self.cpus_per_worker or 0) < 0:
            raise ParameterError("gpus_per_worker", "and cpus_per_worker must not be negative")
        if self.timeout_s <= 0:
            raise ParameterError("timeout_s", f"must be positive, got {self.timeout_s}")
        if self.gpus is not None:
            object.__setattr__(self, "gpus", tuple(int(g) for g in self.gpus))
        if self.engine == "ray" and self.gpus:
            raise ParameterError("gpus", "picks local GPUs; with the ray engine use gpus_per_worker")
        if self.engine == "local":
            check_device(self.device)  # a CUDA device this machine lacks: one line, before any scorer is built
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name in sorted(RAY_ONLY):
                if getattr(self, name) != defaults[name]:
                    raise ParameterError(name, "is an option of the ray engine (engine='ray')")

    def scorer_options(self) -> dict[str, Any]:
        """The options handed to the scorers that take them (:data:`ENGINE_OPTIONS`), where given."""
        values = {name: getattr(self, name) for name in ENGINE_OPTIONS}
        values["compile"] = values["compile"] or None
        return {k: v for k, v in values.items() if v is not None}


def engine_options(engine: str | EngineOptions | Engine | None = None, **given: Any) -> EngineOptions:
    """The one mapping of engine keyword arguments into :class:`EngineOptions`.

    ``engine``: None or ``"local"``, ``"ray"``, an :class:`EngineOptions` or an engine object, whose
    options the ``given`` keyword arguments (the fields of :class:`EngineOptions`) override; a None
    or False value counts as not given.

    Example:
        >>> engine_options(EngineOptions(engine="ray", workers=2), workers=None, batch_size=4).workers
        2
    """
    if isinstance(engine, EngineOptions):
        base = engine
    elif engine is None or isinstance(engine, str):
        base = None
    elif isinstance(getattr(engine, "options", None), EngineOptions):
        base = engine.options
    else:
        raise ParameterError("engine", f"must be 'local', 'ray', EngineOptions or an engine, not {engine!r}")
    chosen = {k: v for k, v in given.items() if v is not None and v is not False}
    if base is None:
        return EngineOptions(engine=engine or "local", **chosen)
    return dataclasses.replace(base, **chosen)


Commit = Callable[[str, pa.Table], None]


class Engine(Protocol):
    """What runs the units of a score run: scores each and hands its table to ``commit`` in this process."""

    options: EngineOptions

    def check(self) -> None:
        """Raise the one-line error for what the engine lacks (an extra), before the run does any work."""

    def run(self, units: Sequence[Unit], specs: Sequence[ScorerSpec], commit: Commit, *,
            total: int | None = None, progress: bool = True) -> None:
        """Score ``units`` with the scorers of ``specs``; ``commit(unit_id, table)`` as each unit completes."""

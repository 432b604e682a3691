"""Engines run :func:`diverseg_hf.scoring.run.score_unit` over units and hand each result to a commit function.

One :class:`~diverseg_hf.engines.options.EngineOptions` says how; :func:`make_engine` turns it into the
engine object: :class:`~diverseg_hf.engines.local.LocalEngine` (this machine: worker processes for CPU
scorers, one process per GPU; the default) or :class:`~diverseg_hf.engines.ray.RayEngine` (a Ray
cluster). Both carry records whole (:mod:`.records`) and commit through
:meth:`diverseg_hf.storage.ScoreTable.commit`, so they write the same table.

Example:
    >>> type(make_engine(EngineOptions(engine="ray", workers=2))).__name__
    'RayEngine'
"""

from __future__ import annotations

from typing import Any

from .local import LocalEngine
from .options import ENGINES, Engine, EngineOptions, engine_options
from .ray import RayEngine


def make_engine(options: EngineOptions | Engine | None = None) -> Engine:
    """The engine object for ``options`` (an engine object is returned as it is).

    Example:
        >>> make_engine().options.workers
        1
    """
    if options is None or isinstance(options, EngineOptions):
        opts = options or EngineOptions()
        return RayEngine(opts) if opts.engine == "ray" else LocalEngine(opts)
    return options


def resolve_engine(engine: str | EngineOptions | Engine | None = None, **given: Any) -> Engine:
    """The engine a run uses: ``engine`` (a name, options or an engine object) with the ``given`` engine
    keyword arguments on top (:func:`~diverseg_hf.engines.options.engine_options`).

    Example:
        >>> resolve_engine("ray", workers=3, batch_size=None).options.workers
        3
    """
    options = engine_options(engine, **given)
    if engine is None or isinstance(engine, (str, EngineOptions)):
        return make_engine(options)
    return engine if options == engine.options else type(engine)(options)


__all__ = ["ENGINES", "Engine", "EngineOptions", "LocalEngine", "RayEngine", "engine_options", "make_engine",
           "resolve_engine"]

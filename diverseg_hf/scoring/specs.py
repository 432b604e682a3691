"""Scorer specs: (name, constructor options) pairs that travel to worker processes and Ray actors.

A scorer registered at run time (:func:`~diverseg_hf.scoring.register_scorer`) travels as its
``"module:Class"``, so that a worker process or Ray actor, which does not share this process's
registry, imports the class itself; the built-in scorers travel by name.

The engine options given to ``score()`` (:data:`~diverseg_hf.scoring.base.ENGINE_OPTIONS`) go to
each scorer whose class accepts them (:meth:`~diverseg_hf.scoring.base.Scorer.accepted_options`);
options given for one scorer by name come on top.

Example:
    >>> scorer_specs(["blockiness"], common={"device": "cpu", "batch_size": 4})
    [('blockiness', {})]
    >>> scorer_specs(["blockiness"], common={"points_per_batch": 64})
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ParameterError: points_per_batch is taken by none of the scorers (blockiness)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import DiversegError, ParameterError, require
from . import _BUILTIN, create_scorer, get_scorer_class, scorer_target
from .base import ENGINE_OPTIONS, Scorer

ScorerSpec = tuple[str, dict[str, Any]]

def check_extras(names: Sequence[str]) -> None:
    """Raise the one-line missing-extra error for a scorer whose dependencies are absent, before any work.

    Example:
        >>> check_extras(["blockiness"])
    """
    for name in names:
        extra, modules = get_scorer_class(name).requires
        for module in modules:
            require(module, extra)


#: Engine options that concern every scorer or the engine itself: given but accepted by no scorer is fine.
_ENGINE_WIDE = frozenset({"device", "dtype", "batch_size"})


def scorer_specs(names: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                 common: dict[str, Any] | None = None) -> list[ScorerSpec]:
    """(name, constructor options) per scorer: the ``common`` engine options each accepts, then ``options[name]``.

    ``common`` holds engine options (None values are ignored). A model-tuning option
    (``points_per_batch``, ``image_batch_size``, ``compile``) that no scorer accepts is an error
    rather than silently dropped.
    """
    if not names:
        raise DiversegError("no scorers given")
    if len(set(names)) != len(names):
        raise DiversegError(f"scorer listed twice: {', '.join(names)}")
    for name in names:
        get_scorer_class(name)  # an unknown name fails before any import of an extra
    check_extras(names)
    given = {k: v for k, v in (common or {}).items() if v is not None}
    unknown = sorted(set(given) - set(ENGINE_OPTIONS))
    if unknown:
        raise DiversegError(f"unknown engine options {unknown}; known: {', '.join(ENGINE_OPTIONS)}")
    accepted = {name: get_scorer_class(name).accepted_options() for name in names}
    for option in sorted(set(given) - _ENGINE_WIDE):
        if not any(option in a for a in accepted.values()):
            raise ParameterError(option, f"is taken by none of the scorers ({', '.join(names)})")
    specs = []
    for name in names:
        opts = {k: v for k, v in given.items() if k in accepted[name]}
        opts.update((options or {}).get(name, {}))
        specs.append((spec_name(name), opts))
    return specs


def spec_name(name: str) -> str:
    """``name`` for a built-in scorer, else its ``"module:Class"`` (resolvable in any process).

    Example:
        >>> spec_name("blockiness"), spec_name("mypackage.scorers:MeanLevel")
        ('blockiness', 'mypackage.scorers:MeanLevel')
    """
    return name if name in _BUILTIN else scorer_target(name)


def build_scorers(specs: Sequence[ScorerSpec], device: str | None = None, load: bool = False) -> list[Scorer]:
    """Instantiate scorers from specs; GPU scorers are moved to ``device`` when given.

    Without ``load`` no model is loaded: enough for :meth:`~diverseg_hf.scoring.base.Scorer.settings`.
    Engines pass ``load=True`` in the processes that score (:meth:`~diverseg_hf.scoring.base.Scorer.load`),
    so that a model that cannot load fails the run there, in one line, before any image.

    Example:
        >>> [s.name for s in build_scorers([("blockiness", {})], load=True)]
        ['blockiness']
    """
    scorers = [create_scorer(name, **opts) for name, opts in specs]
    if device:
        scorers = [s.to(device) if s.uses_gpu else s for s in scorers]
    if load:
        for scorer in scorers:
            scorer.load()
    return scorers


def check_device(device: str | None) -> None:
    """Refuse a CUDA device that this machine does not have, in one line.

    Example:
        >>> check_device("cpu")
    """
    if not device or not str(device).startswith("cuda"):
        return
    try:
        import torch
    except ImportError:
        raise DiversegError(f"device {device!r}: torch is not installed") from None
    if not torch.cuda.is_available():
        raise DiversegError(f"device {device!r}: CUDA is not available on this machine (use --device cpu)")
    index = str(device).partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise DiversegError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")

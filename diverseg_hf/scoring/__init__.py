"""Scorer registry: names usable in ``--scorers`` mapped to lazily imported classes; the object counters.

``SamMaskCounter`` (:mod:`.sam`) and ``ObjectCounter`` (:mod:`.detect`) are importable from here; they
are loaded on first access (module ``__getattr__``), so importing this package imports neither torch
nor transformers.

Your own :class:`Scorer` subclass joins the registry with :func:`register_scorer` (or an entry point
in the group :data:`ENTRY_POINT_GROUP`); it then works wherever a built-in name does: ``--scorers``,
``scorer_map``, the local and Ray engines. A name is resolved to ``"module:Class"``, and that target
is what travels to worker processes, so they import the class themselves.

Example:
    >>> from diverseg_hf.scoring import scorer_names
    >>> "blockiness" in scorer_names()
    True
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from ..errors import DiversegError
from .base import Scorer

logger = logging.getLogger(__name__)

#: The entry point group read (once) for scorers that installed packages provide: ``name = "module:Class"``.
ENTRY_POINT_GROUP = "diverseg_hf.scorers"

# name -> "module:Class"; modules import their heavy dependencies lazily.
_BUILTIN: dict[str, str] = {
    "blockiness": "diverseg_hf.scoring.blockiness:BlockinessScorer",
    "sam": "diverseg_hf.scoring.sam:SamScorer",
    "detect": "diverseg_hf.scoring.detect:DetectScorer",
}
_REGISTRY: dict[str, str] = dict(_BUILTIN)
_ENTRY_POINTS_READ: list[bool] = []


# public name -> "module:attribute", imported on first access
_LAZY: dict[str, str] = {
    "SamMaskCounter": "diverseg_hf.scoring.sam:SamMaskCounter",
    "ObjectCounter": "diverseg_hf.scoring.detect:ObjectCounter",
}


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return _load(_LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def _read_entry_points() -> None:
    """Add the scorers of :data:`ENTRY_POINT_GROUP` (once per process; names already registered win)."""
    if _ENTRY_POINTS_READ:
        return
    _ENTRY_POINTS_READ.append(True)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(ep.name, ep.value.replace(" ", ""))


def register_scorer(name: str, target: str | type[Scorer]) -> None:
    """Register a :class:`Scorer` subclass under ``name`` for ``--scorers``, ``scorer_map`` and every engine.

    ``target`` is ``"module:Class"`` (imported when first used, also in worker processes and Ray
    actors, so the module must be importable there) or the class itself. The class's ``name``
    attribute should be ``name``: it is what the score table records. Re-registering a name replaces
    it; the built-in names cannot be replaced.

    Example:
        >>> register_scorer("mean_level", "mypackage.scorers:MeanLevel")
        >>> "mean_level" in scorer_names()
        True
        >>> unregister_scorer("mean_level")
    """
    if isinstance(target, type):
        if not issubclass(target, Scorer):
            raise DiversegError(f"register_scorer({name!r}): {target.__qualname__} is not a Scorer subclass")
        target = f"{target.__module__}:{target.__qualname__}"
    module, colon, attr = target.partition(":")
    if not (name and module and colon and attr):
        raise DiversegError(f"register_scorer({name!r}, {target!r}): give a name and 'module:Class'")
    if name in _BUILTIN and _BUILTIN[name] != target:
        raise DiversegError(f"register_scorer: {name!r} is a built-in scorer; choose another name")
    _REGISTRY[name] = target


def unregister_scorer(name: str) -> None:
    """Forget the scorer registered under ``name`` (a built-in scorer stays).

    Example:
        >>> register_scorer("mean_level", "mypackage.scorers:MeanLevel"); unregister_scorer("mean_level")
        >>> "mean_level" in scorer_names()
        False
    """
    if name in _BUILTIN:
        raise DiversegError(f"unregister_scorer: {name!r} is a built-in scorer")
    _REGISTRY.pop(name, None)


def scorer_names() -> list[str]:
    """Names of the registered scorers (built-in, registered and from entry points)."""
    _read_entry_points()
    return sorted(_REGISTRY)


def scorer_target(name: str) -> str:
    """The ``"module:Class"`` of the scorer ``name``; a ``"module:Class"`` given as the name is returned as is."""
    if ":" in name:
        return name
    if name not in _REGISTRY:
        _read_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DiversegError(f"unknown scorer {name!r}; available: {', '.join(scorer_names())}") from None


def get_scorer_class(name: str) -> type[Scorer]:
    """The scorer class registered under ``name`` (or named ``"module:Class"``); imports its module."""
    target = scorer_target(name)
    try:
        cls = _load(target)
    except (ImportError, AttributeError) as exc:
        raise DiversegError(f"scorer {name!r}: cannot import {target} ({type(exc).__name__}: {exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise DiversegError(f"scorer {name!r}: {target} is not a Scorer subclass")
    return cls


def create_scorer(name: str, **options: Any) -> Scorer:
    """Instantiate the scorer ``name`` with its options."""
    return get_scorer_class(name)(**options)


__all__ = ["ENTRY_POINT_GROUP", "ObjectCounter", "SamMaskCounter", "Scorer", "create_scorer", "get_scorer_class",
           "register_scorer", "scorer_names", "scorer_target"]

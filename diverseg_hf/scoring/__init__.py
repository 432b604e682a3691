"""Scorer registry: names usable in ``--scorers`` mapped to lazily imported classes; the object counters.

``SamMaskCounter`` (:mod:`.sam`) and ``ObjectCounter`` (:mod:`.detect`) are importable from here; they
are loaded on first access (module ``__getattr__``), so importing this package imports neither torch
nor transformers.

Example:
    >>> from diverseg_hf.scoring import scorer_names
    >>> "blockiness" in scorer_names()
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import DiversegError
from .base import Scorer

# name -> "module:Class"; modules import their heavy dependencies lazily.
_REGISTRY: dict[str, str] = {
    "blockiness": "diverseg_hf.scoring.blockiness:BlockinessScorer",
    "sam": "diverseg_hf.scoring.sam:SamScorer",
    "detect": "diverseg_hf.scoring.detect:DetectScorer",
}


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


def scorer_names() -> list[str]:
    """Names of the registered scorers."""
    return sorted(_REGISTRY)


def get_scorer_class(name: str) -> type[Scorer]:
    """The scorer class registered under ``name`` (imports its module)."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise DiversegError(f"unknown scorer {name!r}; available: {', '.join(scorer_names())}") from None
    return _load(target)


def create_scorer(name: str, **options: Any) -> Scorer:
    """Instantiate the scorer ``name`` with its options."""
    return get_scorer_class(name)(**options)


__all__ = ["ObjectCounter", "SamMaskCounter", "Scorer", "create_scorer", "get_scorer_class", "scorer_names"]

"""Scorer registry: names usable in ``--scorers`` mapped to lazily imported classes.

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


def scorer_names() -> list[str]:
    """Names of the registered scorers."""
    return sorted(_REGISTRY)


def get_scorer_class(name: str) -> type[Scorer]:
    """The scorer class registered under ``name`` (imports its module)."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise DiversegError(f"unknown scorer {name!r}; available: {', '.join(scorer_names())}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def create_scorer(name: str, **options: Any) -> Scorer:
    """Instantiate the scorer ``name`` with its options."""
    return get_scorer_class(name)(**options)


__all__ = ["Scorer", "create_scorer", "get_scorer_class", "scorer_names"]

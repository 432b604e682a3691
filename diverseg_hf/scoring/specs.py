"""Scorer specs: (name, constructor options) pairs that travel to worker processes and Ray actors.

Example:
    >>> scorer_specs(["blockiness"], common={"device": "cpu"})
    [('blockiness', {})]
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ..errors import DiversegError, require
from . import create_scorer, get_scorer_class
from .base import Scorer

ScorerSpec = tuple[str, dict[str, Any]]

#: What a scorer imports beyond the base install, and the extra (``pip install "diverseg-hf[EXTRA]"``) with it.
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sam": ("sam", ("torch", "transformers")),
    "detect": ("detect", ("torch", "transformers")),
}


def check_extras(names: Sequence[str]) -> None:
    """Raise the one-line missing-extra error for a scorer whose dependencies are absent, before any work.

    Example:
        >>> check_extras(["blockiness"])
    """
    for name in names:
        extra, modules = NEEDS.get(name, ("", ()))
        for module in modules:
            require(module, extra)


def scorer_specs(names: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                 common: dict[str, Any] | None = None) -> list[ScorerSpec]:
    """(name, constructor options) per scorer; ``common`` options go only where ``__init__`` takes them.

    ``device`` and ``dtype`` also go to scorers whose ``__init__`` takes ``**options``.
    """
    if not names:
        raise DiversegError("no scorers given")
    if len(set(names)) != len(names):
        raise DiversegError(f"scorer listed twice: {', '.join(names)}")
    for name in names:
        get_scorer_class(name)  # an unknown name fails before any import of an extra
    check_extras(names)
    specs = []
    for name in names:
        cls = get_scorer_class(name)
        params = inspect.signature(cls.__init__).parameters if cls.__init__ is not object.__init__ else {}
        accepted = set(params)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted |= {"device", "dtype"}  # forwarded through **options; batching stays the engine's
        opts = {k: v for k, v in (common or {}).items() if v is not None and k in accepted}
        opts.update((options or {}).get(name, {}))
        specs.append((name, opts))
    return specs


def build_scorers(specs: Sequence[ScorerSpec], device: str | None = None) -> list[Scorer]:
    """Instantiate scorers from specs; GPU scorers are moved to ``device`` when given."""
    scorers = [create_scorer(name, **opts) for name, opts in specs]
    if device:
        scorers = [s.to(device) if s.uses_gpu else s for s in scorers]
    return scorers

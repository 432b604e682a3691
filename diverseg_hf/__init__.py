"""diverseg_hf: build DiverSeg-style super-resolution training sets with the Hugging Face stack.

The public verbs are imported on first use (``import diverseg_hf`` imports neither torch nor
``datasets``): one per command (``score``, ``select``, ``publish``, ``curate``, ``build``, ``push``,
``export``), the metrics (``blockiness``, ``estimate_quality``, ``calibrate``...) and the ``datasets``
face (``scorer_map``, ``score_dataset``, ``publish_dataset``, ``register_scorer``).

Example:
    >>> import numpy as np, diverseg_hf
    >>> diverseg_hf.blockiness(np.zeros((64, 64), np.uint8))  # flat: undefined
    nan
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from . import errors
from .errors import DiversegError, ImageError, MissingExtraError
from .version import __version__

# public name -> "module:attribute", imported on first access
_LAZY: dict[str, str] = {
    "BlockinessResult": "diverseg_hf.quality.blockiness:BlockinessResult",
    "blockiness": "diverseg_hf.quality.blockiness:blockiness",
    "blockiness_batch": "diverseg_hf.quality.blockiness:blockiness_batch",
    "iter_blockiness": "diverseg_hf.quality.blockiness:iter_blockiness",
    "score_image": "diverseg_hf.quality.blockiness:score_image",
    "calibrate": "diverseg_hf.quality.calibrate:calibrate",
    "QualityEstimate": "diverseg_hf.quality.estimate:QualityEstimate",
    "estimate_quality": "diverseg_hf.quality.estimate:estimate_quality",
    "load_basis": "diverseg_hf.quality.basis:load_basis",
    "score": "diverseg_hf.score:score",
    "select": "diverseg_hf.select:select",
    "curate": "diverseg_hf.curate:curate",
    "publish": "diverseg_hf.publish.from_selection:publish",
    "build": "diverseg_hf.subsets.build:build",
    "export": "diverseg_hf.sr.export:export_basicsr",  # `diverseg export --format basicsr`
    "push": "diverseg_hf.hub.push:push",
    "publish_dataset": "diverseg_hf.from_dataset:publish_dataset",
    "select_published": "diverseg_hf.rethreshold:select_published",
    "scorer_map": "diverseg_hf.scoring.maps:scorer_map",
    "score_dataset": "diverseg_hf.scoring.maps:score_dataset",
    "register_scorer": "diverseg_hf.scoring:register_scorer",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """The package module: a verb named like its module (``score``, ``select``, ``curate``, ``publish``)
    keeps its name when the module is imported (the import system would bind the module over it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "BlockinessResult", "DiversegError", "ImageError", "MissingExtraError", "QualityEstimate", "__version__",
    "blockiness", "blockiness_batch", "build", "calibrate", "curate", "errors", "estimate_quality", "export",
    "iter_blockiness", "load_basis", "publish", "publish_dataset", "push", "register_scorer", "score",
    "score_dataset", "score_image", "scorer_map", "select", "select_published",
]

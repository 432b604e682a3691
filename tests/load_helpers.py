"""A SAM scorer (the tiny test model) that writes the pid of every process that loads its weights.

``load_sam`` is wrapped when this module is imported (in every process that resolves the scorer class
``counted_sam``: the driver, worker processes, Ray actors), and each load appends the process id to the
scorer's ``load_log`` file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from sam_helpers import TINY_SAM

from diverseg_hf.scoring import sam

_STATE: dict[str, Any] = {"log": None}
_load_sam = sam.load_sam


def _counted_load_sam(*args: Any, **kwargs: Any) -> Any:
    if _STATE["log"]:
        with open(_STATE["log"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
    return _load_sam(*args, **kwargs)


sam.load_sam = _counted_load_sam


class CountedSamScorer(sam.SamScorer):
    """``sam`` on the tiny model, 4x4 points, logging each weight load to ``load_log``."""

    name: ClassVar[str] = "counted_sam"

    def __init__(self, load_log: str, **options: Any):
        _STATE["log"] = load_log
        super().__init__(model=str(TINY_SAM), points_per_side=4, pred_iou_thresh=0.5, **options)


def loads(log: Path) -> list[int]:
    """The pids that loaded the weights, one entry per load."""
    return [int(line) for line in log.read_text().split()] if log.exists() else []

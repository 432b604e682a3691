"""The DiverSeg subset presets: I (ImageNet-1k), P (PASS), IP (both), with the paper's scorers and thresholds.

Example:
    >>> SUBSET_PRESETS["I"].source, SUBSET_PRESETS["P"].source
    ('ILSVRC/imagenet-1k', 'yukimasano/pass')
    >>> subset_preset("DiverSeg-IP").parts
    ('I', 'P')
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DiversegError
from ..scoring import get_scorer_class
from ..sources import Source, open_source

logger = logging.getLogger(__name__)

#: SAM automatic mask generation as the paper ran it (segment-anything's generator defaults, ViT-H).
PAPER_SAM = {"model": "facebook/sam-vit-huge", "points_per_side": 32, "pred_iou_thresh": 0.88,
             "stability_score_thresh": 0.95, "stability_score_offset": 1.0, "box_nms_thresh": 0.7,
             "mask_threshold": 0.0}
#: Dataset quality gate: the paper kept ImageNet (95.5%) and PASS (99.8%) and dropped Places365 (75.0%).
PAPER_MIN_QUALITY = 0.9


@dataclass(frozen=True)
class SubsetPreset:
    """One DiverSeg config: default source, the paper's scorers and thresholds (licence: cards.py presets)."""

    name: str
    title: str
    source: str | None
    split: str = "train"
    key_column: str | None = None
    parts: tuple[str, ...] = ()
    scorers: tuple[str, ...] = ("blockiness", "sam")
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"sam": PAPER_SAM})
    thetas: Mapping[str, float] = field(default_factory=lambda: {"sam_masks": 100})
    min_quality: float | None = PAPER_MIN_QUALITY


#: The three configs. I: ImageNet-1k train (gated on the Hub: accept its terms, log in). P: PASS as hosted
#: by its authors (a loading-script repo: datasets >= 4 cannot run it, so pass ``source=`` a local PASS
#: tree or a Parquet/tar copy). IP: the union of I and P.
SUBSET_PRESETS: dict[str, SubsetPreset] = {
    "I": SubsetPreset("I", "DiverSeg-I (ImageNet-1k)", "ILSVRC/imagenet-1k"),
    "P": SubsetPreset("P", "DiverSeg-P (PASS)", "yukimasano/pass", key_column="hash"),
    "IP": SubsetPreset("IP", "DiverSeg-IP (ImageNet-1k + PASS)", None, parts=("I", "P")),
}


def subset_preset(name: str) -> SubsetPreset:
    """The :class:`SubsetPreset` called ``name`` (``I``, ``P``, ``IP``; a ``DiverSeg-`` prefix is allowed)."""
    try:
        return SUBSET_PRESETS[name.removeprefix("DiverSeg-")]
    except KeyError:
        raise DiversegError(f"unknown config {name!r}; choose from {', '.join(SUBSET_PRESETS)}") from None


def open_subset_source(sub: SubsetPreset, source: str | Source | None = None, **source_options: Any) -> Source:
    """The source of ``sub``: ``source`` (folder, Parquet, tar, Hub id) or the subset's default Hub dataset."""
    if isinstance(source, Source):
        return source
    spec = source or sub.source
    if spec is None:
        raise DiversegError(f"config {sub.name} has no default source; pass one")
    options = {"split": sub.split, "key_column": sub.key_column} if spec == sub.source else {}
    options.update({k: v for k, v in source_options.items() if v is not None})
    return open_source(spec, **options)


def paper_select_options(sub: SubsetPreset, scorers: list[str]) -> dict[str, Any]:
    """The paper's thresholds for the columns ``scorers`` produce (a theta on a missing column is dropped)."""
    columns = {c for name in scorers for c in get_scorer_class(name).columns}
    thetas = {c: t for c, t in sub.thetas.items() if c in columns}
    for column in set(sub.thetas) - set(thetas):
        logger.warning("%s: no scorer gives %s; its threshold (>= %g) is not applied", sub.name, column,
                       sub.thetas[column])
    return {"thetas": thetas, "min_quality": sub.min_quality if "blockiness" in scorers else None}

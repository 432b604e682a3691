"""Open-vocabulary object counts (the DiverSeg Detic count, ``det_objects``) with OWLv2 over LVIS.

Detic (detectron2) is not installable from the package registries; :class:`ObjectCounter` counts
objects with transformers' ``Owlv2ForObjectDetection`` over the 1,203 LVIS v1 category names
(``diverseg_hf/data/lvis_categories.txt``): the text queries are embedded once per (model, vocabulary,
prompt template) and cached; images go through the detector in batches; each predicted box takes its
best class (``sigmoid`` of the max logit, as transformers' post-processing); boxes with score
``> score_threshold`` go through class-aware greedy NMS (:mod:`.nms`, IoU ``> nms_threshold``
suppresses); the survivors are counted.

Calibrating ``score_threshold``: OWLv2 scores are not on Detic's scale, so 0.5 does not mean the same
thing. Pick the threshold so that the kept fraction matches a target retention: score a random sample
of the corpus with ``score_threshold=0`` style raw scores via :meth:`ObjectCounter.box_scores`, then
choose the threshold whose ``count >= 18`` retention equals the target (e.g. ~20% for DiverSeg-I,
260K of 1.28M) with :func:`threshold_for_retention`.

Example:
    >>> counter = ObjectCounter(device="cuda")             # doctest: +SKIP
    >>> counter.count([rgb_array])                          # doctest: +SKIP
    [23]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import numpy as np

from ..decode.images import decode_rgb
from ..errors import DiversegError, require
from .counting import CountingScorer

_TEXT_CACHE: dict[tuple, Any] = {}


def lvis_categories() -> list[str]:
    """The 1,203 LVIS v1 category names, in category-id order (``aerosol_can`` ... ``zucchini``)."""
    text = resources.files("diverseg_hf").joinpath("data/lvis_categories.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def query_text(name: str, template: str) -> str:
    """A category name as a text query: underscores become spaces, then ``template.format(name)``.

    Example:
        >>> query_text("baseball_bat", "a photo of a {}")
        'a photo of a baseball bat'
    """
    return template.format(name.replace("_", " "))


@dataclass(frozen=True)
class RetentionThreshold:
    """The result of :func:`threshold_for_retention`.

    ``threshold``: the ``score_threshold`` to use (a box counts when its score is ``> threshold``);
    ``retained``: images of the sample with ``>= min_objects`` boxes above it; ``requested``:
    ``round(retention * images)`` (halves up); ``tied_images``: when ``retained != requested`` because
    images share the boundary score, how many share it (no threshold separates them), else 0.
    """

    threshold: float
    retained: int
    requested: int
    images: int
    tied_images: int

    @property
    def exact(self) -> bool:
        """True when exactly the requested number of images is retained."""
        return self.retained == self.requested


def threshold_for_retention(scores_per_image: list[np.ndarray], min_objects: int,
                            retention: float) -> RetentionThreshold:
    """The score threshold at which exactly a share ``retention`` of the images has ``>= min_objects`` boxes.

    ``scores_per_image`` holds each image's box scores after class-aware NMS at a low ``floor``
    (:meth:`ObjectCounter.box_scores`). Greedy NMS visits boxes by descending score, so the boxes it keeps
    above any ``t >= floor`` are exactly those NMS keeps when run on the boxes above ``t``: counting the
    scores ``> t`` gives the counter's count at ``score_threshold=t`` exactly. An image reaches
    ``min_objects`` iff its ``min_objects``-th best score is ``> t``; with those keys sorted, the threshold
    is the first key below the requested number. When equal keys straddle that number, no threshold is
    exact: the nearest achievable count is returned (the larger one on a tie) and ``tied_images`` says
    how many images share the boundary score. The threshold is one of the sample's scores (or just below
    the lowest key), so it compares exactly with float32 scores.

    Example:
        >>> sample = [np.array([.75, .5]), np.array([.625]), np.array([.5, .25]), np.array([1, .125])]
        >>> r = threshold_for_retention(sample, 2, 0.5)  # keys .5, .25, .125; the 2nd image never reaches 2
        >>> r.threshold, r.retained, r.requested, r.exact
        (0.125, 2, 2, True)
        >>> r = threshold_for_retention([np.array([.75, .5]), np.array([.5, .5])], 2, 0.5)
        >>> r.retained, r.requested, r.tied_images  # both keys are .5: 0 or 2 images, never 1
        (2, 1, 2)
    """
    if not 0 < retention < 1:
        raise DiversegError("retention must be in (0, 1)")
    if min_objects < 1:
        raise DiversegError("min_objects must be >= 1")
    n = len(scores_per_image)
    requested = int(np.floor(retention * n + 0.5))
    keys = np.array([np.sort(np.asarray(s, np.float32))[::-1][min_objects - 1] for s in scores_per_image
                     if len(s) >= min_objects], np.float32)
    values, counts = np.unique(keys, return_counts=True)
    values, counts = values[::-1], counts[::-1]  # distinct keys, descending
    reachable = np.concatenate([[0], np.cumsum(counts)])  # retained when t is just below values[j - 1]
    best = int(np.argmin(np.abs(reachable - requested) * 2 - (reachable > requested)))  # nearest, larger on a tie
    if best < len(values):
        threshold = float(values[best])
    else:
        threshold = float(np.nextafter(values[-1], np.float32(-np.inf))) if len(values) else 0.0
    retained = int(reachable[best])
    straddling = (reachable[:-1] < requested) & (requested < reachable[1:])
    tied = int(counts[straddling][0]) if straddling.any() else 0
    return RetentionThreshold(threshold, retained, requested, n, tied)


class ObjectCounter:
    """Count open-vocabulary detections per image (see the module doc for the rules)."""

    def __init__(self, model: Any = "google/owlv2-base-patch16-ensemble", vocabulary: list[str] | None = None,
                 score_threshold: float = 0.5, nms_threshold: float = 0.5, device: str = "cpu",
                 dtype: str = "float32", batch_size: int = 8, template: str = "a photo of a {}",
                 processor: Any = None):
        transformers = require("transformers", "detect")
        if dtype not in ("float32", "bfloat16"):
            raise DiversegError(f"dtype must be float32 or bfloat16, got {dtype!r}")
        if batch_size < 1:
            raise DiversegError("batch_size must be >= 1")
        self.vocabulary = list(vocabulary) if vocabulary is not None else lvis_categories()
        if not self.vocabulary:
            raise DiversegError("the vocabulary is empty")
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.batch_size, self.template, self.dtype = batch_size, template, dtype
        if isinstance(model, transformers.Owlv2ForObjectDetection):
            self.model_name = f"{type(model).__name__}@{id(model)}"
            if processor is None:
                raise DiversegError("pass processor= together with a model instance")
        else:
            self.model_name = os.fspath(model)
        self._given, self._loaded = (model, processor), None
        self.to(device)

    def load(self) -> ObjectCounter:
        """Load the model and processor (once; :meth:`count` does it when needed) onto the current device."""
        if self._loaded is None:
            torch, transformers = require("torch", "detect"), require("transformers", "detect")
            model, processor = self._given
            if not isinstance(model, transformers.Owlv2ForObjectDetection):
                try:
                    model = transformers.Owlv2ForObjectDetection.from_pretrained(self.model_name)
                    processor = processor or transformers.Owlv2Processor.from_pretrained(self.model_name)
                except OSError as exc:
                    raise DiversegError(f"cannot load OWLv2 model {self.model_name!r}: {exc}") from None
            self._loaded = (model.to(getattr(torch, self.dtype)).eval().to(self.device), processor)
            self._given = None
        return self

    @property
    def model(self) -> Any:
        """The OWLv2 model (loaded on first use)."""
        return self.load()._loaded[0]

    @property
    def processor(self) -> Any:
        return self.load()._loaded[1]

    def to(self, device: str) -> ObjectCounter:
        """Move the model (and the cached text embeddings it uses) to ``device`` (where it will load, if not yet)."""
        if self._loaded is not None:
            self._loaded = (self._loaded[0].to(device), self._loaded[1])
        self.device = device
        return self

    def text_embeddings(self) -> Any:
        """``(n_classes, dim)`` query embeddings, computed once per (model, vocabulary, template, dtype)."""
        import torch

        key = (self.model_name, self.dtype, self.template, hash(tuple(self.vocabulary)), len(self.vocabulary))
        if key not in _TEXT_CACHE:
            owl, chunks = self.model.owlv2, []
            texts = [query_text(name, self.template) for name in self.vocabulary]
            with torch.no_grad():
                for start in range(0, len(texts), 256):
                    tok = self.processor.tokenizer(texts[start : start + 256], padding="max_length", truncation=True,
                                                   max_length=self.model.config.text_config.max_position_embeddings,
                                                   return_tensors="pt")
                    out = owl.text_model(input_ids=tok["input_ids"].to(self.model.device),
                                         attention_mask=tok["attention_mask"].to(self.model.device))
                    chunks.append(owl.text_projection(out[1]))
            _TEXT_CACHE[key] = torch.cat(chunks).cpu()
        return _TEXT_CACHE[key].to(self.model.device)

    def _detections(self, rgbs: list[np.ndarray]) -> list[tuple[Any, Any, Any]]:
        """Per image: ``(boxes xyxy relative, scores, labels)`` of all predicted boxes."""
        import torch

        queries = self.text_embeddings()
        pixels = self.processor.image_processor(images=rgbs, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            feature_map = self.model.image_embedder(pixel_values=pixels.to(self.model.device, self.model.dtype))[0]
            b, h, w, d = feature_map.shape
            feats = feature_map.reshape(b, h * w, d)
            logits = self.model.class_predictor(feats, queries[None].expand(b, -1, -1))[0].float()
            cxcywh = self.model.box_predictor(feats, feature_map).float()
        best = logits.max(-1)
        boxes = torch.cat([cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2], -1)
        return [(boxes[i], best.values[i].sigmoid(), best.indices[i]) for i in range(b)]

    def box_scores(self, images: list[Any], floor: float = 0.01) -> list[np.ndarray]:
        """Per image, the scores of the boxes that survive class-aware NMS at threshold ``floor``
        (for :func:`threshold_for_retention`)."""
        from .nms import nms

        out = []
        for start in range(0, len(images), self.batch_size):
            rgbs = [decode_rgb(im) for im in images[start : start + self.batch_size]]
            for boxes, scores, labels in self._detections(rgbs):
                keep = scores > floor
                kept = nms(boxes[keep], scores[keep], self.nms_threshold, labels[keep])
                out.append(scores[keep][kept].cpu().numpy())
        return out

    def count(self, images: list[Any]) -> list[int]:
        """Detections per image (PIL images, HxWx3 uint8 arrays, bytes or paths)."""
        from .nms import nms_count

        counts: list[int] = []
        for start in range(0, len(images), self.batch_size):
            rgbs = [decode_rgb(im) for im in images[start : start + self.batch_size]]
            for boxes, scores, labels in self._detections(rgbs):
                keep = scores > self.score_threshold
                counts.append(nms_count(boxes[keep], scores[keep], self.nms_threshold, labels[keep]))
        return counts

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings (recorded with score tables)."""
        return {"model": self.model_name, "vocabulary_size": len(self.vocabulary), "template": self.template,
                "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold, "dtype": self.dtype,
                "batch_size": self.batch_size}

    def halve_batches(self) -> bool:
        """Halve ``batch_size`` (after an out-of-memory error); False when it is already 1."""
        if self.batch_size == 1:
            return False
        self.batch_size //= 2
        return True


class DetectScorer(CountingScorer):
    """Scorer ``detect``: column ``det_objects`` = open-vocabulary detection count (None + reason on failure).

    ``batch_size``: images per scorer call and per detector call. Other options go to :class:`ObjectCounter`.
    """

    name: ClassVar[str] = "detect"
    column: ClassVar[str] = "det_objects"
    columns: ClassVar[dict[str, str]] = {"det_objects": "int32"}
    engine_options: ClassVar[frozenset[str]] = frozenset({"device", "dtype", "batch_size"})
    requires: ClassVar[tuple[str, tuple[str, ...]]] = ("detect", ("torch", "transformers"))

    def __init__(self, model: Any = "google/owlv2-base-patch16-ensemble", device: str = "cpu",
                 batch_size: int | None = None, **options: Any):
        if batch_size is not None:
            options["batch_size"] = batch_size
        super().__init__(ObjectCounter(model, device=device, **options), batch_size)

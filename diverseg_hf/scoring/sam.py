"""Count-only SAM automatic mask generation (``R(x)`` of DiverSeg) and the ``sam`` scorer.

:class:`SamMaskCounter` returns, per image, the number of masks segment-anything's automatic mask
generator (``crop_n_layers=0``, ``min_mask_region_area=0``) outputs, without building them: images
are batched through the vision encoder; each image's point prompts go through the prompt encoder and
mask decoder in chunks of ``points_per_batch`` that reuse the image embeddings; the IoU filter runs on
the low-res outputs, so only survivors are upscaled to the original size; stability scores, boxes and
NMS run on the device; no RLE and no masks are kept. The semantics are those of
:class:`~diverseg_hf.scoring.amg_reference.ReferenceMaskGenerator` (tested equal in float32).

Example:
    >>> counter = SamMaskCounter("tests/fixtures/tiny_sam", points_per_side=8)  # doctest: +SKIP
    >>> counter.count([rgb_array, "photo.jpg", jpeg_bytes])                      # doctest: +SKIP
    [12, 3, 7]
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..decode.images import decode_rgb
from ..errors import DiversegError, require
from .counting import CountingScorer

log = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16")
_BACKENDS = ("fast", "segment-anything")


def load_sam(model: Any, dtype: str = "float32") -> tuple[Any, tuple, tuple]:
    """``(SamModel in eval mode, pixel_mean, pixel_std)`` from a Hub id, a local directory, an official
    ``.pth``/``.pt`` checkpoint, or a ``SamModel`` instance (used in place: cast to ``dtype``). Pixel
    statistics come from the processor config when there is one, else SAM's."""
    torch = require("torch", "sam")
    transformers = require("transformers", "sam")
    from .amg_reference import SAM_PIXEL_MEAN, SAM_PIXEL_STD
    from .sam_checkpoint import load_official_checkpoint

    mean, std = SAM_PIXEL_MEAN, SAM_PIXEL_STD
    if isinstance(model, transformers.SamModel):
        sam = model
    elif str(model).endswith((".pth", ".pt")):
        if not Path(model).is_file():
            raise DiversegError(f"SAM checkpoint not found: {model}")
        sam = load_official_checkpoint(model)
    else:
        try:
            sam = transformers.SamModel.from_pretrained(os.fspath(model))
        except OSError as exc:
            raise DiversegError(f"cannot load SAM model {model!r}: {exc}") from None
        try:
            proc = transformers.SamProcessor.from_pretrained(os.fspath(model)).image_processor
            mean = tuple(float(m) * 255 for m in proc.image_mean)
            std = tuple(float(s) * 255 for s in proc.image_std)
            edge = proc.size["longest_edge"]
            if int(edge) != sam.config.vision_config.image_size:
                raise DiversegError(f"{model}: processor longest_edge {edge} != model image_size "
                                    f"{sam.config.vision_config.image_size}")
        except OSError:
            log.warning("%s has no processor config; using SAM's pixel mean/std", model)
    sam = sam.to(getattr(torch, dtype)).eval()
    return sam, mean, std


class SamMaskCounter:
    """Number of automatic SAM masks per image, equal to segment-anything's generator (see module doc).

    ``points_per_batch`` prompts go through the decoder at once (the generator's 64 is slow on a GPU);
    ``image_batch_size`` images through the encoder; ``upscale_batch`` surviving masks are upscaled
    to the original size at a time (memory: ``upscale_batch * H * W`` floats).
    """

    def __init__(self, model: Any = "facebook/sam-vit-huge", device: str = "cpu", dtype: str = "float32",
                 points_per_side: int = 32, points_per_batch: int = 256, pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95, stability_score_offset: float = 1.0,
                 box_nms_thresh: float = 0.7, mask_threshold: float = 0.0, image_batch_size: int = 4,
                 upscale_batch: int = 64, backend: str = "fast", compile: bool = False):
        from .amg_reference import AmgSettings

        if dtype not in _DTYPES:
            raise DiversegError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if backend not in _BACKENDS:
            raise DiversegError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if backend == "segment-anything" and dtype != "float32":
            raise DiversegError("the segment-anything backend runs in float32 only")
        if points_per_side < 1 or points_per_batch < 1 or image_batch_size < 1 or upscale_batch < 1:
            raise DiversegError("points_per_side, points_per_batch, image_batch_size, upscale_batch must be >= 1")
        self.settings = AmgSettings(points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh,
                                    stability_score_offset, box_nms_thresh, mask_threshold)
        self.model_name = model if isinstance(model, (str, os.PathLike)) else type(model).__name__
        self.dtype = dtype
        self.image_batch_size, self.upscale_batch = image_batch_size, upscale_batch
        self.backend = backend
        self.compiled = bool(compile)
        if isinstance(model, (str, os.PathLike)) and str(model).endswith((".pth", ".pt")) and not Path(model).is_file():
            raise DiversegError(f"SAM checkpoint not found: {model}")  # known now; other sources fail on load()
        self._given, self._loaded = model, None
        self.to(device)

    def load(self) -> SamMaskCounter:
        """Load the model (once; :meth:`count` does it when needed) onto the current device."""
        if self._loaded is None:
            model, mean, std = load_sam(self._given, self.dtype)
            if self.compiled:  # the vision encoder is where the time goes; the decoder sees many small shapes
                model.vision_encoder = require("torch", "sam").compile(model.vision_encoder)
            self._loaded = (model.to(self.device), mean, std)
            self._given = None  # the instance or path lives on in the loaded model only
        return self

    @property
    def model(self) -> Any:
        """The SamModel (loaded on first use)."""
        return self.load()._loaded[0]

    @property
    def pixel_mean(self) -> tuple:
        return self.load()._loaded[1]

    @property
    def pixel_std(self) -> tuple:
        return self.load()._loaded[2]

    @property
    def long_side(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def to(self, device: str) -> SamMaskCounter:
        """Move the model to ``device`` (where it will load, if not loaded yet)."""
        if self._loaded is not None:
            self._loaded = (self._loaded[0].to(device), *self._loaded[1:])
        self.device = device
        self._generator = None
        return self

    def count(self, images: list[Any]) -> list[int]:
        """Mask counts of images given as PIL images, HxWx3 uint8 arrays, bytes or paths.

        Raises :class:`~diverseg_hf.errors.ImageError` for an undecodable image.
        """
        rgbs = [decode_rgb(im) for im in images]
        if self.backend == "segment-anything":
            return [len(self._segment_anything_generator().generate(rgb)) for rgb in rgbs]
        counts: list[int] = []
        for start in range(0, len(rgbs), self.image_batch_size):
            counts.extend(self._count_batch(rgbs[start : start + self.image_batch_size]))
        return counts

    def _segment_anything_generator(self) -> Any:
        """segment-anything's own generator on the same weights (slow; float32; needs segment_anything)."""
        if self._generator is None:
            from .sam_checkpoint import segment_anything_model

            sa = require("segment_anything", "segment-anything")
            sam = segment_anything_model(self.model)
            sam.mask_threshold = self.settings.mask_threshold
            sam.pixel_mean.copy_(sam.pixel_mean.new_tensor(self.pixel_mean).view(-1, 1, 1))
            sam.pixel_std.copy_(sam.pixel_std.new_tensor(self.pixel_std).view(-1, 1, 1))
            s = self.settings
            self._generator = sa.SamAutomaticMaskGenerator(
                sam, points_per_side=s.points_per_side, points_per_batch=s.points_per_batch,
                pred_iou_thresh=s.pred_iou_thresh, stability_score_thresh=s.stability_score_thresh,
                stability_score_offset=s.stability_score_offset, box_nms_thresh=s.box_nms_thresh,
                crop_n_layers=0, min_mask_region_area=0)
        return self._generator

    def _count_batch(self, rgbs: list[np.ndarray]) -> list[int]:
        import torch

        from .amg_reference import prepare_pixels

        model, dtype = self.model, self.model.dtype
        with torch.no_grad():
            pixels = torch.stack([prepare_pixels(rgb, self.long_side, self.pixel_mean, self.pixel_std) for rgb in rgbs])
            embeddings = model.get_image_embeddings(pixels.to(model.device, dtype))
            return [self._count_one(embeddings[i : i + 1], rgb.shape[:2]) for i, rgb in enumerate(rgbs)]

    def _count_one(self, embedding: Any, size: tuple[int, int]) -> int:
        import torch

        from .amg_reference import image_points, masks_to_boxes, passes, resized_shape, stability_score, upscale_logits
        from .nms import nms_count

        s, model, device = self.settings, self.model, self.model.device
        resized = resized_shape(size[0], size[1], self.long_side)
        prompts = torch.as_tensor(image_points(size[0], size[1], s.points_per_side, self.long_side), device=device)
        positional = model.get_image_wide_positional_embeddings()
        boxes, scores = [], []
        for start in range(0, len(prompts), s.points_per_batch):
            batch = prompts[start : start + s.points_per_batch][None, :, None, :]
            sparse, dense = model.prompt_encoder(
                input_points=batch, input_labels=torch.ones(batch.shape[:3], dtype=torch.int, device=device),
                input_boxes=None, input_masks=None)
            low_res, iou = model.mask_decoder(
                image_embeddings=embedding, image_positional_embeddings=positional, sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense, multimask_output=True)
            iou = iou[0].flatten().float()
            keep = passes(iou, s.pred_iou_thresh)
            survivors, iou = low_res[0].flatten(0, 1)[keep].float(), iou[keep]
            for part in range(0, len(survivors), self.upscale_batch):
                logits = upscale_logits(survivors[part : part + self.upscale_batch], self.long_side, resized, size)
                stability = stability_score(logits, s.mask_threshold, s.stability_score_offset)
                stable = passes(stability, s.stability_score_thresh, inclusive=True)
                boxes.append(masks_to_boxes(logits[stable] > s.mask_threshold))
                scores.append(iou[part : part + self.upscale_batch][stable])
        if not boxes:
            return 0
        return nms_count(torch.cat(boxes).float(), torch.cat(scores), s.box_nms_thresh)

    def halve_batches(self) -> bool:
        """Halve ``points_per_batch``, ``image_batch_size`` and ``upscale_batch`` (after an out-of-memory
        error); False when all are already 1."""
        s = self.settings
        if max(s.points_per_batch, self.image_batch_size, self.upscale_batch) == 1:
            return False
        self.settings = dataclasses.replace(s, points_per_batch=max(1, s.points_per_batch // 2))
        self.image_batch_size, self.upscale_batch = max(1, self.image_batch_size // 2), max(1, self.upscale_batch // 2)
        self._generator = None
        return True

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable settings (recorded with score tables)."""
        s = self.settings
        return {"model": os.fspath(self.model_name) if not isinstance(self.model_name, str) else self.model_name,
                "dtype": self.dtype, "backend": self.backend, "compile": self.compiled,
                "points_per_side": s.points_per_side,
                "points_per_batch": s.points_per_batch, "image_batch_size": self.image_batch_size,
                "upscale_batch": self.upscale_batch,
                "pred_iou_thresh": s.pred_iou_thresh,
                "stability_score_thresh": s.stability_score_thresh, "stability_score_offset": s.stability_score_offset,
                "box_nms_thresh": s.box_nms_thresh, "mask_threshold": s.mask_threshold,
                "crop_n_layers": 0, "min_mask_region_area": 0}


class SamScorer(CountingScorer):
    """Scorer ``sam``: column ``sam_masks`` = SAM automatic mask count (None + reason on failure).

    ``batch_size``: images per scorer call (the engine's batches) and, unless ``image_batch_size`` is
    given, per vision-encoder call; ``points_per_batch``: prompts per mask-decoder call. Other options go
    to :class:`SamMaskCounter`.

    Example:
        >>> scorer = SamScorer(model="tests/fixtures/tiny_sam", points_per_side=8, batch_size=16)  # doctest: +SKIP
        >>> scorer.to("cuda")([rgb])["sam_masks"]                                                  # doctest: +SKIP
    """

    name: ClassVar[str] = "sam"
    column: ClassVar[str] = "sam_masks"
    columns: ClassVar[dict[str, str]] = {"sam_masks": "int32"}
    engine_options: ClassVar[frozenset[str]] = frozenset(
        {"device", "dtype", "batch_size", "points_per_batch", "image_batch_size", "compile"})
    requires: ClassVar[tuple[str, tuple[str, ...]]] = ("sam", ("torch", "transformers"))

    def __init__(self, model: Any = "facebook/sam-vit-huge", device: str = "cpu", batch_size: int | None = None,
                 points_per_batch: int | None = None, image_batch_size: int | None = None, **options: Any):
        batches = {"points_per_batch": points_per_batch, "image_batch_size": image_batch_size or batch_size}
        super().__init__(SamMaskCounter(model, device=device, **options,
                                        **{k: v for k, v in batches.items() if v is not None}), batch_size)

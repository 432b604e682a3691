"""Straightforward port of segment-anything's ``SamAutomaticMaskGenerator`` on a transformers SamModel.

Settings covered: ``crop_n_layers=0``, ``min_mask_region_area=0`` (the DiverSeg settings), where the
crop-edge filter and the cross-crop NMS are no-ops. Steps, one image at a time, as the original:

1. grid of ``n x n`` points at ``(i + 0.5) / n`` of the width and height;
2. resize the longest side to the model's input size (``int(x * scale + 0.5)``, PIL bilinear),
   normalise with SAM's mean/std, pad bottom-right to a square, encode once;
3. points (scaled to the resized frame) in batches of ``points_per_batch``, one positive point per
   prompt, multimask output (3 masks per point); low-res logits upscaled (bilinear,
   ``align_corners=False``) to the padded input size, cropped to the resized image, upscaled to the
   original size;
4. keep ``iou_pred > pred_iou_thresh``; stability score = |logits > t + o| / |logits > t - o| at the
   original resolution, keep ``>= stability_score_thresh``; boxes of ``logits > t``. As in the
   generator, a threshold ``<= 0`` turns its filter off (:func:`passes`): every mask is kept, also
   those with a negative predicted IoU or an undefined (0/0) stability score;
5. greedy box NMS (:mod:`.nms`) over all batches by predicted IoU; the survivors are the masks.

This module is the reference the fast counter (:mod:`.sam`) is tested against: keep it simple.

Example (``model`` a SamModel, ``rgb`` an HxWx3 uint8 array):
    ``ReferenceMaskGenerator(model).count(rgb)``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .nms import nms

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class AmgSettings:
    """The generator's knobs (segment-anything defaults, ``points_per_batch`` excepted)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    mask_threshold: float = 0.0


def point_grid(points_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` float64 (x, y) points in [0, 1], row-major over y, offset ``1/(2n)`` from the edges."""
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs = np.tile(side[None, :], (points_per_side, 1))
    ys = np.tile(side[:, None], (1, points_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def resized_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """Height and width after scaling the longest side to ``long_side`` (segment-anything rounding)."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def image_points(height: int, width: int, points_per_side: int, long_side: int) -> np.ndarray:
    """The grid in the resized image's pixel frame (float64), as the generator feeds the prompt encoder."""
    new_h, new_w = resized_shape(height, width, long_side)
    points = point_grid(points_per_side) * np.array([width, height], dtype=np.float64)
    return points * np.array([new_w / width, new_h / height])


def prepare_pixels(rgb: np.ndarray, long_side: int, mean=SAM_PIXEL_MEAN, std=SAM_PIXEL_STD) -> torch.Tensor:
    """``(3, S, S)`` float32 input: resized (PIL bilinear), normalised, zero-padded bottom-right."""
    new_h, new_w = resized_shape(rgb.shape[0], rgb.shape[1], long_side)
    if min(new_h, new_w) < 1:
        raise ValueError(f"image {rgb.shape[1]}x{rgb.shape[0]} is too thin to resize to {long_side} pixels")
    resized = np.array(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    x = torch.as_tensor(resized).permute(2, 0, 1).to(torch.float32)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return F.pad(x, (0, long_side - new_w, 0, long_side - new_h))


def upscale_logits(low_res: torch.Tensor, long_side: int, resized: tuple[int, int],
                   original: tuple[int, int]) -> torch.Tensor:
    """``(n, h, w)`` low-res logits -> ``(n, H, W)`` at the original size (segment-anything's postprocess)."""
    x = F.interpolate(low_res[:, None], (long_side, long_side), mode="bilinear", align_corners=False)
    x = x[..., : resized[0], : resized[1]]
    return F.interpolate(x, original, mode="bilinear", align_corners=False)[:, 0]


def stability_score(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at ``t + offset`` and ``t - offset`` (float32 ratio of counts)."""
    inter = (logits > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (logits > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def passes(values: torch.Tensor, threshold: float, inclusive: bool = False) -> torch.Tensor:
    """segment-anything's filter rule: ``values > threshold`` (``>=`` when ``inclusive``), and all True
    when ``threshold <= 0`` (the generator then skips the filter, NaN and negative values included).

    Example:
        >>> passes(torch.tensor([-0.5, 0.3, float("nan")]), 0.0).tolist()
        [True, True, True]
        >>> passes(torch.tensor([-0.5, 0.3, float("nan")]), 0.3, inclusive=True).tolist()
        [False, True, False]
    """
    if threshold <= 0:
        return torch.ones(values.shape, dtype=torch.bool, device=values.device)
    return values >= threshold if inclusive else values > threshold


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """``(n, H, W)`` bool masks -> ``(n, 4)`` int64 boxes ``x0, y0, x1, y1`` (inclusive; empty -> zeros)."""
    if masks.shape[0] == 0:
        return torch.zeros(0, 4, dtype=torch.long, device=masks.device)
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)

    def span(present: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(size, device=masks.device)
        last = (present * index).amax(-1)
        first = (present * index + size * ~present).amin(-1)
        return first, last

    y0, y1 = span(rows, h)
    x0, x1 = span(cols, w)
    boxes = torch.stack([x0, y0, x1, y1], -1)
    empty = (x1 < x0) | (y1 < y0)
    return boxes * ~empty[:, None]


class ReferenceMaskGenerator:
    """The generator, one image and one ``points_per_batch`` batch at a time, returning the kept masks."""

    def __init__(self, model: Any, settings: AmgSettings | None = None,
                 pixel_mean=SAM_PIXEL_MEAN, pixel_std=SAM_PIXEL_STD):
        self.model = model
        self.settings = settings or AmgSettings()
        self.pixel_mean, self.pixel_std = pixel_mean, pixel_std
        self.long_side = int(model.config.vision_config.image_size)

    @torch.no_grad()
    def generate(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        """Kept masks' ``boxes``, ``iou_preds``, ``stability_score`` and ``points`` (original frame)."""
        s, model = self.settings, self.model
        device, dtype = model.device, model.dtype
        height, width = rgb.shape[:2]
        resized = resized_shape(height, width, self.long_side)
        pixels = prepare_pixels(rgb, self.long_side, self.pixel_mean, self.pixel_std)
        embeddings = model.get_image_embeddings(pixels[None].to(device, dtype))
        grid = point_grid(s.points_per_side) * np.array([width, height], dtype=np.float64)
        prompts = image_points(height, width, s.points_per_side, self.long_side)
        kept: dict[str, list[torch.Tensor]] = {"boxes": [], "iou_preds": [], "stability_score": [], "points": []}
        for start in range(0, len(prompts), s.points_per_batch):
            batch = torch.as_tensor(prompts[start : start + s.points_per_batch], device=device)
            out = model(image_embeddings=embeddings, input_points=batch[None, :, None, :],
                        input_labels=torch.ones(1, len(batch), 1, dtype=torch.int, device=device),
                        multimask_output=True)
            low_res = out.pred_masks[0].float()  # (points, 3, h, w)
            logits = upscale_logits(low_res.flatten(0, 1), self.long_side, resized, (height, width))
            iou_preds = out.iou_scores[0].float().flatten()
            points = torch.as_tensor(grid[start : start + s.points_per_batch]).repeat_interleave(low_res.shape[1], 0)
            keep = passes(iou_preds, s.pred_iou_thresh)
            logits, iou_preds, points = logits[keep], iou_preds[keep], points[keep]
            stability = stability_score(logits, s.mask_threshold, s.stability_score_offset)
            keep = passes(stability, s.stability_score_thresh, inclusive=True)
            logits, iou_preds, points, stability = logits[keep], iou_preds[keep], points[keep], stability[keep]
            kept["boxes"].append(masks_to_boxes(logits > s.mask_threshold))
            kept["iou_preds"].append(iou_preds)
            kept["stability_score"].append(stability)
            kept["points"].append(points.to(device))
        data = {k: torch.cat(v) for k, v in kept.items()}
        survivors = nms(data["boxes"].float(), data["iou_preds"], s.box_nms_thresh)
        return {k: v[survivors] for k, v in data.items()}

    def count(self, rgb: np.ndarray) -> int:
        """Number of masks the generator outputs for one HxWx3 uint8 image."""
        return int(self.generate(rgb)["boxes"].shape[0])

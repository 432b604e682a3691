"""Greedy box non-maximum suppression in pure torch, with torchvision's rules, on any device.

Rules (those of torchvision's CPU kernel): boxes are ``(x1, y1, x2, y2)``; areas are
``(x2 - x1) * (y2 - y1)`` (no +1); the IoU ``inter / (area_i + area_j - inter)`` is computed in the
boxes' dtype (float32 for float32 boxes; integer, float16 and bfloat16 boxes are computed in float32);
a box is suppressed when that IoU is ``> iou_threshold`` with the threshold held as a Python float
(a double): a float32 IoU of 552/920 = 0.6000000238 suppresses at threshold 0.6. Boxes are visited by
descending score (stable order for ties); an undefined IoU (0/0 between zero-area boxes) is NaN and
never suppresses. The same on every device: torchvision's CUDA kernel instead rounds the threshold to
float32 (0.6 -> 0.6000000238, so that pair is kept there) and does not promise a stable sort.

The double comparison is made in the IoU's own dtype against the largest value of that dtype not above
the threshold (:func:`threshold_below`), which is equivalent and works on devices without float64.

The greedy recurrence ``keep[i] = not any(keep[j] and iou[j, i] > t for j < i)`` is solved as the
fixed point of that map applied to all boxes at once (at most ``n`` rounds, usually a handful), so the
whole computation stays on the device with one host sync per round.

Example:
    >>> import torch
    >>> boxes = torch.tensor([[0., 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    >>> nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
    [0, 2]
"""

from __future__ import annotations

import numpy as np
import torch


def threshold_below(threshold: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value ``<= threshold``: for ``x`` of that dtype, ``x > t`` (as doubles) iff
    ``x > threshold_below(t, dtype)`` (as ``dtype``).

    Example:
        >>> threshold_below(0.6, torch.float32) < 0.6 < float(torch.tensor(0.6, dtype=torch.float32))
        True
        >>> threshold_below(0.7, torch.float32) == float(torch.tensor(0.7, dtype=torch.float32))
        True
    """
    if dtype == torch.float64:
        return float(threshold)
    if dtype != torch.float32:
        raise ValueError(f"threshold_below needs float32 or float64, got {dtype}")
    t32 = np.float32(threshold)
    if float(t32) > threshold:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return float(t32)


def box_iou(boxes: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU matrix of ``(n, 4)`` boxes (NaN where both areas and the intersection are 0)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def _greedy_keep(suppresses: torch.Tensor) -> torch.Tensor:
    """Solve keep[i] = not any(keep[j] & suppresses[j, i], j < i) for an upper-triangular relation."""
    n = suppresses.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=suppresses.device)
    weights = suppresses.to(torch.float32)
    for _ in range(n + 1):
        new = (keep.to(torch.float32) @ weights) == 0
        if torch.equal(new, keep):
            return keep
        keep = new
    raise AssertionError("greedy NMS did not converge")  # impossible: round k fixes entry k


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        classes: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the kept boxes, by descending score; with ``classes``, only same-class boxes compete.

    ``classes`` gives torchvision's ``batched_nms`` result (class-aware NMS) computed exactly, without
    the coordinate-offset trick.
    """
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms needs (n, 4) boxes and (n,) scores, got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order] if boxes.dtype in (torch.float32, torch.float64) else boxes[order].to(torch.float32)
    suppresses = box_iou(b) > threshold_below(iou_threshold, b.dtype)  # exact in b's dtype
    if classes is not None:
        c = classes[order]
        suppresses &= c[:, None] == c[None, :]
    suppresses = torch.triu(suppresses, diagonal=1)
    return order[_greedy_keep(suppresses)]


def nms_count(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
              classes: torch.Tensor | None = None) -> int:
    """Number of boxes that :func:`nms` keeps."""
    return int(nms(boxes, scores, iou_threshold, classes).numel())

"""Greedy box non-maximum suppression in pure torch, with torchvision's rules, on any device.

Rules (those of ``torchvision.ops.nms``): boxes are ``(x1, y1, x2, y2)``; areas are
``(x2 - x1) * (y2 - y1)`` (no +1); boxes are visited by descending score (stable order for ties);
a box is suppressed when its IoU with an already kept box is ``> iou_threshold``; an undefined IoU
(0/0 between zero-area boxes) is NaN and never suppresses.

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

import torch


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
    b = boxes[order].to(torch.float32) if not boxes.is_floating_point() else boxes[order]
    suppresses = box_iou(b) > iou_threshold
    if classes is not None:
        c = classes[order]
        suppresses &= c[:, None] == c[None, :]
    suppresses = torch.triu(suppresses, diagonal=1)
    return order[_greedy_keep(suppresses)]


def nms_count(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
              classes: torch.Tensor | None = None) -> int:
    """Number of boxes that :func:`nms` keeps."""
    return int(nms(boxes, scores, iou_threshold, classes).numel())

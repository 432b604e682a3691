"""Shared helpers of the SAM tests: the tiny trained model, generated shape images, segment-anything import."""

from __future__ import annotations

import importlib
import importlib.machinery
import math
import sys
import types
from pathlib import Path

import numpy as np

TINY_SAM = Path(__file__).resolve().parent / "fixtures" / "tiny_sam"


def shape_images(n: int, seed: int, low: int = 40, high: int = 300) -> list[np.ndarray]:
    """``n`` generated images of overlapping shapes (the tiny model's training distribution), varied sizes."""
    sys.path.insert(0, str(TINY_SAM.parent))
    try:
        from train_tiny_sam import shapes_image
    finally:
        sys.path.remove(str(TINY_SAM.parent))
    rng = np.random.default_rng(seed)
    return [shapes_image(rng, int(rng.integers(low, high)), int(rng.integers(low, high)))[0] for _ in range(n)]


def loop_batched_nms(boxes, scores, classes, iou_threshold):
    """torchvision.ops.batched_nms stand-in: greedy loop, per class, IoU > threshold suppresses."""
    import torch

    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    b, kept = boxes.tolist(), []
    for i in order:
        ok = True
        for j in kept:
            if int(classes[i]) != int(classes[j]):
                continue
            iw = max(0.0, min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]))
            ih = max(0.0, min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]))
            inter = iw * ih
            union = (b[i][2] - b[i][0]) * (b[i][3] - b[i][1]) + (b[j][2] - b[j][0]) * (b[j][3] - b[j][1]) - inter
            if (inter / union if union else math.nan) > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return torch.tensor(kept, dtype=torch.long)


def import_segment_anything():
    """Import segment_anything with a test-only torchvision stand-in (removed again right after)."""
    try:
        importlib.import_module("torchvision")
        return importlib.import_module("segment_anything")
    except ImportError:
        pass
    from PIL import Image

    fakes = {name: types.ModuleType(name) for name in
             ("torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
              "torchvision.transforms.functional")}
    for name, mod in fakes.items():
        mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    fakes["torchvision.ops.boxes"].batched_nms = loop_batched_nms
    fakes["torchvision.ops.boxes"].box_area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    fakes["torchvision.transforms.functional"].to_pil_image = Image.fromarray
    fakes["torchvision.transforms.functional"].resize = lambda im, size: im.resize((size[1], size[0]), Image.BILINEAR)
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        return importlib.import_module("segment_anything")
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod

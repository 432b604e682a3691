"""Shared helpers of the SAM tests: the tiny trained model, generated shape images, segment-anything import."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np

TINY_SAM = Path(__file__).resolve().parent / "fixtures" / "tiny_sam"
TINY_SAM_DEFAULTS = TINY_SAM.parent / "tiny_sam_defaults"  # passes the generator's default thresholds


def shape_images(n: int, seed: int, low: int = 40, high: int = 300) -> list[np.ndarray]:
    """``n`` generated images of overlapping shapes (the tiny model's training distribution), varied sizes."""
    sys.path.insert(0, str(TINY_SAM.parent))
    try:
        from train_tiny_sam import shapes_image
    finally:
        sys.path.remove(str(TINY_SAM.parent))
    rng = np.random.default_rng(seed)
    return [shapes_image(rng, int(rng.integers(low, high)), int(rng.integers(low, high)))[0] for _ in range(n)]


def torchvision_nms_loop(boxes, scores, iou_threshold: float, classes=None) -> list[int]:
    """torchvision's CPU NMS kernel as a plain loop: float32 areas and IoU ``inter / (iarea + area_j - inter)``,
    compared ``>`` with the threshold as a Python float (a double); stable descending score order; per class."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = sorted(range(len(b)), key=lambda i: -float(scores[i]))  # Python's sort is stable
    kept: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in order:
            suppressed = False
            for j in kept:
                if classes is not None and int(classes[i]) != int(classes[j]):
                    continue
                w = max(np.float32(0), min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
                h = max(np.float32(0), min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
                inter = np.float32(w * h)
                ovr = np.float32(inter / np.float32(areas[j] + areas[i] - inter))
                if float(ovr) > float(iou_threshold):  # NaN (0/0) compares False: never suppresses
                    suppressed = True
                    break
            if not suppressed:
                kept.append(i)
    return kept


def loop_batched_nms(boxes, scores, classes, iou_threshold):
    """torchvision.ops.batched_nms stand-in with the CPU kernel's exact semantics (:func:`torchvision_nms_loop`)."""
    import torch

    return torch.tensor(torchvision_nms_loop(boxes.cpu(), scores.cpu(), iou_threshold, classes.cpu()),
                        dtype=torch.long)


def decoder_flips(model, sa_model, rgb: np.ndarray, side: int, threshold: float) -> tuple[int, float]:
    """(masks with any flipped pixel, max |logit difference|) between the two decoders on identical inputs."""
    import torch

    from diverseg_hf.scoring.amg_reference import image_points, prepare_pixels, resized_shape, upscale_logits

    h, w = rgb.shape[:2]
    long_side = int(model.config.vision_config.image_size)
    resized = resized_shape(h, w, long_side)
    with torch.no_grad():
        embedding = sa_model.image_encoder(prepare_pixels(rgb, long_side)[None])
        points = torch.as_tensor(image_points(h, w, side, long_side), dtype=torch.float32)
        tf = model(image_embeddings=embedding, input_points=points[None, :, None, :], multimask_output=True)
        sparse, dense = sa_model.prompt_encoder(points=(points[:, None], torch.ones(len(points), 1, dtype=torch.int)),
                                                boxes=None, masks=None)
        sa_low, _ = sa_model.mask_decoder(image_embeddings=embedding, image_pe=sa_model.prompt_encoder.get_dense_pe(),
                                          sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                          multimask_output=True)
    ours = upscale_logits(tf.pred_masks[0].flatten(0, 1), long_side, resized, (h, w))
    theirs = upscale_logits(sa_low.flatten(0, 1), long_side, resized, (h, w))
    flipped = ((ours > threshold) != (theirs > threshold)).flatten(1).any(1)
    return int(flipped.sum()), float((ours - theirs).abs().max())


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

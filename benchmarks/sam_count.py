"""Benchmark SAM automatic mask counting: images/s of each implementation, and count agreement.

Implementations timed on random-weight ViT-B / ViT-H configs (random weights are fine for speed):
the transformers "mask-generation" pipeline (when it runs offline), segment-anything's generator
(when importable), our straightforward reference port, and the fast counter in float32/bfloat16.
Then count agreement on the tiny trained model (tests/fixtures/tiny_sam): fast float32 vs the
reference, and bfloat16 vs float32 (counts, and keep/drop at a scaled theta).

Random-weight models produce no masks at the default thresholds, which hides the post-processing
cost; ``--keep-all`` sets pred_iou_thresh and stability_score_thresh to 0 (every mask upscaled:
the worst case) for the fast and reference paths.

    python benchmarks/sam_count.py                     # CPU: small configs, finishes in a minute or two
    python benchmarks/sam_count.py --device cuda --full  # GPU: real ViT-B/H sizes at 32x32 points
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import SamConfig, SamModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sam_helpers import TINY_SAM, import_segment_anything, shape_images  # noqa: E402

from diverseg_hf.scoring.amg_reference import AmgSettings, ReferenceMaskGenerator  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402
from diverseg_hf.scoring.sam_checkpoint import segment_anything_model  # noqa: E402

log = logging.getLogger("sam_count")

VITS = {  # hidden, layers, heads, global attention blocks
    "vit_b": (768, 12, 12, [2, 5, 8, 11]),
    "vit_h": (1280, 32, 16, [7, 15, 23, 31]),
}


def vit_config(name: str, full: bool) -> SamConfig:
    hidden, layers, heads, globals_ = VITS[name]
    if not full:  # CPU: same widths, 2 blocks, 256-pixel input (16x16 embeddings)
        layers, globals_ = 2, [1]
    size = 1024 if full else 256
    vision = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads, "image_size": size,
              "global_attn_indexes": globals_, "mlp_dim": 4 * hidden}
    prompt = {"image_size": size, "image_embedding_size": size // 16}
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt)


def rate(fn, images: list[np.ndarray]) -> float:
    fn(images[:1])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(images)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def speed(args) -> list[dict]:
    rng = np.random.default_rng(0)
    shape = (375, 500) if args.full else (120, 160)
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(args.images)]
    thr = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if args.keep_all else {}
    rows = []
    for name in args.vits:
        torch.manual_seed(0)
        model = SamModel(vit_config(name, args.full)).eval()
        fast = SamMaskCounter(model, device=args.device, points_per_side=args.points,
                              points_per_batch=args.points_per_batch, **thr)
        ref = ReferenceMaskGenerator(fast.model, AmgSettings(args.points, 64, **thr))
        timings = {"reference": lambda ims, ref=ref: [ref.count(im) for im in ims],
                   "fast-float32": fast.count}
        try:
            sa = import_segment_anything()
            generator = sa.SamAutomaticMaskGenerator(segment_anything_model(fast.model), points_per_side=args.points,
                                                     **thr)
            timings["segment-anything"] = lambda ims, g=generator: [len(g.generate(im)) for im in ims]
        except ImportError as exc:
            log.info("segment-anything not timed: %s", exc)
        try:
            from transformers import SamImageProcessor, pipeline

            processor = SamImageProcessor(size={"longest_edge": model.config.vision_config.image_size},
                                          pad_size={"height": model.config.vision_config.image_size,
                                                    "width": model.config.vision_config.image_size})
            pipe = pipeline("mask-generation", model=fast.model, image_processor=processor, device=args.device)
            timings["transformers-pipeline"] = lambda ims, p=pipe: [
                len(p(Image.fromarray(im), points_per_batch=64, points_per_crop=args.points,
                      pred_iou_thresh=thr.get("pred_iou_thresh", 0.88),
                      stability_score_thresh=thr.get("stability_score_thresh", 0.95))["masks"]) for im in ims]
        except Exception as exc:  # the pipeline's offline/processor requirements vary by version
            log.info("transformers pipeline not timed: %s", str(exc).splitlines()[0])
        for label, fn in timings.items():
            try:
                rows.append({"vit": name, "impl": label, "img_per_s": round(rate(fn, images), 3)})
            except Exception as exc:
                log.warning("%s %s failed: %s", name, label, str(exc).strip().splitlines()[0])
            log.info("%s", rows[-1] if rows else None)
        fast_bf16 = SamMaskCounter(SamModel(vit_config(name, args.full)).eval(), device=args.device, dtype="bfloat16",
                                   points_per_side=args.points, points_per_batch=args.points_per_batch, **thr)
        rows.append({"vit": name, "impl": "fast-bfloat16", "img_per_s": round(rate(fast_bf16.count, images), 3)})
        log.info("%s", rows[-1])
    return rows


def agreement(args) -> dict:
    images = shape_images(args.agree_images, seed=123, low=60, high=400)
    out = {}
    for label, thr in (("default", {}), ("relaxed", {"pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}),
                       ("filters-off", {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0})):
        fast = SamMaskCounter(TINY_SAM, device=args.device, points_per_side=args.points, **thr)
        bf16 = SamMaskCounter(TINY_SAM, device=args.device, dtype="bfloat16", points_per_side=args.points, **thr)
        ref = ReferenceMaskGenerator(fast.model, AmgSettings(args.points, 64, **thr), fast.pixel_mean, fast.pixel_std)
        a, b = np.array(fast.count(images)), np.array(bf16.count(images))
        r = np.array([ref.count(im) for im in images])
        theta = max(1, int(np.median(a)))
        out[label] = {"images": len(images), "mean_count_fp32": float(a.mean()),
                      "fast_eq_reference": float((a == r).mean()), "bf16_eq_fp32": float((a == b).mean()),
                      "bf16_mean_abs_diff": float(np.abs(a - b).mean()), "scaled_theta": theta,
                      "bf16_keep_decision_differs": float(((a >= theta) != (b >= theta)).mean())}
        log.info("%s %s", label, out[label])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--full", action="store_true", help="real ViT sizes (1024 input); default on CUDA")
    parser.add_argument("--vits", nargs="+", default=["vit_b", "vit_h"], choices=sorted(VITS))
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--points", type=int, default=None, help="points per side (32 on --full, else 8)")
    parser.add_argument("--points-per-batch", type=int, default=None, help="decoder chunk (256 on CUDA, else 64)")
    parser.add_argument("--keep-all", action="store_true", help="thresholds 0: every mask is upscaled")
    parser.add_argument("--agree-images", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.full = args.full or args.device.startswith("cuda")
    args.images = args.images or (16 if args.full else 2)
    args.points = args.points or (32 if args.full else 8)
    args.points_per_batch = args.points_per_batch or (256 if args.device.startswith("cuda") else 64)
    args.agree_images = args.agree_images or (64 if args.full else 8)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    result = {"device": args.device, "full": args.full, "points_per_side": args.points, "keep_all": args.keep_all,
              "torch": torch.__version__, "speed": speed(args), "agreement_tiny_sam": agreement(args)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

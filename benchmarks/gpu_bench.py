"""GPU benchmark of the scoring path: one JSON with every measurement that ran (run by ``benchmarks/gpu.sh``).

Measures images/s (wall time on the device, after a warm-up call) of:

- the SAM count-only counter (:class:`~diverseg_hf.scoring.sam.SamMaskCounter`) on random-weight ViT-B and
  ViT-H SAMs at real sizes (1024-pixel input, 32x32 points), float32 and bfloat16, at the generator's default
  thresholds and with every threshold at 0 (every mask reaches the post-processing: its upper bound);
- segment-anything's ``SamAutomaticMaskGenerator`` on the same weights (float32) when it is importable;
- transformers' ``mask-generation`` pipeline on the same model (float32);
- the detection counter (:class:`~diverseg_hf.scoring.detect.ObjectCounter`) on a random-weight OWLv2-base
  (960 pixels, 1,203 LVIS queries; a character-level tokenizer stands in for CLIP's, offline);
- the blockiness torch path (:func:`diverseg_hf.quality.blockiness_torch.blockiness_torch`) on 512x384 gray images;
- the SAM counter ViT-H bfloat16 again with ``compile=True`` (torch.compile of the vision encoder; the warm-up
  time, ``warmup_s``, includes the compilation).

Each measurement runs in its own ``try`` within a share of the time budget; the JSON is rewritten after
each one, so a failure or a kill still leaves everything measured so far. It records the peak GPU memory
and the batch sizes used. ``--smoke`` runs tiny configs (CPU is fine) to check the script end to end.

    PYTHONPATH=. python benchmarks/gpu_bench.py --out gpu_bench.json          # on a GPU machine
    PYTHONPATH=. python benchmarks/gpu_bench.py --smoke --device cpu --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

VITS = {"vit_b": (768, 12, 12, [2, 5, 8, 11]), "vit_h": (1280, 32, 16, [7, 15, 23, 31])}


class Budget:
    """Wall-clock budget: the whole run, and a per-measurement share of what is left."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def photos(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic HxWx3 uint8 images of overlapping shapes on a noisy background."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = Image.fromarray(rng.integers(0, 60, (size[0], size[1], 3), dtype=np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(5, 25))):
            x, y = rng.uniform(0, size[1]), rng.uniform(0, size[0])
            r = rng.uniform(0.03, 0.3) * min(size)
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x - r, y - r, x + r, y + r], fill=fill)
        out.append(np.asarray(im))
    return out


def sam_model(name: str, smoke: bool, device: str):
    from transformers import SamConfig, SamModel

    hidden, layers, heads, globals_ = VITS[name]
    size = 1024
    if smoke:
        hidden, layers, heads, globals_, size = 32, 2, 2, [1], 256
    vision = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads, "image_size": size,
              "global_attn_indexes": globals_, "mlp_dim": 4 * hidden}
    config = SamConfig(vision_config=vision, prompt_encoder_config={"image_size": size,
                                                                    "image_embedding_size": size // 16})
    torch.manual_seed(0)
    with torch.device(device):
        return SamModel(config).eval()


def timed(fn, images: list, batch: int, budget: float, device: str) -> dict:
    """images/s of ``fn(batch of images)`` over as many batches as fit in ``budget`` seconds (at least one)."""
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    fn(images[:batch])  # warm-up (and compilation, with --compile)
    sync()
    warmup = time.perf_counter() - began
    start, done = time.perf_counter(), 0
    while done == 0 or (time.perf_counter() - start < budget and done < len(images)):
        chunk = images[done % len(images):][:batch]
        out = fn(chunk)
        done += len(chunk)
    sync()
    seconds = time.perf_counter() - start
    result = {"images": done, "seconds": round(seconds, 3), "images_per_s": round(done / seconds, 3),
              "warmup_s": round(warmup, 3), "last_output": out[:4] if isinstance(out, list) else None}
    if device.startswith("cuda"):
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return result


def sam_measurements(args):
    """(name, thunk) pairs for the SAM counter, segment-anything and the pipeline."""
    from diverseg_hf.scoring.sam import SamMaskCounter

    points = 4 if args.smoke else 32
    images = photos(args.images, (120, 160) if args.smoke else (480, 640))
    thresholds = {"default": {}, "all0": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}}

    def counter(name, dtype, knobs, compile=False):
        def run(share):
            model = sam_model(name, args.smoke, args.device)
            c = SamMaskCounter(model, device=args.device, dtype=dtype, points_per_side=points,
                               points_per_batch=args.points_per_batch, image_batch_size=args.image_batch_size,
                               compile=compile, **thresholds[knobs]).load()  # weights load lazily: not in warmup_s
            result = timed(c.count, images, args.image_batch_size, share, args.device)
            return {**result, "points_per_side": points, "points_per_batch": c.settings.points_per_batch,
                    "image_batch_size": c.image_batch_size, "dtype": dtype, "compile": compile}
        return run

    def generator(name):
        def run(share):
            import segment_anything

            from diverseg_hf.scoring.sam_checkpoint import segment_anything_model

            sa = segment_anything_model(sam_model(name, args.smoke, args.device))
            gen = segment_anything.SamAutomaticMaskGenerator(sa, points_per_side=points, points_per_batch=64,
                                                             crop_n_layers=0, min_mask_region_area=0)
            result = timed(lambda ims: [len(gen.generate(im)) for im in ims], images, 1, share, args.device)
            return {**result, "points_per_side": points, "points_per_batch": 64}
        return run

    def pipeline(name):
        def run(share):
            import transformers

            model = sam_model(name, args.smoke, args.device)
            size = model.config.vision_config.image_size
            cls = getattr(transformers, "SamImageProcessorPil", None) or transformers.SamImageProcessor
            processor = cls(size={"longest_edge": size}, pad_size={"height": size, "width": size})
            pipe = transformers.pipeline("mask-generation", model=model, image_processor=processor, device=args.device)
            grid = {"points_per_batch": 64, "points_per_crop": points, "crops_n_layers": 0}
            result = timed(lambda ims: [len(pipe(Image.fromarray(im), **grid)["masks"]) for im in ims],
                           images, 1, share, args.device)
            return {**result, "points_per_side": points, "points_per_batch": 64}
        return run

    for name in VITS:
        for dtype in ("float32", "bfloat16"):
            for knobs in thresholds:
                yield f"sam_counter/{name}/{dtype}/{knobs}", counter(name, dtype, knobs)
        yield f"segment_anything_generator/{name}/float32/default", generator(name)
        yield f"transformers_pipeline/{name}/float32/default", pipeline(name)
    yield "sam_counter/vit_h/bfloat16/default/compile", counter("vit_h", "bfloat16", "default", compile=True)


def owl_counter(args, tmp: Path):
    """ObjectCounter on a random OWLv2 (base sizes, or tiny with --smoke) and a character-level tokenizer."""
    import sys

    from diverseg_hf.scoring.detect import ObjectCounter

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the offline OWLv2 the tests use
    from owl_helpers import random_owlv2

    model, processor = random_owlv2(tmp, 96 if args.smoke else 960, tiny=args.smoke,
                                    processor_class="Owlv2ImageProcessor")
    return ObjectCounter(model, processor=processor, device=args.device, batch_size=args.detect_batch_size,
                         score_threshold=0.1).load()  # weights load lazily: load them before the timed calls


def other_measurements(args):
    images = photos(args.images, (120, 160) if args.smoke else (480, 640), seed=1)

    def detect(share):
        with tempfile.TemporaryDirectory() as tmp:
            counter = owl_counter(args, Path(tmp))
            result = timed(counter.count, images, counter.batch_size, share, args.device)
        return {**result, "batch_size": counter.batch_size, "vocabulary_size": len(counter.vocabulary)}

    def blockiness(share):
        from diverseg_hf.quality.blockiness_torch import blockiness_torch

        grays = [im[..., 0] for im in photos(64, (384, 512), seed=2)]
        batch = 64
        result = timed(lambda g: [r.value for r in blockiness_torch(g, device=args.device)], grays, batch, share,
                       args.device)
        return {**result, "batch_size": batch, "image_size": [384, 512]}

    yield "detect_counter/owlv2_base/float32", detect
    yield "blockiness_torch/float64", blockiness


def environment(args) -> dict:
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "device": args.device, "smoke": args.smoke, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(args.device)
    return env


def measure(job, share: float) -> dict:
    """``job(share)``, or ``{"error": first line of the exception}``: one failure must not lose the others."""
    try:
        return job(share)
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc))
        return {"error": " ".join(line.strip() for line in text.splitlines() if line.strip())[:400]}


def run(args) -> dict:
    budget = Budget(args.budget)
    report = {"environment": environment(args), "measurements": {}}
    jobs = [*sam_measurements(args), *other_measurements(args)]
    jobs.sort(key=lambda job: job[0].endswith("/compile"))  # compiling can take minutes: last, so nothing waits
    for index, (name, job) in enumerate(jobs):
        share = budget.left() / (len(jobs) - index) * 0.6  # the rest: model building and warm-up
        began = time.monotonic()
        if args.only and not name.startswith(tuple(args.only)):
            report["measurements"][name] = {"skipped": "not selected (--only)"}
        elif budget.left() < 10:
            report["measurements"][name] = {"skipped": "time budget spent"}
        else:
            report["measurements"][name] = measure(job, max(1.0, share))
        report["measurements"][name]["wall_s"] = round(time.monotonic() - began, 1)
        print(name, json.dumps(report["measurements"][name]), flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        args.out.write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_bench.json"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget", type=float, default=420, help="seconds for all measurements")
    parser.add_argument("--images", type=int, default=16, help="distinct images per measurement")
    parser.add_argument("--image-batch-size", type=int, default=4, help="images per SAM encoder call")
    parser.add_argument("--points-per-batch", type=int, default=256, help="prompts per SAM decoder call")
    parser.add_argument("--detect-batch-size", type=int, default=8, help="images per OWLv2 call")
    parser.add_argument("--only", action="append", default=[], help="run only measurements with this name prefix")
    parser.add_argument("--smoke", action="store_true", help="tiny configs: checks the script end to end")
    args = parser.parse_args()
    run(args)


if __name__ == "__main__":
    main()

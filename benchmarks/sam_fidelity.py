"""SAM count fidelity: the fast counter, the straightforward port and segment-anything's generator, image by image.

On the tiny SAM edited to pass the generator's default thresholds (``tests/fixtures/tiny_sam_defaults``),
for each setting and image: the three counts, and how many of the decoder's masks differ by flipped pixels
between the transformers and segment-anything decoders fed the SAME image embeddings and prompts (both
upscaled by segment-anything's rule, thresholded at the setting's ``mask_threshold``), with the largest
logit difference. A count that differs between the port and segment-anything on an image without
flipped masks would be a real bug; with flips it is the decoders' float32 rounding near the threshold.

    python benchmarks/sam_fidelity.py --out /tmp/sam_fidelity.json   # CPU, a few minutes

Images: generated shapes (``tests/sam_helpers.shape_images``), the shared photos when present (PNG and
JPEG, odd sizes), a gray image, a tiny 7x9 image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sam_helpers import TINY_SAM_DEFAULTS, decoder_flips, import_segment_anything, shape_images  # noqa: E402

from diverseg_hf.decode.images import decode_rgb  # noqa: E402
from diverseg_hf.scoring.amg_reference import AmgSettings, ReferenceMaskGenerator  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402
from diverseg_hf.scoring.sam_checkpoint import segment_anything_model  # noqa: E402

SHARED_IMAGES = ROOT.parent / "shared" / "data" / "images"
#: name -> (points_per_side, pred_iou, stability, offset, box_nms, mask_threshold)
SETTINGS = {
    "defaults": (12, 0.88, 0.95, 1.0, 0.7, 0.0),
    "knobs_nms0.6": (12, 0.9, 0.9, 0.5, 0.6, 0.25),
    "knobs_nms0.3": (10, 0.92, 0.97, 2.0, 0.3, -0.5),
}


def fidelity_images(n_shapes: int, n_photos: int) -> dict[str, np.ndarray]:
    """Named test images: shapes, shared photos (if present: PNG, and JPEG at quality 30), gray, tiny."""
    images = {f"shapes{i}": im for i, im in enumerate(shape_images(n_shapes, seed=2026))}
    photos = sorted(SHARED_IMAGES.glob("*.png"))[:n_photos] + sorted(SHARED_IMAGES.glob("*_q30.jpg"))[:n_photos]
    for path in photos:
        images[path.name] = decode_rgb(path)
    gray = shape_images(1, seed=7)[0].mean(-1).astype(np.uint8)
    images["gray"] = np.repeat(gray[..., None], 3, -1)
    images["tiny7x9"] = shape_images(1, seed=8, low=7, high=10)[0]
    return images


def measure(n_shapes: int, n_photos: int) -> dict:
    torch.set_num_threads(1)
    sa = import_segment_anything()
    base = SamMaskCounter(TINY_SAM_DEFAULTS)
    sa_model = segment_anything_model(base.model)
    images = fidelity_images(n_shapes, n_photos)
    report: dict = {"model": "tests/fixtures/tiny_sam_defaults", "settings": {}, "images": list(images)}
    for name, (side, iou, stab, offset, nms, mask_t) in SETTINGS.items():
        settings = AmgSettings(side, 64, iou, stab, offset, nms, mask_t)
        fast = SamMaskCounter(base.model, points_per_side=side, pred_iou_thresh=iou, stability_score_thresh=stab,
                              stability_score_offset=offset, box_nms_thresh=nms, mask_threshold=mask_t)
        port = ReferenceMaskGenerator(base.model, settings)
        sa_model.mask_threshold = mask_t
        generator = sa.SamAutomaticMaskGenerator(sa_model, points_per_side=side, points_per_batch=64,
                                                 pred_iou_thresh=iou, stability_score_thresh=stab,
                                                 stability_score_offset=offset, box_nms_thresh=nms,
                                                 crop_n_layers=0, min_mask_region_area=0)
        rows = []
        for key, rgb in images.items():
            flips, diff = decoder_flips(base.model, sa_model, rgb, side, mask_t)
            rows.append({"image": key, "fast": fast.count([rgb])[0], "port": port.count(rgb),
                         "segment_anything": len(generator.generate(rgb)), "flipped_masks": flips,
                         "max_logit_diff": diff})
        report["settings"][name] = {"knobs": settings.__dict__, "rows": rows, "summary": summarise(rows)}
        print(name, json.dumps(report["settings"][name]["summary"]), flush=True)
    return report


def summarise(rows: list[dict]) -> dict:
    return {"images": len(rows), "fast_eq_port": sum(r["fast"] == r["port"] for r in rows),
            "port_eq_segment_anything": sum(r["port"] == r["segment_anything"] for r in rows),
            "images_with_flipped_masks": sum(r["flipped_masks"] > 0 for r in rows),
            "count_diff_without_flips": sum(r["port"] != r["segment_anything"] and not r["flipped_masks"]
                                            for r in rows),
            "masks_total": sum(r["port"] for r in rows), "max_count": max(r["port"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=int, default=20, help="generated shape images")
    parser.add_argument("--photos", type=int, default=4, help="shared photos of each kind (PNG, JPEG)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = measure(args.shapes, args.photos)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

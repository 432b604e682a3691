"""OWLv2 count rules on a tiny random OWLv2: one class per box (ours) vs per-class outputs (detectron2/Detic style).

For each score threshold: mean count per image with one class per box (:class:`ObjectCounter`: each box takes
its best class, class-aware NMS) and with every (box, class) pair above the threshold as an output (what Detic
gives with ``ONE_CLASS_PER_PROPOSAL=False``, class-wise NMS), plus the score quantiles and the retention
threshold for ``>= 18`` objects at 20%. Random weights: the numbers show the rules and the scale problem,
not a trained model's counts.

    python benchmarks/detect_counts.py        # CPU, about a minute
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from diverseg_hf.scoring.detect import ObjectCounter, lvis_categories, threshold_for_retention

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the offline OWLv2 the tests use
from owl_helpers import random_owlv2

from diverseg_hf.scoring.nms import nms_count


def per_class_count(counter: ObjectCounter, rgb: np.ndarray, threshold: float, nms_threshold: float) -> int:
    """Every (box, class) pair with sigmoid(logit) > threshold, class-wise NMS (detectron2's default rule)."""
    queries = counter.text_embeddings()
    pixels = counter.processor.image_processor(images=[rgb], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        fmap = counter.model.image_embedder(pixel_values=pixels)[0]
        feats = fmap.reshape(1, -1, fmap.shape[-1])
        probs = counter.model.class_predictor(feats, queries[None])[0][0].float().sigmoid()  # (boxes, classes)
        cxcywh = counter.model.box_predictor(feats, fmap)[0].float()
    boxes = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], -1)
    box_idx, cls_idx = torch.nonzero(probs > threshold, as_tuple=True)
    return sum(nms_count(boxes[box_idx[cls_idx == c]], probs[box_idx[cls_idx == c], c], nms_threshold)
               for c in cls_idx.unique().tolist())  # class by class: same result, n^2 memory per class


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (int(rng.integers(60, 200)), int(rng.integers(60, 200)), 3), dtype=np.uint8)
              for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 30)]
    with tempfile.TemporaryDirectory() as tmp:
        model, processor = random_owlv2(Path(tmp), 192)
        report = {"boxes_per_image": (192 // 16) ** 2, "vocabulary": len(lvis_categories()), "rows": []}
        scores = ObjectCounter(model, processor=processor, score_threshold=0.0).box_scores(images, floor=0.0)
        allscores = np.concatenate(scores)
        report["best_class_score_quantiles"] = np.quantile(allscores, [0, 0.5, 0.99, 1]).round(4).tolist()
        for t in (0.3, 0.5, 0.6, 0.7):
            counter = ObjectCounter(model, processor=processor, score_threshold=t)
            ours = counter.count(images)
            theirs = [per_class_count(counter, im, t, 0.5) for im in images]
            report["rows"].append({"threshold": t, "one_class_per_box_mean": float(np.mean(ours)),
                                   "per_class_outputs_mean": float(np.mean(theirs))})
        r = threshold_for_retention(scores, 18, 0.2)
        report["retention_20pct_min18"] = {"threshold": r.threshold, "retained": r.retained,
                                           "requested": r.requested, "images": r.images}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Counts at segment-anything's DEFAULT thresholds and at settings that move every knob (tiny_sam_defaults).

The fast counter must equal the straightforward port exactly; segment-anything's own generator must equal
the port on every image where the two decoders (transformers vs segment-anything, same embeddings and
prompts) agree pixel for pixel, i.e. the counts may differ only where a mask pixel flips.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from sam_helpers import TINY_SAM_DEFAULTS, decoder_flips, import_segment_anything, shape_images  # noqa: E402

from diverseg_hf.decode.images import decode_rgb  # noqa: E402
from diverseg_hf.scoring.amg_reference import AmgSettings, ReferenceMaskGenerator  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402
from diverseg_hf.scoring.sam_checkpoint import segment_anything_model  # noqa: E402

# points_per_side, pred_iou, stability, offset, box_nms, mask_threshold, points_per_batch, image_batch, upscale
pytestmark = pytest.mark.usefixtures("one_torch_thread")

DEFAULTS = (8, 0.88, 0.95, 1.0, 0.7, 0.0, 64, 4, 64)
SETTINGS = {
    "defaults": DEFAULTS,
    "knobs_nms0.6": (6, 0.9, 0.9, 0.5, 0.6, 0.25, 7, 2, 5),  # 0.6 and 0.3 round UP in float32
    "knobs_nms0.3": (7, 0.92, 0.97, 2.0, 0.3, -0.5, 13, 3, 1),
}


@pytest.fixture(scope="module")
def model():
    return SamMaskCounter(TINY_SAM_DEFAULTS).model


@pytest.fixture(scope="module")
def images():
    shapes = shape_images(8, seed=15, high=180)
    gray = shapes[0].mean(-1).astype(np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(shapes[1]).save(jpeg, "JPEG", quality=40)
    return [*shapes[2:], np.repeat(gray[..., None], 3, -1), decode_rgb(jpeg.getvalue()),
            shape_images(1, seed=3, low=7, high=12)[0]]


def counter(model, setting) -> SamMaskCounter:
    side, iou, stab, offset, nms, mask_t, per_batch, image_batch, upscale = setting
    return SamMaskCounter(model, points_per_side=side, pred_iou_thresh=iou, stability_score_thresh=stab,
                          stability_score_offset=offset, box_nms_thresh=nms, mask_threshold=mask_t,
                          points_per_batch=per_batch, image_batch_size=image_batch, upscale_batch=upscale)


def port_counts(model, setting, images) -> list[int]:
    side, iou, stab, offset, nms, mask_t = setting[:6]
    ref = ReferenceMaskGenerator(model, AmgSettings(side, 64, iou, stab, offset, nms, mask_t))
    return [ref.count(im) for im in images]


def test_default_thresholds_yield_masks_that_vary(model, images):
    counts = counter(model, DEFAULTS).count(images)
    assert sum(counts) > 0 and len(set(counts)) > 1


@pytest.mark.parametrize("name", SETTINGS)
def test_fast_counter_equals_port(model, images, name):
    setting = SETTINGS[name]
    assert counter(model, setting).count(images) == port_counts(model, setting, images)


@pytest.mark.skipif(importlib.util.find_spec("segment_anything") is None, reason="segment_anything not installed")
@pytest.mark.parametrize("name", SETTINGS)
def test_segment_anything_equals_port_up_to_pixel_flips(model, images, name):
    sa = import_segment_anything()  # torchvision stand-in where absent
    side, iou, stab, offset, nms, mask_t = SETTINGS[name][:6]
    ours = counter(model, SETTINGS[name])
    backend = SamMaskCounter(model, points_per_side=side, pred_iou_thresh=iou, stability_score_thresh=stab,
                             stability_score_offset=offset, box_nms_thresh=nms, mask_threshold=mask_t,
                             backend="segment-anything")
    sam = segment_anything_model(model)  # the same weights in segment-anything's modules
    sam.mask_threshold = mask_t
    generator = sa.SamAutomaticMaskGenerator(sam, points_per_side=side, points_per_batch=64, pred_iou_thresh=iou,
                                             stability_score_thresh=stab, stability_score_offset=offset,
                                             box_nms_thresh=nms, crop_n_layers=0, min_mask_region_area=0)
    fast = ours.count(images)
    theirs = [len(generator.generate(im)) for im in images]
    assert backend.count(images[:2]) == theirs[:2]
    for image, a, b in zip(images, fast, theirs):
        if a != b:
            flips, diff = decoder_flips(model, generator.predictor.model, image, side, mask_t)
            assert flips > 0 and diff < 1e-2, f"count {a} != {b} without a decoder pixel flip"


def test_fixture_is_the_scripted_edit_and_keeps_masks(model):
    import sys

    from sam_helpers import TINY_SAM
    from transformers import SamModel

    sys.path.insert(0, str(TINY_SAM.parent))
    try:
        from make_default_threshold_sam import MASK_GAIN, edit
    finally:
        sys.path.remove(str(TINY_SAM.parent))
    original = SamModel.from_pretrained(TINY_SAM).eval()
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    points = torch.tensor([[[[40.0, 60.0]], [[200.0, 100.0]]]])
    with torch.no_grad():
        before = original(pixel_values=pixels, input_points=points)
        edited = edit(original)
        after = model(pixel_values=pixels, input_points=points)
    ours = model.state_dict()
    assert all(torch.equal(v, ours[k]) for k, v in edited.state_dict().items())  # committed == scripted edit
    assert torch.equal(after.pred_masks, before.pred_masks * MASK_GAIN)  # logits scaled exactly: same masks
    assert torch.equal(after.pred_masks > 0, before.pred_masks > 0)

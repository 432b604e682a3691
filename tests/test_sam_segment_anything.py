"""The reference port and the fast counter against segment-anything's own SamAutomaticMaskGenerator.

Runs when the ``segment_anything`` package is installed (torchvision replaced by a test-only stand-in
when absent). The tiny trained transformers model is mapped onto segment-anything's modules with the
checkpoint key mapping, which this also checks against the real module names.
"""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("segment_anything") is None:
    pytest.skip("segment_anything is not installed", allow_module_level=True)

from sam_helpers import TINY_SAM, import_segment_anything, shape_images  # noqa: E402

from diverseg_hf.scoring.amg_reference import AmgSettings, ReferenceMaskGenerator  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402
from diverseg_hf.scoring.sam_checkpoint import convert_official_state_dict, segment_anything_model  # noqa: E402

SETTINGS = [  # points_per_side, pred_iou, stability, offset, nms
    (8, 0.88, 0.95, 1.0, 0.7),
    (8, 0.5, 0.7, 1.0, 0.7),
    (10, 0.3, 0.5, 0.5, 0.5),
]


@pytest.fixture(scope="module")
def sam_pair():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sa = import_segment_anything()
    counter = SamMaskCounter(TINY_SAM, points_per_side=8)
    yield sa, counter, segment_anything_model(counter.model)
    torch.set_num_threads(threads)


def test_key_mapping_covers_segment_anything_modules(sam_pair):
    _, counter, sa_model = sam_pair
    official = sa_model.state_dict()
    converted = convert_official_state_dict(dict(official))
    ours = counter.model.state_dict()
    assert set(converted) == set(ours)
    assert all(torch.equal(converted[k], ours[k]) for k in ours)


@pytest.mark.parametrize("setting", SETTINGS)
def test_counts_equal_segment_anything_generator(sam_pair, setting):
    sa, counter, sa_model = sam_pair
    side, iou, stab, offset, nms_t = setting
    generator = sa.SamAutomaticMaskGenerator(sa_model, points_per_side=side, points_per_batch=64, pred_iou_thresh=iou,
                                             stability_score_thresh=stab, stability_score_offset=offset,
                                             box_nms_thresh=nms_t, crop_n_layers=0, min_mask_region_area=0)
    ours = SamMaskCounter(counter.model, points_per_side=side, pred_iou_thresh=iou, stability_score_thresh=stab,
                          stability_score_offset=offset, box_nms_thresh=nms_t)
    images = shape_images(5, seed=side + int(iou * 10))
    want = [len(generator.generate(im)) for im in images]
    assert ours.count(images) == want
    backend = SamMaskCounter(counter.model, points_per_side=side, pred_iou_thresh=iou, stability_score_thresh=stab,
                             stability_score_offset=offset, box_nms_thresh=nms_t, backend="segment-anything")
    assert backend.count(images[:2]) == want[:2]
    if iou <= 0.5:
        assert sum(want) > 0


# A threshold of 0 (or below) turns segment-anything's filter off: (pred_iou, stability, mask_threshold).
# (0, 0, 0): the tiny model predicts IoU <= 0 for most masks of some images, which "iou > 0" dropped;
# (-1, 0, 1000): every mask is empty, so every stability score is 0/0 (NaN), which ">= 0" dropped.
FILTERS_OFF = [(0.0, 0.0, 0.0), (-1.0, 0.0, 1000.0), (0.0, 0.95, 0.0)]


@pytest.mark.parametrize("setting", FILTERS_OFF)
def test_zero_thresholds_turn_filters_off_as_in_segment_anything(sam_pair, setting):
    sa, counter, sa_model = sam_pair
    iou, stab, mask_threshold = setting
    sa_model.mask_threshold = mask_threshold
    try:
        generator = sa.SamAutomaticMaskGenerator(sa_model, points_per_side=6, points_per_batch=64,
                                                 pred_iou_thresh=iou, stability_score_thresh=stab,
                                                 crop_n_layers=0, min_mask_region_area=0)
        images = shape_images(4, seed=1)
        want = [len(generator.generate(im)) for im in images]
    finally:
        sa_model.mask_threshold = 0.0
    ours = SamMaskCounter(counter.model, points_per_side=6, pred_iou_thresh=iou, stability_score_thresh=stab,
                          mask_threshold=mask_threshold)
    assert ours.count(images) == want
    reference = ReferenceMaskGenerator(counter.model, AmgSettings(6, 64, iou, stab, 1.0, 0.7, mask_threshold),
                                       counter.pixel_mean, counter.pixel_std)
    assert [reference.count(im) for im in images] == want
    if stab == 0.0:
        assert sum(want) > 4  # the filters that are off must have had masks to drop

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

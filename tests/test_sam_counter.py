"""SamMaskCounter (fast count-only path) == ReferenceMaskGenerator (straightforward port) on the tiny trained SAM."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from sam_helpers import TINY_SAM, shape_images  # noqa: E402

from diverseg_hf.errors import DiversegError  # noqa: E402
from diverseg_hf.scoring import create_scorer  # noqa: E402
from diverseg_hf.scoring.amg_reference import (  # noqa: E402
    AmgSettings,
    ReferenceMaskGenerator,
    image_points,
    masks_to_boxes,
    passes,
    point_grid,
    resized_shape,
    stability_score,
)
from diverseg_hf.scoring.run import run_scorer  # noqa: E402
from diverseg_hf.scoring.sam import SamMaskCounter  # noqa: E402

# (points_per_side, pred_iou, stability, offset, nms, points_per_batch, image_batch, upscale_batch)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = [
    (8, 0.88, 0.95, 1.0, 0.7, 64, 4, 64),
    (8, 0.5, 0.7, 1.0, 0.7, 256, 3, 7),
    (12, 0.3, 0.5, 0.5, 0.5, 1000, 2, 64),
    (6, 0.0, 0.0, 1.0, 0.9, 5, 1, 1),
    (10, 0.45, 0.8, 2.0, 0.3, 33, 5, 16),
]


@pytest.fixture(scope="module")
def tiny():
    return SamMaskCounter(TINY_SAM, points_per_side=8)


def reference_counts(counter: SamMaskCounter, images, settings: AmgSettings) -> list[int]:
    ref = ReferenceMaskGenerator(counter.model, settings, counter.pixel_mean, counter.pixel_std)
    return [ref.count(im) for im in images]


@pytest.mark.parametrize("setting", SETTINGS)
def test_fast_path_equals_reference(tiny, setting):
    side, iou, stab, offset, nms_t, per_batch, image_batch, upscale = setting
    counter = SamMaskCounter(tiny.model, points_per_side=side, points_per_batch=per_batch, pred_iou_thresh=iou,
                             stability_score_thresh=stab, stability_score_offset=offset, box_nms_thresh=nms_t,
                             image_batch_size=image_batch, upscale_batch=upscale)
    images = shape_images(6, seed=side * 7 + per_batch)
    want = reference_counts(counter, images, AmgSettings(side, 64, iou, stab, offset, nms_t))
    assert counter.count(images) == want
    if iou <= 0.6:
        assert sum(want) > 0  # these settings must exercise the filters and the NMS


def test_batch_equals_singles_and_input_kinds(tiny):
    images = shape_images(5, seed=11)
    counter = SamMaskCounter(tiny.model, points_per_side=8, pred_iou_thresh=0.5, stability_score_thresh=0.7,
                             image_batch_size=5)
    batched = counter.count(images)
    assert batched == [counter.count([im])[0] for im in images]
    png = io.BytesIO()
    Image.fromarray(images[0]).save(png, "PNG")
    assert counter.count([Image.fromarray(images[0]), png.getvalue()]) == [batched[0]] * 2


def test_scorer_contract(tiny):
    scorer = create_scorer("sam", model=TINY_SAM, points_per_side=4, pred_iou_thresh=0.5,
                           stability_score_thresh=0.7).to("cpu")
    assert scorer.uses_gpu and scorer.columns == {"sam_masks": "int32"}
    assert scorer.settings()["points_per_side"] == 4 and scorer.settings()["crop_n_layers"] == 0
    good = shape_images(2, seed=5)
    # a failing batch is retried image by image by the engine's one isolating layer
    out = run_scorer(scorer, [good[0], np.zeros((4, 4, 3), np.float32), np.zeros((1, 4000, 3), np.uint8), good[1]], 4)
    assert out["sam_masks"][1] is None and out["error"][1].startswith("unsupported")
    assert out["sam_masks"][2] is None and "too thin" in out["error"][2]
    assert out["sam_masks"][0] == scorer([good[0]])["sam_masks"][0]
    assert out["error"][0] is None and out["error"][3] is None


def test_bfloat16_runs(tiny):
    counter = SamMaskCounter(TINY_SAM, dtype="bfloat16", points_per_side=6, pred_iou_thresh=0.5,
                             stability_score_thresh=0.7)
    counts = counter.count(shape_images(2, seed=1))
    assert all(isinstance(c, int) and c >= 0 for c in counts)


def test_misuse(tmp_path):
    with pytest.raises(DiversegError, match="dtype"):
        SamMaskCounter(TINY_SAM, dtype="float16")
    with pytest.raises(DiversegError, match="not found"):
        SamMaskCounter(tmp_path / "missing.pth")
    with pytest.raises(DiversegError, match="cannot load"):
        SamMaskCounter(tmp_path).load()  # the weights load lazily: a folder without a model fails there


def test_grid_resize_and_points_follow_segment_anything():
    grid = point_grid(4)
    assert grid[:5].tolist() == [[0.125, 0.125], [0.375, 0.125], [0.625, 0.125], [0.875, 0.125], [0.125, 0.375]]
    assert resized_shape(375, 500, 1024) == (768, 1024)
    assert resized_shape(333, 500, 1024) == (682, 1024)  # 681.984 rounds half up
    assert resized_shape(1000, 3, 1024) == (1024, 3)  # 3.072
    pts = image_points(375, 500, 2, 1024)  # grid 0.25/0.75 of 500x375, scaled by 1024/500 and 768/375
    assert np.allclose(pts, [[256, 192], [768, 192], [256, 576], [768, 576]])


def test_boxes_and_stability_against_loops():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 9, 13, generator=gen) * 3
    logits[3] = -5  # empty mask
    masks = logits > 0
    boxes = masks_to_boxes(masks).tolist()
    for m, box in zip(masks.numpy(), boxes):
        ys, xs = np.nonzero(m)
        assert box == ([int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())] if len(xs) else [0, 0, 0, 0])
    got = stability_score(logits, 0.0, 1.0)
    for lg, s in zip(logits.numpy(), got.tolist()):
        union = int((lg > -1.0).sum())
        if union == 0:  # 0/0: NaN, which a ">= t" filter (t > 0) drops, as segment-anything's
            assert s != s
        else:
            assert s == pytest.approx(int((lg > 1.0).sum()) / union, rel=1e-6)


def spy_batches(monkeypatch, model, fail_above: int | None = None):
    """Record prompts per decoder call and images per encoder call; optionally fail large decoder calls."""
    calls = {"decoder": [], "encoder": []}
    decoder, encoder = model.mask_decoder.forward, model.get_image_embeddings

    def decode(*args, **kwargs):
        points = kwargs["sparse_prompt_embeddings"].shape[1]
        if fail_above is not None and points > fail_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        calls["decoder"].append(points)
        return decoder(*args, **kwargs)

    monkeypatch.setattr(model.mask_decoder, "forward", decode)
    monkeypatch.setattr(model, "get_image_embeddings", lambda px: calls["encoder"].append(len(px)) or encoder(px))
    return calls


def test_batch_options_reach_encoder_and_decoder(tiny, monkeypatch):
    scorer = create_scorer("sam", model=tiny.model, points_per_side=5, points_per_batch=7, batch_size=3,
                           pred_iou_thresh=0.5, stability_score_thresh=0.7)
    assert scorer.default_batch_size == 3
    settings = scorer.settings()
    assert (settings["points_per_batch"], settings["image_batch_size"], settings["batch_size"]) == (7, 3, 3)
    images = shape_images(4, seed=21)
    want = scorer(images)["sam_masks"]
    calls = spy_batches(monkeypatch, tiny.model)
    assert scorer(images)["sam_masks"] == want
    assert calls["decoder"] == [7, 7, 7, 4] * 4 and calls["encoder"] == [3, 1]
    distinct = create_scorer("sam", model=tiny.model, points_per_side=4, batch_size=8, image_batch_size=2)
    assert distinct.settings()["image_batch_size"] == 2 and distinct.default_batch_size == 8


def test_out_of_memory_halves_counter_batches(tiny, monkeypatch):
    scorer = create_scorer("sam", model=tiny.model, points_per_side=4, points_per_batch=16, batch_size=4,
                           pred_iou_thresh=0.5, stability_score_thresh=0.7)
    images = shape_images(3, seed=22)
    want = scorer(images)["sam_masks"]
    calls = spy_batches(monkeypatch, tiny.model, fail_above=3)
    # the engine's one out-of-memory layer halves the counter's batches: 16 -> 8 -> 4 -> 2 prompts per call
    assert run_scorer(scorer, images, 4) == {"sam_masks": want, "error": [None] * 3}
    assert set(calls["decoder"]) == {2} and scorer.counter.settings.points_per_batch == 2
    calls = spy_batches(monkeypatch, tiny.model, fail_above=0)
    out = run_scorer(scorer, images, 4)  # all batches at 1, then one image per call: recorded, never raised
    assert out["sam_masks"] == [None] * 3 and all(e.startswith("oom: sam: RuntimeError") for e in out["error"])
    assert scorer.counter.describe()["points_per_batch"] == 1 and scorer.counter.image_batch_size == 1


def test_filter_rule_off_at_zero_and_below():
    values = torch.tensor([-0.5, 0.0, 0.3, 0.88, float("nan")])
    assert passes(values, 0.0).tolist() == [True] * 5  # segment-anything skips a filter whose threshold is 0
    assert passes(values, -1.0, inclusive=True).tolist() == [True] * 5
    assert passes(values, 0.3).tolist() == [False, False, False, True, False]
    assert passes(values, 0.3, inclusive=True).tolist() == [False, False, True, True, False]


def test_zero_stability_threshold_keeps_empty_masks(tiny):
    # mask_threshold 1000: every mask is empty and its stability 0/0; with the filters off the generator
    # keeps all 3 masks per point (empty boxes never overlap in the NMS)
    images = shape_images(2, seed=3)
    off = AmgSettings(4, 64, -1.0, 0.0, 1.0, 0.7, 1000.0)
    assert reference_counts(tiny, images, off) == [48, 48]
    counter = SamMaskCounter(tiny.model, points_per_side=4, pred_iou_thresh=-1.0, stability_score_thresh=0.0,
                             mask_threshold=1000.0)
    assert counter.count(images) == [48, 48]

"""diverseg_hf.scoring.nms against a loop with torchvision's CPU kernel semantics (float32 IoU, double threshold)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from sam_helpers import torchvision_nms_loop  # noqa: E402

from diverseg_hf.scoring.nms import box_iou, nms, threshold_below  # noqa: E402


def random_boxes(gen: torch.Generator, n: int, grid: int) -> torch.Tensor:
    """Integer-valued boxes (exact in float32) on a small grid: many overlaps, ties and zero areas."""
    xy = torch.randint(0, grid, (n, 2), generator=gen)
    wh = torch.randint(0, grid // 2, (n, 2), generator=gen) * (torch.rand(n, 1, generator=gen) > 0.15)
    return torch.cat([xy, xy + wh], 1).float()


@pytest.mark.parametrize("seed", range(40))
def test_matches_torchvision_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 120, (1,), generator=gen))
    boxes = random_boxes(gen, n, grid=int(torch.randint(4, 40, (1,), generator=gen)))
    scores = torch.randint(0, 8, (n,), generator=gen).float() / 8  # many ties
    thr = [0.0, 0.3, 0.5, 0.7, 0.99][seed % 5]
    classes = torch.randint(0, 3, (n,), generator=gen) if seed % 2 else None
    got = nms(boxes, scores, thr, classes).tolist()
    assert got == torchvision_nms_loop(boxes, scores.tolist(), thr, None if classes is None else classes.tolist())


@pytest.mark.parametrize("seed", range(30))
def test_thresholds_landing_on_pair_ious(seed):
    """Thresholds equal (as doubles) to the exact rational IoU of some pair: the float32 IoU lands on either side."""
    gen = torch.Generator().manual_seed(1000 + seed)
    n = int(torch.randint(2, 60, (1,), generator=gen))
    boxes = random_boxes(gen, n, grid=int(torch.randint(6, 60, (1,), generator=gen)))
    scores = torch.rand(n, generator=gen)
    b = boxes.double()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.minimum(b[:, None, 2:], b[None, :, 2:]) - torch.maximum(b[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    exact = (inter / (area[:, None] + area[None] - inter)).flatten()
    exact = exact[(exact > 0) & (exact < 1)]
    for thr in exact[torch.randperm(len(exact), generator=gen)[:8]].tolist():
        assert nms(boxes, scores, thr).tolist() == torchvision_nms_loop(boxes, scores.tolist(), thr)


@pytest.mark.parametrize(("pair", "thr", "rounds"), [
    ([[135, 0, 164, 23], [140, 0, 175, 23]], 0.6, "up"),  # 552 / 920
    ([[0, 0, 4, 1], [1, 0, 10, 1]], 0.3, "up"),  # 3 / 10
    ([[0, 0, 8, 1], [1, 0, 10, 1]], 0.7, "down"),  # 7 / 10
])
def test_exact_threshold_pairs(pair, thr, rounds):
    boxes, scores = torch.tensor(pair, dtype=torch.float32), torch.tensor([0.9, 0.8])
    iou32 = box_iou(boxes)[0, 1].item()
    assert iou32 == float(np.float32(thr)) and (iou32 > thr) == (rounds == "up")
    want = [0] if rounds == "up" else [0, 1]  # suppressed iff the float32 IoU exceeds the double threshold
    assert nms(boxes, scores, thr).tolist() == want == torchvision_nms_loop(pair, [0.9, 0.8], thr)
    assert nms(boxes.double(), scores, thr).tolist() == [0, 1]  # float64 boxes: IoU exactly thr, not above
    assert nms(boxes.long(), scores, thr).tolist() == want  # integer boxes are computed in float32
    assert nms(boxes, scores, thr, torch.tensor([0, 1])).tolist() == [0, 1]  # different classes never compete


@given(st.floats(width=32, allow_nan=False), st.floats(allow_nan=False, min_value=-1e30, max_value=1e30))
def test_threshold_below_equivalence(x, t):
    below = threshold_below(t, torch.float32)
    assert float(np.float32(below)) == below <= t
    assert (x > t) == bool(torch.tensor(x, dtype=torch.float32) > below)


def test_threshold_is_strict_and_nan_never_suppresses():
    boxes = torch.tensor([[0.0, 0, 2, 1], [1, 0, 3, 1], [5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    iou = box_iou(boxes)
    assert iou[0, 1].item() == pytest.approx(1 / 3)
    assert math.isnan(iou[2, 3].item())
    assert nms(boxes, scores, float(np.float32(1 / 3))).tolist() == [0, 1, 2, 3, 4]  # strict; zero areas kept
    assert nms(boxes, scores, 1 / 3).tolist() == [0, 2, 3, 4]  # float32(1/3) = 0.33333334 > 1/3
    assert nms(boxes, scores, 0.3).tolist() == [0, 2, 3, 4]


def test_empty_and_bad_shapes():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="nms needs"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="float32 or float64"):
        threshold_below(0.5, torch.float16)

"""diverseg_hf.scoring.nms against a straightforward Python greedy loop with torchvision's rules."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from diverseg_hf.scoring.nms import box_iou, nms  # noqa: E402


def loop_nms(boxes: list[list[float]], scores: list[float], thr: float, classes=None) -> list[int]:
    """Greedy NMS, one box at a time, in float64 Python arithmetic except for the IoU's float32 ops."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    kept: list[int] = []
    for i in order:
        suppressed = False
        for j in kept:
            if classes is not None and classes[i] != classes[j]:
                continue
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            iou = inter / union if union else math.nan
            if iou > thr:  # NaN compares False: never suppresses
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept


def random_boxes(gen: torch.Generator, n: int, grid: int) -> torch.Tensor:
    """Integer-valued boxes (exact in float32) on a small grid: many overlaps, ties and zero areas."""
    xy = torch.randint(0, grid, (n, 2), generator=gen)
    wh = torch.randint(0, grid // 2, (n, 2), generator=gen) * (torch.rand(n, 1, generator=gen) > 0.15)
    return torch.cat([xy, xy + wh], 1).float()


@pytest.mark.parametrize("seed", range(40))
def test_matches_python_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 120, (1,), generator=gen))
    boxes = random_boxes(gen, n, grid=int(torch.randint(4, 40, (1,), generator=gen)))
    scores = torch.randint(0, 8, (n,), generator=gen).float() / 8  # many ties
    thr = [0.0, 0.3, 0.5, 0.7, 0.99][seed % 5]
    classes = torch.randint(0, 3, (n,), generator=gen) if seed % 2 else None
    got = nms(boxes, scores, thr, classes).tolist()
    want = loop_nms(boxes.tolist(), scores.tolist(), thr, None if classes is None else classes.tolist())
    assert got == want


def test_threshold_is_strict_and_nan_never_suppresses():
    boxes = torch.tensor([[0.0, 0, 2, 1], [1, 0, 3, 1], [5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 9]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    iou = box_iou(boxes)
    assert iou[0, 1].item() == pytest.approx(1 / 3)
    assert math.isnan(iou[2, 3].item())
    assert nms(boxes, scores, 1 / 3).tolist() == [0, 1, 2, 3, 4]  # 1/3 > 1/3 is false; zero areas kept
    assert nms(boxes, scores, 0.3).tolist() == [0, 2, 3, 4]


def test_empty_and_bad_shapes():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError, match="nms needs"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)

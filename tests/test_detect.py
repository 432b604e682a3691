"""ObjectCounter / DetectScorer on a tiny random OWLv2 with a tiny character-level CLIP tokenizer (offline)."""

from __future__ import annotations

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from owl_helpers import random_owlv2  # noqa: E402

from diverseg_hf.errors import DiversegError  # noqa: E402
from diverseg_hf.scoring import create_scorer  # noqa: E402
from diverseg_hf.scoring.detect import (  # noqa: E402
    ObjectCounter,
    lvis_categories,
    query_text,
    threshold_for_retention,
)
from diverseg_hf.scoring.run import run_scorer  # noqa: E402

VOCAB = ["cat", "dog", "baseball_bat", "car_(automobile)", "monitor_(computer_equipment) computer_monitor"]


@pytest.fixture(scope="module")
def tiny_owl(tmp_path_factory):
    # The counts tests compare against transformers' standard path, whose scores differ in the last bits:
    # this model (its vocabulary fixes its weights) has no near-tie that such bits flip.
    return random_owlv2(tmp_path_factory.mktemp("owl"), image_size=96, characters=string.ascii_lowercase + "()-'")


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), dtype=np.uint8)
            for _ in range(n)]


def reference_count(model, processor, rgb, threshold, nms_threshold, template="a photo of a {}") -> int:
    """transformers' standard path (full forward + post_process_object_detection) + per-class greedy loop NMS."""
    inputs = processor(text=[[query_text(v, template) for v in VOCAB]], images=[rgb], return_tensors="pt",
                       padding="max_length", truncation=True, max_length=16)
    with torch.no_grad():
        out = model(**inputs)
    det = processor.image_processor.post_process_object_detection(out, threshold=threshold)[0]
    boxes, scores, labels = det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        ok = True
        for j in kept:
            if labels[i] != labels[j]:
                continue
            a, b = boxes[i], boxes[j]
            inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union and inter / union > nms_threshold:
                ok = False
                break
        if ok:
            kept.append(i)
    return len(kept)


def test_lvis_vocabulary():
    names = lvis_categories()
    assert len(names) == 1203 == len(set(names))
    assert names[0] == "aerosol_can" and names[-1] == "zucchini"


@pytest.mark.parametrize(("threshold", "nms_threshold"), [(0.0, 0.5), (0.3, 0.3), (0.45, 0.7), (0.5, 0.5)])
def test_counts_match_transformers_standard_path(tiny_owl, threshold, nms_threshold):
    model, processor = tiny_owl
    counter = ObjectCounter(model, vocabulary=VOCAB, processor=processor, score_threshold=threshold,
                            nms_threshold=nms_threshold, batch_size=3)
    ims = images(5, seed=int(threshold * 100))
    want = [reference_count(model, processor, im, threshold, nms_threshold) for im in ims]
    assert counter.count(ims) == want
    assert sum(want) > 0 or threshold >= 0.45  # the low thresholds must exercise non-empty NMS


def test_text_embeddings_cached_and_batch_equals_singles(tiny_owl, monkeypatch):
    model, processor = tiny_owl
    counter = ObjectCounter(model, vocabulary=[*VOCAB, "zebra"], processor=processor, score_threshold=0.2,
                            batch_size=4)
    calls = []
    original = model.owlv2.text_model.forward
    monkeypatch.setattr(model.owlv2.text_model, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    ims = images(6, seed=3)
    batched = counter.count(ims)
    singles = [counter.count([im])[0] for im in ims]
    assert batched == singles
    assert len(calls) == 1


def test_scorer_records_bad_images(tiny_owl):
    model, processor = tiny_owl
    scorer = create_scorer("detect", model=model, vocabulary=VOCAB, processor=processor, score_threshold=0.1)
    good = images(2, seed=4)
    out = run_scorer(scorer, [good[0], np.zeros((5, 5, 3), np.float32), good[1]], 3)  # the engine's isolation
    assert out["det_objects"][1] is None and out["error"][1].startswith("unsupported")
    assert out["det_objects"][0] == scorer([good[0]])["det_objects"][0]
    assert out["error"][0] is None and out["error"][2] is None
    assert scorer.settings()["vocabulary_size"] == len(VOCAB)


def brute_force_retention(scores, min_objects, retention):
    """Every threshold that can matter (each sample score, and just below the lowest), counted image by image."""
    pool = np.concatenate([np.asarray(s, np.float32) for s in scores] + [np.zeros(0, np.float32)])
    candidates = [float(v) for v in np.unique(pool)]
    if len(pool):
        candidates.append(float(np.nextafter(pool.min(), np.float32(-np.inf))))
    requested = int(np.floor(retention * len(scores) + 0.5))
    reach = {t: sum(int(np.sum(np.asarray(s, np.float32) > t)) >= min_objects for s in scores) for t in candidates}
    return requested, reach


score_sets = st.lists(st.lists(st.sampled_from([0.0625 * k for k in range(1, 16)]) | st.floats(0.015625, 1, width=32),
                               max_size=12), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(score_sets, st.integers(1, 5), st.floats(0.01, 0.99))
def test_threshold_for_retention_is_exact_against_brute_force(raw, min_objects, retention):
    scores = [np.array(s, np.float32) for s in raw]
    r = threshold_for_retention(scores, min_objects, retention)
    requested, reach = brute_force_retention(scores, min_objects, retention)
    got = sum(int(np.sum(s > r.threshold)) >= min_objects for s in scores)
    assert r.requested == requested and r.images == len(scores) and r.retained == got
    if reach:
        best = min(abs(v - requested) for v in reach.values())
        assert abs(got - requested) == best  # no threshold does better
        assert got == max(v for v in reach.values() if abs(v - requested) == best)  # the larger on a tie
    assert r.exact == (requested in reach.values() or (requested == 0 and got == 0))
    assert (r.tied_images > 0) == (not r.exact and any(v > requested for v in reach.values()))


def test_threshold_for_retention_on_a_large_sample_and_misuse(tiny_owl):
    rng = np.random.default_rng(0)
    scores = [rng.uniform(0, 1, int(rng.integers(0, 40))).astype(np.float32) for _ in range(200)]
    r = threshold_for_retention(scores, 18, 0.25)
    assert r.exact and r.retained == 50 == sum(int(np.sum(s > r.threshold)) >= 18 for s in scores)
    with pytest.raises(DiversegError, match="retention"):
        threshold_for_retention(scores, 18, 1.5)
    with pytest.raises(DiversegError, match="min_objects"):
        threshold_for_retention(scores, 0, 0.5)
    with pytest.raises(DiversegError, match="processor"):
        ObjectCounter(tiny_owl[0], vocabulary=VOCAB)


def test_batch_size_reaches_the_detector_and_halves_on_out_of_memory(tiny_owl, monkeypatch):
    model, processor = tiny_owl
    scorer = create_scorer("detect", model=model, vocabulary=VOCAB, processor=processor, score_threshold=0.2,
                           batch_size=4)
    assert scorer.default_batch_size == 4 and scorer.settings()["batch_size"] == 4
    ims = images(5, seed=9)
    want = scorer(ims)
    calls, embedder = [], model.image_embedder

    def embed(pixel_values):
        if len(pixel_values) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 1.00 GiB")
        calls.append(len(pixel_values))
        return embedder(pixel_values=pixel_values)

    monkeypatch.setattr(model, "image_embedder", embed)
    assert run_scorer(scorer, ims, 5) == want  # the engine's one out-of-memory layer halves the detector's batch
    assert calls == [2, 2, 1] and scorer.counter.batch_size == 2

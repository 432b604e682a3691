"""``scorer_map("sam", ...)`` with the tiny SAM test model equals ``diverseg score --scorers sam`` row for row."""

from __future__ import annotations

import pytest
from sam_helpers import TINY_SAM, shape_images
from shared_data import encode

datasets = pytest.importorskip("datasets")
pytest.importorskip("torch")
pytest.importorskip("transformers")

import diverseg_hf  # noqa: E402
from diverseg_hf.storage.score_table import ScoreTable  # noqa: E402

OPTIONS = {"model": str(TINY_SAM), "points_per_side": 4, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}


def test_sam_map_equals_the_score_table(tmp_path, one_torch_thread):
    images = {f"s{i}": encode(rgb, "PNG") for i, rgb in enumerate(shape_images(4, seed=3))}
    images["bad"] = b"\x89PNG broken"
    features = datasets.Features({"key": datasets.Value("string"), "image": datasets.Image(decode=False)})
    cells = [{"bytes": b, "path": None} for b in images.values()]
    ds = datasets.Dataset.from_dict({"key": list(images), "image": cells}, features=features)
    ds.to_parquet(str(tmp_path / "src.parquet"))
    # the verb `diverseg score --scorers sam` calls (the CLI has no --points-per-side, which keeps this test short)
    diverseg_hf.score(str(tmp_path / "src.parquet"), tmp_path / "scores", ["sam"], {"sam": OPTIONS},
                      device="cpu", batch_size=2, progress=False)
    table = {r["key"]: r for r in ScoreTable.open(tmp_path / "scores").read().to_pylist()}
    out = ds.map(diverseg_hf.scorer_map("sam", device="cpu", **OPTIONS), batched=True, batch_size=3)
    assert out.features["sam_masks"] == datasets.Value("int32")
    for row in out.remove_columns("image"):
        expected = table[row["key"]]
        if expected["sam_masks"] is None:
            assert row["sam_masks"] == -1 and row["sam_error"].split(":")[0] == expected["error"].split(":")[0]
        else:
            assert (row["sam_masks"], row["sam_error"]) == (expected["sam_masks"], expected["error"] or "")
    assert sum(r["sam_masks"] > 0 for r in table.values() if r["sam_masks"] is not None) >= 1

"""Phase 2: selection rules on the score table match a row-by-row reference."""

from __future__ import annotations

import json
import math
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from image_zoo import textured
from pipeline_helpers import synthetic_scores
from shared_data import DF2K_BASIS, encode

from diverseg_hf.errors import DiversegError
from diverseg_hf.score import score
from diverseg_hf.scoring.base import Scorer
from diverseg_hf.select import select
from diverseg_hf.storage import ScoreTable, load_selection

BASIS = DF2K_BASIS


def reference(rows, max_blockiness=None, thetas=None):
    """Row-by-row: no error, no NaN/None in used columns, within every rule."""
    thetas = thetas or {}
    used = (["blockiness"] if max_blockiness is not None else []) + list(thetas)
    kept = []
    for row in rows:
        if row["error"] is not None:
            continue
        if any(row[c] is None or (isinstance(row[c], float) and math.isnan(row[c])) for c in used):
            continue
        if max_blockiness is not None and not row["blockiness"] <= max_blockiness:
            continue
        if any(not row[c] >= t for c, t in thetas.items()):
            continue
        kept.append(row["key"])
    return kept


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    out = tmp_path_factory.mktemp("sel") / "scores"
    synthetic_scores(out, 3000, seed=7)
    return out


@pytest.mark.parametrize(("max_b", "thetas"), [(None, {}), (10.0, {}), (25.0, {"sam_masks": 85}),
                                               (None, {"sam_masks": 70}), (0.0, {})])
def test_rules_match_reference(scores, tmp_path, max_b, thetas):
    rows = ScoreTable.open(scores).read().to_pylist()
    result = select(scores, tmp_path / "sel", max_blockiness=max_b, thetas=thetas)
    table, info = load_selection(tmp_path / "sel")
    expected = reference(rows, max_b, thetas)
    assert table.column("key").to_pylist() == expected
    assert result.kept == len(expected) == info["counts"]["kept"]
    assert sum(info["counts"]["dropped"].values()) + result.kept == len(rows)
    assert info["counts"]["dropped"]["error"] == sum(r["error"] is not None for r in rows)
    assert "error" not in table.column_names
    assert info["source"]["kind"] == "folder" and info["thetas"] == thetas


def test_keep_fraction_picks_theta_with_ties(scores, tmp_path):
    rows = ScoreTable.open(scores).read().to_pylist()
    result = select(scores, tmp_path / "sel", keep=0.2, by="sam_masks")
    eligible = sorted((r["sam_masks"] for r in rows if r["error"] is None and r["sam_masks"] is not None),
                      reverse=True)
    k = math.ceil(0.2 * len(rows))
    theta = eligible[k - 1]
    assert result.thetas == {"sam_masks": theta}
    expected = reference(rows, thetas={"sam_masks": theta})
    table, info = load_selection(tmp_path / "sel")
    assert table.column("key").to_pylist() == expected
    assert result.kept >= k  # ties at theta are all kept
    assert result.kept > k  # Poisson counts: this cut lands inside a run of ties
    assert info["counts"]["kept_fraction"] == pytest.approx(result.kept / len(rows))
    assert info["rules"]["keep"] == 0.2


def test_keep_everything_when_fraction_exceeds_eligible(scores, tmp_path):
    result = select(scores, tmp_path / "sel", keep=1.0, by="sam_masks")
    rows = ScoreTable.open(scores).read().to_pylist()
    assert result.kept == len(reference(rows, thetas={"sam_masks": -1}))


def test_misuse_is_reported(scores, tmp_path):
    with pytest.raises(DiversegError, match="no column 'det_objects'"):
        select(scores, tmp_path / "s", thetas={"det_objects": 18})
    with pytest.raises(DiversegError, match="either a theta or --keep"):
        select(scores, tmp_path / "s", thetas={"sam_masks": 1}, keep=0.5, by="sam_masks")
    with pytest.raises(DiversegError, match=r"keep must be in \(0, 1\]"):
        select(scores, tmp_path / "s", keep=1.5, by="sam_masks")
    with pytest.raises(DiversegError, match="by is only used with keep"):
        select(scores, tmp_path / "s", by="sam_masks")
    with pytest.raises(DiversegError, match="not a score table"):
        select(tmp_path / "nothing", tmp_path / "s")
    assert not (tmp_path / "s" / "selection.json").exists()


def test_incomplete_score_table_is_refused(tmp_path):
    synthetic_scores(tmp_path / "scores", 30)
    (tmp_path / "scores" / "units" / "u-00002.parquet").unlink()
    with pytest.raises(DiversegError, match="incomplete"):
        select(tmp_path / "scores", tmp_path / "sel")


@pytest.mark.skipif(not BASIS.is_dir(), reason="../shared/data/df2k_basis is absent")
def test_quality_gate(tmp_path):
    from diverseg_hf.quality.basis import load_basis

    synthetic_scores(tmp_path / "scores", 400, seed=3, with_masks=False)
    # replace the blockiness of the good rows with a sample of the q75 basis: a compressed-looking source
    store = ScoreTable.open(tmp_path / "scores")
    q75 = load_basis(BASIS)[75]
    for unit in store.units:
        path = store.unit_path(unit["id"])
        table = pq.read_table(path)
        values = np.random.default_rng(1).choice(q75, table.num_rows)
        keep_nan = np.isnan(table.column("blockiness").to_numpy(zero_copy_only=False))
        values[keep_nan] = np.nan
        table = table.set_column(table.schema.get_field_index("blockiness"), "blockiness",
                                 pa.array(values))
        pq.write_table(table, path)
    with pytest.raises(DiversegError, match=r"below --min-quality 0\.9"):
        select(tmp_path / "scores", tmp_path / "sel", min_quality=0.9, basis=str(BASIS))
    assert not (tmp_path / "sel" / "selection.json").exists()
    result = select(tmp_path / "scores", tmp_path / "sel", min_quality=0.9, basis=str(BASIS),
                    on_low_quality="warn")
    info = json.loads((tmp_path / "sel" / "selection.json").read_text())
    assert 0.6 < result.quality["quality"] < 0.9
    assert info["quality"]["passed"] is False and info["quality"]["min_quality"] == 0.9
    ok = select(tmp_path / "scores", tmp_path / "sel2", min_quality=0.5, basis=str(BASIS))
    assert ok.quality["passed"] is True


def test_keep_by_a_lower_is_better_column_keeps_the_lowest(scores, tmp_path):
    """--keep F --by blockiness keeps the least blocky fraction; a theta on it is a ceiling."""
    rows = ScoreTable.open(scores).read().to_pylist()
    result = select(scores, tmp_path / "sel", keep=0.25, by="blockiness")
    ok = sorted(r["blockiness"] for r in rows if r["error"] is None and not math.isnan(r["blockiness"]))
    k = math.ceil(0.25 * len(rows))
    theta = ok[k - 1]
    assert result.thetas == {"blockiness": theta}
    table, info = load_selection(tmp_path / "sel")
    assert table.column("key").to_pylist() == reference(rows, max_blockiness=theta)
    assert max(table.column("blockiness").to_pylist()) == theta <= np.median(ok)
    assert info["keep"]["better"] == "lower" and info["keep"]["kept_rows"] == result.kept == k
    same = select(scores, tmp_path / "sel2", thetas={"blockiness": theta})
    assert load_selection(tmp_path / "sel2")[0].column("key").to_pylist() == table.column("key").to_pylist()
    assert same.dropped["max_blockiness"] == len(ok) - k  # a theta on blockiness is --max-blockiness
    counts = select(scores, tmp_path / "sel3", keep=0.25, by="sam_masks")
    kept = load_selection(tmp_path / "sel3")[0].column("sam_masks").to_pylist()
    assert min(kept) == counts.thetas["sam_masks"]  # counts: the highest are kept


def test_keys_the_table_repeats_are_all_dropped(tmp_path):
    synthetic_scores(tmp_path / "scores", 60, units=2)
    store = ScoreTable.open(tmp_path / "scores")
    path = store.unit_path(store.units[1]["id"])
    unit = pq.read_table(path)
    keys = unit.column("key").to_pylist()
    keys[:3] = ["k0000000", "k0000001", keys[5]]  # two keys of the first unit, one repeated within this one
    pq.write_table(unit.set_column(0, "key", pa.array(keys)), path)
    rows = ScoreTable.open(tmp_path / "scores").read().to_pylist()
    repeated = {k for k in (r["key"] for r in rows) if sum(r2["key"] == k for r2 in rows) > 1}
    result = select(tmp_path / "scores", tmp_path / "sel")
    kept = load_selection(tmp_path / "sel")[0].column("key").to_pylist()
    assert len(set(kept)) == len(kept) and not repeated & set(kept)
    assert result.dropped["duplicate_key"] == sum(r["key"] in repeated and r["error"] is None for r in rows) > 0
    clean = synthetic_scores(tmp_path / "clean", 60, units=2) or select(tmp_path / "clean", tmp_path / "sel2")
    assert "duplicate_key" not in clean.dropped  # the rule shows only where it dropped something


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_thresholds_are_refused(scores, tmp_path, bad):
    for kwargs in ({"max_blockiness": bad}, {"thetas": {"sam_masks": bad}}, {"min_quality": bad}):
        with pytest.raises(DiversegError, match="finite number"):
            select(scores, tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


class BrightnessScorer(Scorer):
    """A custom scorer whose column is better lower (a stand-in for e.g. a noise estimate)."""

    name: ClassVar[str] = "test_brightness"
    columns: ClassVar[dict[str, str]] = {"brightness": "float64"}
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"brightness"})

    def __call__(self, images):
        return {"brightness": [float(im.mean()) for im in images], "error": [None] * len(images)}


def test_a_scorers_declared_direction_reaches_select(tmp_path, monkeypatch, register_scorer):
    """score() records lower_is_better from the scorer class; --keep/--theta follow it (and blockiness's)."""
    register_scorer("test_brightness", "test_select:BrightnessScorer")
    photos = tmp_path / "photos"
    photos.mkdir()
    means = []
    for i in range(8):  # textured (blockiness defined), each brighter than the last
        rgb = (textured(48, 48, i) // 8 + 30 * i).astype(np.uint8)
        means.append(float(rgb.mean()))
        (photos / f"{i}.png").write_bytes(encode(rgb))
    score(str(photos), tmp_path / "scores", scorers=["test_brightness", "blockiness"])
    header = ScoreTable.open(tmp_path / "scores").header
    assert [s["lower_is_better"] for s in header["scorers"]] == [["brightness"], ["blockiness"]]
    result = select(tmp_path / "scores", tmp_path / "sel", keep=0.25, by="brightness")
    table, info = load_selection(tmp_path / "sel")
    assert sorted(table.column("brightness").to_pylist()) == means[:2] and result.thetas == {"brightness": means[1]}
    assert info["keep"]["better"] == "lower"
    select(tmp_path / "scores", tmp_path / "sel2", thetas={"brightness": means[2]})
    assert sorted(load_selection(tmp_path / "sel2")[0].column("brightness").to_pylist()) == means[:3]

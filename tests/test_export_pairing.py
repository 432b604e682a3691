"""Every HR/LR pair of a ``diverseg export`` passes BasicSR's own pairing rules, for odd sizes and every format.

BasicSR's ``PairedImageDataset`` finds pairs three ways (``basicsr/data/data_util.py``), re-spelled here
without importing basicsr:

* ``paired_paths_from_folder``: lists both folders (same number of files), and for each GT file
  ``<base><ext>`` expects the LQ file ``filename_tmpl.format(base) + ext`` (the GT's extension);
* ``paired_paths_from_meta_info_file``: the same, the GT names taken from the first field of each line;
* ``paired_paths_from_lmdb``: the keys of both LMDBs' ``meta_info.txt`` (each line up to its first
  ``.``) must be the same set.

Each pair is then read as BasicSR reads it (``cv2.imdecode(..., IMREAD_COLOR)``) and must pass
``paired_random_crop``'s check, whose failure is BasicSR's ``Scale mismatches`` error:
``h_gt == scale * h_lq and w_gt == scale * w_lq``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from image_zoo import textured
from PIL import Image
from sr_folder import encode, write_published_folder

from diverseg_hf.errors import DiversegError
from diverseg_hf.sr.export import export_basicsr

cv2 = pytest.importorskip("cv2")

SCALES = (2, 3, 4)  # least common multiple 12: no side below is a multiple of it


def _exif_rotated_jpeg(height: int, width: int, seed: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` with EXIF orientation 6 (decoded turned: ``height`` x ``width``)."""
    import io

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(textured(height, width, seed)).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def _records() -> list[tuple[str, bytes, str]]:
    """PNG, JPEG, gray PNG and EXIF-turned JPEG images whose sides are not multiples of any scale pattern."""
    return [
        ("png_odd", encode(textured(37, 50, seed=1)), "png"),
        ("jpeg_odd", encode(textured(61, 45, seed=2), "JPEG"), "jpg"),
        ("gray_odd", encode(textured(29, 35, seed=3)[..., 0]), "png"),
        ("turned", _exif_rotated_jpeg(43, 26, seed=4), "jpg"),
        ("prime", encode(textured(53, 59, seed=5)), "png"),
        ("exact", encode(textured(36, 48, seed=6)), "png"),  # already a multiple of 12: nothing cropped
    ]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return write_published_folder(tmp_path_factory.mktemp("pub"), _records(), shards=2)


@pytest.fixture(scope="module")
def export(published, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "sub"
    report = export_basicsr(published, "I", out, SCALES, subimages=(24, 12))
    assert report.images == 6 and not report.skipped
    return out


@pytest.fixture(scope="module")
def lmdb_exports(published, tmp_path_factory):
    """Two exports with LMDBs: whole images, and sub-images (an export writes one kind or the other)."""
    pytest.importorskip("lmdb")
    out = tmp_path_factory.mktemp("lmdb")
    export_basicsr(published, "I", out / "whole", SCALES, lmdb=True)
    export_basicsr(published, "I", out / "sub", SCALES, subimages=(24, 12), lmdb=True)
    return out


def imread(data: bytes) -> np.ndarray:
    """BasicSR's ``imfrombytes(content, float32=False)``: OpenCV's colour decode."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def check_scale(gt: np.ndarray, lq: np.ndarray, scale: int, where: str) -> None:
    """``paired_random_crop``'s check (its ``Scale mismatches`` error)."""
    (h_gt, w_gt), (h_lq, w_lq) = gt.shape[:2], lq.shape[:2]
    assert h_gt == scale * h_lq and w_gt == scale * w_lq, f"Scale mismatches: {where} GT {gt.shape} LQ {lq.shape}"


def pairs_from_folder(gt_folder: Path, lq_folder: Path, tmpl: str, meta_info: Path | None = None):
    """(GT path, LQ path) as ``paired_paths_from_folder`` / ``paired_paths_from_meta_info_file`` build them."""
    lq_names = sorted(os.listdir(lq_folder))
    if meta_info is None:
        gt_names = sorted(os.listdir(gt_folder))
        assert len(gt_names) == len(lq_names), f"{gt_folder} and {lq_folder} have different numbers of images"
    else:
        gt_names = [line.strip().split(" ")[0] for line in meta_info.read_text().splitlines()]
    for gt_name in gt_names:
        base, ext = os.path.splitext(os.path.basename(gt_name))
        lq_name = f"{tmpl.format(base)}{ext}"
        assert lq_name in lq_names, f"{lq_name} is not in {lq_folder}"
        yield gt_folder / gt_name, lq_folder / lq_name


def lmdb_pairs(gt_lmdb: Path, lq_lmdb: Path):
    """(key, GT bytes, LQ bytes, GT meta shape) as ``paired_paths_from_lmdb`` and the LMDB backend read them."""
    import lmdb

    def keys(folder: Path) -> dict[str, tuple[int, ...]]:
        lines = (folder / "meta_info.txt").read_text().splitlines()
        return {line.split(".")[0]: tuple(int(v) for v in line.split(" ")[1].strip("()").split(",")) for line in lines}

    gt_keys, lq_keys = keys(gt_lmdb), keys(lq_lmdb)
    assert set(gt_keys) == set(lq_keys), "Keys in lq_folder and gt_folder are different."
    gt_env, lq_env = (lmdb.open(str(p), readonly=True, lock=False) for p in (gt_lmdb, lq_lmdb))
    try:
        with gt_env.begin() as gt_txn, lq_env.begin() as lq_txn:
            for key in sorted(gt_keys):
                yield key, gt_txn.get(key.encode()), lq_txn.get(key.encode()), gt_keys[key], lq_keys[key]
    finally:
        gt_env.close()
        lq_env.close()


@pytest.mark.parametrize("scale", SCALES)
def test_whole_image_folders_pair(export, scale):
    out = export
    lq = out / "LR_bicubic" / f"X{scale}"
    for meta in (None, out / "meta_info_HR.txt"):
        pairs = list(pairs_from_folder(out / "HR", lq, f"{{}}x{scale}", meta))
        assert len(pairs) == 6
        for gt_path, lq_path in pairs:
            check_scale(imread(gt_path.read_bytes()), imread(lq_path.read_bytes()), scale, gt_path.name)


@pytest.mark.parametrize("scale", SCALES)
def test_sub_image_folders_pair(export, scale):
    out = export
    pairs = list(pairs_from_folder(out / "HR_sub", out / "LR_bicubic" / f"X{scale}_sub", "{}",
                                   out / "meta_info_HR_sub.txt"))
    assert pairs
    for gt_path, lq_path in pairs:
        check_scale(imread(gt_path.read_bytes()), imread(lq_path.read_bytes()), scale, gt_path.name)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("sub", ["", "_sub"])
def test_lmdbs_pair(lmdb_exports, scale, sub):
    out = lmdb_exports / ("sub" if sub else "whole")
    n = 0
    for key, gt_bytes, lq_bytes, gt_meta, lq_meta in lmdb_pairs(out / f"HR{sub}.lmdb",
                                                                out / f"LR_bicubic_X{scale}{sub}.lmdb"):
        gt, lq = imread(gt_bytes), imread(lq_bytes)
        check_scale(gt, lq, scale, key)
        assert gt.shape == gt_meta and lq.shape == lq_meta  # the meta_info shapes are the stored images'
        n += 1
    assert n == (6 if not sub else len((out / "meta_info_HR_sub.txt").read_text().splitlines()))


def test_originals_are_kept_beside_the_pairs(export):
    out = export
    rows = [json.loads(line) for line in (out / "key_map.jsonl").read_text().splitlines()]
    originals = dict((k, b) for k, b, _ in _records())
    for row in rows:
        assert (out / row["original"]).read_bytes() == originals[row["key"]]
        h, w = imread(originals[row["key"]]).shape[:2]  # EXIF orientation applied, as the export does
        assert imread((out / row["file"]).read_bytes()).shape == (h - h % 12, w - w % 12, 3)
    assert {p.name for p in (out / "HR").iterdir()} == {f"{r['key']}.png" for r in rows}


def test_single_scale_crops_to_that_scale_only(tmp_path):
    root = write_published_folder(tmp_path / "pub", _records()[:2], shards=1)
    export_basicsr(root, "I", tmp_path / "out", (3,))
    for gt_path, lq_path in pairs_from_folder(tmp_path / "out" / "HR", tmp_path / "out" / "LR_bicubic" / "X3", "{}x3"):
        gt = imread(gt_path.read_bytes())
        check_scale(gt, imread(lq_path.read_bytes()), 3, gt_path.name)
    assert sorted(imread(p.read_bytes()).shape for p in (tmp_path / "out" / "HR").iterdir()) == [(36, 48, 3),
                                                                                               (60, 45, 3)]


def test_an_export_of_the_old_format_is_refused(tmp_path):
    root = write_published_folder(tmp_path / "pub", _records()[:1], shards=1)
    out = tmp_path / "out"
    out.mkdir()
    settings = {"config": "I", "scales": [2, 3, 4], "subimages": None}
    (out / "export.json").write_text(json.dumps({"version": 1, "settings": settings, "complete": True}))
    with pytest.raises(DiversegError, match="export into a new folder"):
        export_basicsr(root, "I", out, SCALES)

"""diverseg export --format basicsr: mod-cropped HR, DIV2K-way LR, originals, sub-images, meta_info, LMDB, resume.

The BasicSR side is checked with a minimal paired reader written here (no basicsr import): it reads a
GT ``meta_info`` file and the folders the way BasicSR's ``PairedImageDataset`` does (GT names from the
first field of each line; LQ file = ``filename_tmpl.format(basename) + GT extension`` in the LQ folder).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest_hub import READ_TOKEN, client_env
from image_zoo import textured, zoo_bytes
from PIL import Image
from sr_folder import encode, write_published_folder

from diverseg_hf.cli import main as cli_main
from diverseg_hf.decode.images import decode_rgb
from diverseg_hf.errors import DiversegError
from diverseg_hf.sr import imresize
from diverseg_hf.sr.export import export_basicsr

pytest_plugins = ["conftest_hub"]  # the local Hub server fixture

ROOT = Path(__file__).resolve().parents[1]
SCALES = (2, 3, 4)
CROP, STEP = 24, 12


def _records():
    """PNG, JPEG and gray PNG images of sizes that are not multiples of the scales; awkward keys."""
    records = []
    for i in range(6):
        rgb = textured(37 + 9 * i, 50 + 7 * i, seed=i)
        fmt, ext = ("JPEG", "jpg") if i % 2 else ("PNG", "png")
        records.append((f"n{i % 2}/img {i}.x", encode(rgb, fmt), ext))
    records.append(("Cat", encode(textured(40, 41, seed=20)), "png"))
    records.append(("cat", encode(textured(30, 52, seed=21)[..., 0]), "png"))  # gray; differs from Cat by case
    records.append(("plain_key", encode(textured(22, 30, seed=22)), "png"))  # too small for sub-images
    records.append(("tiny", encode(textured(3, 9, seed=23)), "png"))  # smaller than scale 4
    records.append(("broken", zoo_bytes()["truncated_jpeg"], "jpg"))
    return records


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    records = _records()
    root = write_published_folder(tmp_path_factory.mktemp("pub"), records, shards=3)
    return root, {k: b for k, b, _ in records}


@pytest.fixture(scope="module")
def exported(published, tmp_path_factory):
    root, _ = published
    out = tmp_path_factory.mktemp("export") / "out"
    report = export_basicsr(root, "I", out, SCALES, subimages=(CROP, STEP))
    return out, report


def key_map(out):
    return {row["key"]: row for row in map(json.loads, (out / "key_map.jsonl").read_text().splitlines())}


def test_report_and_skips(exported):
    out, report = exported
    assert report.images == 9 and dict(report.skipped).keys() == {"tiny", "broken"}
    assert dict(report.skipped)["tiny"].startswith("too-small")
    assert dict(report.skipped)["broken"].startswith("truncated")
    skipped = [json.loads(line)["key"] for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert skipped == ["broken", "tiny"]
    assert json.loads((out / "export.json").read_text())["complete"] is True


def test_originals_kept_with_safe_unique_names(published, exported):
    _, raw = published
    out, _ = exported
    rows = key_map(out)
    assert sorted(rows) == sorted(k for k in raw if k not in ("tiny", "broken"))
    assert rows["plain_key"]["name"] == "plain_key"  # safe keys are kept as they are
    names = [r["name"] for r in rows.values()]
    assert len({n.lower() for n in names}) == len(names)
    for key, row in rows.items():
        assert all(c.isalnum() or c in "_-" for c in row["name"]), row
        path = out / row["original"]
        assert path.read_bytes() == raw[key] and path.parent.name == "original"
        assert path.suffix == (".jpg" if raw[key][:2] == b"\xff\xd8" else ".png")
        assert row["file"] == f"HR/{row['name']}.png"
    for folder, field in [("original", "original"), ("HR", "file")]:
        assert sorted(p.name for p in (out / folder).iterdir()) == sorted(Path(r[field]).name for r in rows.values())


def test_hr_is_modcropped_and_lr_its_imresize(published, exported):
    _, raw = published
    out, _ = exported
    L = math.lcm(*SCALES)
    for key, row in key_map(out).items():
        rgb = decode_rgb(raw[key])
        hr = decode_rgb(out / row["file"])
        np.testing.assert_array_equal(hr, rgb[: rgb.shape[0] // L * L, : rgb.shape[1] // L * L])
        for s in SCALES:
            lr = np.asarray(Image.open(out / "LR_bicubic" / f"X{s}" / f"{row['name']}x{s}.png"))
            np.testing.assert_array_equal(lr, imresize(hr, 1 / s))
            assert lr.shape == (hr.shape[0] // s, hr.shape[1] // s, 3)


def paired_reader(meta_info: Path, gt_folder: Path, lq_folder: Path, filename_tmpl: str):
    """(gt, lq) arrays as BasicSR's PairedImageDataset pairs them with a meta_info_file."""
    for line in meta_info.read_text().splitlines():
        gt_name = line.strip().split(" ")[0]
        basename, ext = os.path.splitext(os.path.basename(gt_name))
        lq_name = f"{filename_tmpl.format(basename)}{ext}"
        shape = tuple(int(v) for v in line.split(" ")[1].strip("()").split(","))
        gt = np.asarray(Image.open(gt_folder / gt_name).convert("RGB"))
        lq = np.asarray(Image.open(lq_folder / lq_name).convert("RGB"))
        yield gt_name, shape, gt, lq


def test_paired_reader_on_sub_images(published, exported):
    _, raw = published
    out, _ = exported
    by_name = {row["name"]: key for key, row in key_map(out).items()}
    for s in SCALES:
        seen = 0
        for gt_name, shape, gt, lq in paired_reader(out / "meta_info_HR_sub.txt", out / "HR_sub",
                                                    out / "LR_bicubic" / f"X{s}_sub", "{}"):
            assert shape == (CROP, CROP, 3) and gt.shape == shape and lq.shape == (CROP // s, CROP // s, 3)
            name, index = gt_name[: -len(".png")].rsplit("_s", 1)
            L = math.lcm(*SCALES)
            rgb = decode_rgb(raw[by_name[name]])
            hr = rgb[: rgb.shape[0] // L * L, : rgb.shape[1] // L * L]
            top, left = _boxes(*hr.shape[:2])[int(index) - 1]
            np.testing.assert_array_equal(gt, hr[top : top + CROP, left : left + CROP])
            full_lr = imresize(hr, 1 / s)
            np.testing.assert_array_equal(lq, full_lr[top // s : (top + CROP) // s, left // s : (left + CROP) // s])
            seen += 1
        assert seen == len((out / "meta_info_HR_sub.txt").read_text().splitlines())


def test_paired_reader_on_whole_images(exported):
    out, _ = exported
    for s in SCALES:
        n = 0
        for _, shape, gt, lq in paired_reader(out / "meta_info_HR.txt", out / "HR", out / "LR_bicubic" / f"X{s}",
                                              f"{{}}x{s}"):
            assert gt.shape == shape and lq.shape == (shape[0] // s, shape[1] // s, 3)
            n += 1
        assert n == 9  # 3 PNG + 3 JPEG + Cat + cat (gray) + plain_key


def _boxes(h, w):
    """Independent reference: starts every STEP while a crop fits, plus one flush with the far edge."""
    def starts(n):
        count = 1 + math.ceil((n - CROP) / STEP)
        return [min(i * STEP, n - CROP) for i in range(count)] if n >= CROP else []
    return [(t, left) for t in starts(h) for left in starts(w)]


def test_sub_image_naming_and_counts(published, exported):
    _, raw = published
    out, report = exported
    L = math.lcm(*SCALES)
    want = []
    for key, row in key_map(out).items():
        hr = decode_rgb(raw[key])
        count = len(_boxes(hr.shape[0] // L * L, hr.shape[1] // L * L))
        want += [f"{row['name']}_s{i:03d}.png" for i in range(1, count + 1)]
    assert "plain_key_s001.png" not in want
    assert sorted(p.name for p in (out / "HR_sub").iterdir()) == sorted(want)
    for s in SCALES:
        assert sorted(p.name for p in (out / "LR_bicubic" / f"X{s}_sub").iterdir()) == sorted(want)
    lines = (out / "meta_info_HR_sub.txt").read_text().splitlines()
    assert lines == [f"{n} ({CROP},{CROP},3)" for n in sorted(want)] and report.subimages == len(want)


def test_meta_info_lines(exported):
    out, _ = exported
    lines = (out / "meta_info_HR.txt").read_text().splitlines()
    assert [line.split(" ")[0] for line in lines] == sorted(p.name for p in (out / "HR").iterdir())
    for line in lines:
        name, shape = line.split(" ")
        im = Image.open(out / "HR" / name)
        assert shape == f"({im.height},{im.width},3)" and im.mode == "RGB"


def test_lmdb_layout(published, tmp_path):
    lmdb = pytest.importorskip("lmdb")
    root, _ = published
    out = tmp_path / "out"
    export_basicsr(root, "I", out, (4,), subimages=(CROP, STEP), lmdb=True)
    export_basicsr(root, "I", tmp_path / "whole", (2,), lmdb=True)
    for folder, lmdb_dir, side in [(out / "HR_sub", out / "HR_sub.lmdb", CROP),
                                   (out / "LR_bicubic" / "X4_sub", out / "LR_bicubic_X4_sub.lmdb", CROP // 4),
                                   (tmp_path / "whole" / "HR", tmp_path / "whole" / "HR.lmdb", None),
                                   (tmp_path / "whole" / "LR_bicubic" / "X2", tmp_path / "whole" / "LR_bicubic_X2.lmdb",
                                    None)]:
        assert {p.name for p in lmdb_dir.iterdir()} == {"data.mdb", "lock.mdb", "meta_info.txt"}
        lines = (lmdb_dir / "meta_info.txt").read_text().splitlines()
        keys = [line.split(".")[0] for line in lines]  # how BasicSR's paired_paths_from_lmdb reads them
        files = {p.stem.removesuffix("x2"): p for p in folder.iterdir()}
        assert keys == sorted(files)
        env = lmdb.open(str(lmdb_dir), readonly=True, lock=False)
        with env.begin() as txn:
            assert txn.stat()["entries"] == len(keys)
            for line, key in zip(lines, keys):
                value = txn.get(key.encode("ascii"))
                assert value == files[key].read_bytes()
                im = Image.open(io.BytesIO(value))
                h, w, c = (im.height, im.width, 1 if im.mode == "L" else 3) if side is None else (side, side, 3)
                want = f"({h},{w},{c})"
                assert line == f"{key}.png {want} 3"
        env.close()
    hr_keys = (out / "HR_sub.lmdb" / "meta_info.txt").read_text().split()[::3]
    assert hr_keys == (out / "LR_bicubic_X4_sub.lmdb" / "meta_info.txt").read_text().split()[::3]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_deterministic_across_workers(published, exported, tmp_path):
    root, _ = published
    out, _ = exported
    export_basicsr(root, "I", tmp_path / "w2", SCALES, workers=2, subimages=(CROP, STEP))
    assert tree(tmp_path / "w2") == tree(out)


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    records = [(f"k{i:02d}", encode(textured(96, 100, seed=i)), "png") for i in range(14)]
    root = write_published_folder(tmp_path / "pub", records, shards=2)
    args = [str(root), "--config", "I", "--scales", "2,4", "--subimages", "24,12", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "diverseg_hf", "export", *args, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hr = tmp_path / "killed" / "original"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(hr.glob("*.png"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the export ended before it could be killed"
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").rglob("*.png")}
    finished = len(list(hr.glob("*.png")))
    assert 2 <= finished < 14, "the export was not interrupted mid-run"
    assert json.loads((tmp_path / "killed" / "export.json").read_text())["complete"] is False
    assert cli_main(["export", *args, "--out", str(tmp_path / "killed")]) == 0
    assert cli_main(["export", *args, "--out", str(tmp_path / "whole"), "--workers", "2"]) == 0
    assert tree(tmp_path / "killed") == tree(tmp_path / "whole")
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished files were not redone


def test_misuse(published, exported, tmp_path, capsys):
    root, _ = published
    out, _ = exported
    with pytest.raises(DiversegError, match="other settings"):
        export_basicsr(root, "I", out, (4,), subimages=(CROP, STEP))
    with pytest.raises(DiversegError, match="multiples of 12"):
        export_basicsr(root, "I", tmp_path / "x", SCALES, subimages=(480, 250))
    with pytest.raises(DiversegError, match="scales must be"):
        export_basicsr(root, "I", tmp_path / "x", (1, 2))
    with pytest.raises(DiversegError, match="no train-"):
        export_basicsr(root, "P", tmp_path / "x")
    assert cli_main(["export", str(tmp_path / "missing"), "--config", "I", "--out", str(tmp_path / "x")]) == 2
    assert "diverseg export: error: no dataset folder or Hub dataset id" in capsys.readouterr().err
    assert cli_main(["export", str(root), "--config", "I", "--out", str(tmp_path / "x"), "--subimages", "48"]) == 2


def test_srpairs_on_the_export_read_the_exported_pairs(published, exported):
    torch = pytest.importorskip("torch")
    from diverseg_hf.sr import SRPairs

    out, _ = exported
    names = {row["key"]: row["name"] for row in key_map(out).values()}
    pairs = SRPairs.from_folder(out, "I", format="basicsr", scale=4, patch_size=16, lr_from="image", augment=False)
    n = 0
    for ex in pairs:
        lr = np.asarray(Image.open(out / "LR_bicubic" / "X4" / f"{names[ex['key']]}x4.png"))
        hr = decode_rgb(out / "HR" / f"{names[ex['key']]}.png")
        hr_patch = np.round(ex["hr"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        lr_patch = np.round(ex["lr"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        spots = [(t, x) for t in range(lr.shape[0] - 3) for x in range(lr.shape[1] - 3)
                 if (hr[4 * t : 4 * t + 16, 4 * x : 4 * x + 16] == hr_patch).all()]
        assert any((lr[t : t + 4, x : x + 4] == lr_patch).all() for t, x in spots), ex["key"]
        n += 1
    big_enough = [min(Image.open(out / row["file"]).size) >= 16 for row in key_map(out).values()]
    assert n == sum(big_enough) == len(names) - 1 and torch.is_tensor(ex["lr"])  # plain_key's HR is 12x24
    with pytest.raises(DiversegError, match="holds config 'I', not 'P'"):
        SRPairs.from_folder(out, "P", format="basicsr")


@pytest.mark.slow
def test_export_from_a_hub_dataset_id(hub, published, exported, tmp_path):
    """A Hub id downloads only data/<config>/*.parquet, then exports exactly as from the folder."""
    root, _ = published
    out, _ = exported
    hub.put_files("tester/subset", {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
                                    if p.is_file() and ".cache" not in p.parts})
    env = {**client_env(hub.url, tmp_path / "home", READ_TOKEN), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "diverseg_hf", "export", "tester/subset", "--config", "I", "--out",
           str(tmp_path / "out"), "--subimages", f"{CROP},{STEP}", "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree(tmp_path / "out") == tree(out)
    fetched = {r.path for r in hub.requests("GET", "/resolve/")}
    assert fetched and all("/data/I/" in path and path.endswith(".parquet") for path in fetched)

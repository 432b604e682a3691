"""``diverseg_hf.subsets.build`` and the ``DiverSegBuilder`` class on generated ImageNet-like and PASS-like trees.

The trees follow the layouts of the paper's README (ImageNet ``train/n01440764/n01440764_18.JPEG``,
PASS ``0/<hash>.jpg``); the lists name some images that are not there and one that is broken.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import datasets
import pytest
from image_zoo import textured, zoo_bytes
from PIL import Image

from diverseg_hf import DiversegError
from diverseg_hf.subsets.build import build, built_configs
from diverseg_hf.subsets.builder import DiverSegBuilder
from diverseg_hf.subsets.official_lists import list_key, list_name, read_list
from diverseg_hf.subsets.presets import SUBSET_PRESETS, paper_select_options

SYNSETS = ["n01440764", "n01443537", "n02085620"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jpeg(seed: int, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(textured(40 + 8 * (seed % 3), 48 + 8 * (seed % 4), seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def imagenet_tree(root: Path) -> dict[str, bytes]:
    """``root/train/<synset>/<synset>_<n>.JPEG`` (+ a val image): list-style path -> bytes of the train images."""
    files: dict[str, bytes] = {}
    for s, synset in enumerate(SYNSETS):
        for n in (18, 105, 2311):
            rel = f"{synset}/{synset}_{n}.JPEG"
            files[rel] = _jpeg(s * 10 + n)
    files[f"{SYNSETS[2]}/{SYNSETS[2]}_2311.JPEG"] = zoo_bytes()["truncated_jpeg"]  # a broken copy
    for rel, data in files.items():
        path = root / "train" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "val").mkdir(parents=True)
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(_jpeg(999))
    return files


def pass_files() -> dict[str, bytes]:
    """PASS-like ``<folder>/<hash>.jpg`` -> bytes (the hash names are made up)."""
    return {f"{i % 2}/{sha(str(i).encode())[:30]}.jpg": _jpeg(100 + i, 95) for i in range(5)}


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def write_list(path: Path, entries: list[str]) -> Path:
    path.write_text("# official list\n" + "\n".join(entries) + "\n\n")
    return path


def imagenet_case(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes], list[str]]:
    """(source root, list file, the listed files present, the listed files absent)."""
    files = imagenet_tree(tmp_path / "imagenet")
    listed = [r for r in files if not r.endswith("_105.JPEG") or r.startswith(SYNSETS[0])]
    absent = [f"{SYNSETS[1]}/{SYNSETS[1]}_7.JPEG", "n09999999/n09999999_1.JPEG"]
    lst = write_list(tmp_path / "DiverSeg-I_list.txt", [*listed[:3], absent[0], *listed[3:], absent[1]])
    return tmp_path / "imagenet", lst, {r: files[r] for r in listed}, absent


def published_rows(folder: Path, config: str) -> list[dict]:
    ds = datasets.load_dataset(str(folder), config, split="train").cast_column("image", datasets.Image(decode=False))
    return [{**r, "image": r["image"]["bytes"]} for r in ds]


def test_list_names_and_keys() -> None:
    assert list_name("n01440764/n01440764_18.JPEG") == "n01440764_18"
    assert list_name("train/n01440764_18_n01440764.JPEG") == "n01440764_18"  # ImageNet on the Hub
    assert list_name("n01440764_18_n02085620.JPEG") == "n01440764_18_n02085620"  # other synset: kept
    assert list_name("0/0a0bf4db55141fcfff5da2c8655f93.jpg") == "0a0bf4db55141fcfff5da2c8655f93"
    assert list_key("0/0a0bf4db.jpg") == "0/0a0bf4db"
    assert list_key("a.b/c.v2.png") == "a%2Eb/c"


def test_read_list_rejects_bad_lists(tmp_path: Path) -> None:
    assert read_list(write_list(tmp_path / "ok.txt", ["a/x.JPEG", " b\\y.jpg "])) == ["a/x.JPEG", "b/y.jpg"]
    with pytest.raises(DiversegError, match="same file name"):
        read_list(write_list(tmp_path / "dup.txt", ["a/x.JPEG", "b/x.jpg"]))
    with pytest.raises(DiversegError, match="must be relative"):
        read_list(write_list(tmp_path / "abs.txt", ["/etc/x.jpg"]))
    with pytest.raises(DiversegError, match="lists no images"):
        read_list(write_list(tmp_path / "empty.txt", []))


def test_from_list_is_byte_identical_and_reports_missing(tmp_path: Path, monkeypatch) -> None:
    root, lst, present, absent = imagenet_case(tmp_path)
    broken = f"{SYNSETS[2]}/{SYNSETS[2]}_2311.JPEG"
    out = tmp_path / "diverseg"
    result = build("I", out, source=str(root / "train"), from_list=lst, progress=False)

    assert result.missing == absent
    assert [u["path"] for u in result.unreadable] == [broken]
    report = json.loads(result.report.read_text())
    assert report["missing"] == absent and report["listed"] == len(present) + len(absent)
    assert report["published"] == result.num_examples == len(present) - 1

    good = {rel: data for rel, data in present.items() if rel != broken}
    monkeypatch.chdir(tmp_path)  # load_dataset("diverseg", "I") from the parent folder
    rows = published_rows(Path("diverseg"), "I")
    assert [(r["key"], r["list_path"], r["image"]) for r in rows] == [
        (rel.removesuffix(".JPEG"), rel, data) for rel, data in sorted(good.items())]
    streamed = datasets.load_dataset("diverseg", "I", split="train", streaming=True)
    streamed = streamed.cast_column("image", datasets.Image(decode=False))
    assert [sha(r["image"]["bytes"]) for r in streamed] == [sha(r["image"]) for r in rows]
    assert built_configs(out) == ["I"]
    assert "license: other" in (out / "README.md").read_text()  # ImageNet terms


def test_from_list_on_the_imagenet_root_and_a_tar_source(tmp_path: Path) -> None:
    """The same list matches a tree rooted above train/ and PASS-like tar shards (names, not folders)."""
    root, lst, _present, _ = imagenet_case(tmp_path)
    a = build("I", tmp_path / "a", source=str(root), from_list=lst, progress=False)
    b = build("I", tmp_path / "b", source=str(root / "train"), from_list=lst, progress=False)
    def without_origin(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "origin"} for r in rows]

    assert without_origin(published_rows(tmp_path / "a", "I")) == without_origin(published_rows(tmp_path / "b", "I"))
    assert a.missing == b.missing

    files = pass_files()
    tar_path = tmp_path / "pass.tar"
    with tarfile.open(tar_path, "w") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"PASS/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    listed = list(files)[1:]
    result = build("P", tmp_path / "p", source=str(tar_path), from_list=write_list(tmp_path / "P.txt", listed),
                   progress=False)
    assert result.missing == [] and result.num_examples == len(listed)
    rows = published_rows(tmp_path / "p", "P")
    assert sorted((r["list_path"], r["image"]) for r in rows) == sorted((r, files[r]) for r in listed)
    assert "license: cc-by-4.0" in (tmp_path / "p" / "README.md").read_text()


def test_from_list_with_nothing_found_is_an_error(tmp_path: Path) -> None:
    root, _, _, _ = imagenet_case(tmp_path)
    with pytest.raises(DiversegError, match="none of the 1 images"):
        build("I", tmp_path / "out", source=str(root), from_list=write_list(tmp_path / "l.txt", ["x/nothere.JPEG"]),
              progress=False)
    with pytest.raises(DiversegError, match="unknown config"):
        build("Q", tmp_path / "out")
    with pytest.raises(DiversegError, match="for IP only"):
        build("I", tmp_path / "out", source={"I": str(root)})


def test_ip_is_the_namespaced_union_without_rebuilding_parts(tmp_path: Path) -> None:
    root, lst, _, _ = imagenet_case(tmp_path)
    write_tree(tmp_path / "pass", pass_files())
    out = tmp_path / "diverseg"
    build("I", out, source=str(root), from_list=lst, progress=False)
    build("P", out, source=str(tmp_path / "pass"), from_list=write_list(tmp_path / "P.txt", list(pass_files())),
          progress=False)
    parts_before = {p: (out / "data" / p).stat().st_mtime_ns for p in ("I", "P")}
    scores_before = (out / ".diverseg" / "I" / "scores" / "scores.json").stat().st_mtime_ns

    result = build("IP", out, progress=False)
    assert result.parts == {}  # both parts reused
    assert {p: (out / "data" / p).stat().st_mtime_ns for p in ("I", "P")} == parts_before
    assert (out / ".diverseg" / "I" / "scores" / "scores.json").stat().st_mtime_ns == scores_before
    union = published_rows(out, "IP")
    expected = [{**r, "key": f"{p}/{r['key']}"} for p in ("I", "P") for r in published_rows(out, p)]
    assert union == expected
    assert result.num_examples == len(expected)
    assert built_configs(out) == ["I", "P", "IP"]


def test_ip_builds_missing_parts_from_per_part_lists(tmp_path: Path) -> None:
    root, lst, _, absent = imagenet_case(tmp_path)
    write_tree(tmp_path / "pass", pass_files())
    plist = write_list(tmp_path / "P.txt", list(pass_files()))
    result = build("IP", tmp_path / "ds", source={"I": str(root), "P": str(tmp_path / "pass")},
                   from_list={"I": lst, "P": plist}, progress=False)
    assert sorted(result.parts) == ["I", "P"] and result.parts["I"].missing == absent
    assert result.num_examples == result.parts["I"].num_examples + result.parts["P"].num_examples


def test_builder_class_yields_the_rows_of_load_dataset(tmp_path: Path) -> None:
    root, lst, _, _ = imagenet_case(tmp_path)
    out = tmp_path / "diverseg"
    build("I", out, source=str(root), from_list=lst, progress=False)

    builder = DiverSegBuilder(config_name="I", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train")
    assert isinstance(ds.features["image"], datasets.Image)
    got = [{**r, "image": r["image"]["bytes"]} for r in ds.cast_column("image", datasets.Image(decode=False))]
    assert got == published_rows(out, "I")
    streamed = builder.as_streaming_dataset(split="train").cast_column("image", datasets.Image(decode=False))
    assert [{**r, "image": r["image"]["bytes"]} for r in streamed] == got
    assert ds[0]["image"].size == (ds[0]["width"], ds[0]["height"])  # decodes to PIL

    with pytest.raises(DiversegError, match="no config 'P'"):
        DiverSegBuilder(config_name="P", data_dir=str(out), cache_dir=str(tmp_path / "cache")).download_and_prepare()


def test_builder_builds_a_missing_config(tmp_path: Path) -> None:
    write_tree(tmp_path / "pass", pass_files())
    plist = write_list(tmp_path / "P.txt", list(pass_files()))
    out = tmp_path / "diverseg"
    builder = DiverSegBuilder(config_name="P", data_dir=str(out), cache_dir=str(tmp_path / "cache"),
                       source=str(tmp_path / "pass"), from_list=str(plist), build_options={"progress": False})
    builder.download_and_prepare()
    ds = builder.as_dataset(split="train").cast_column("image", datasets.Image(decode=False))
    assert sorted(r["image"]["bytes"] for r in ds) == sorted(pass_files().values())
    assert built_configs(out) == ["P"]


def test_curated_build_uses_the_paper_settings_unless_overridden(tmp_path: Path, caplog) -> None:
    assert paper_select_options(SUBSET_PRESETS["I"], ["blockiness", "sam"]) == {"thetas": {"sam_masks": 100},
                                                                         "min_quality": 0.9}
    assert SUBSET_PRESETS["I"].scorer_options["sam"]["points_per_side"] == 32
    files = imagenet_tree(tmp_path / "imagenet")
    out = tmp_path / "diverseg"
    result = build("I", out, source=str(tmp_path / "imagenet" / "train"), scorers=["blockiness"],
                   select_options={"min_quality": None, "max_blockiness": 1000}, progress=False)
    assert "sam_masks" in caplog.text  # the theta it could not apply is named
    selection = json.loads((out / ".diverseg" / "I" / "selection" / "selection.json").read_text())
    assert selection["rules"]["thetas"] == {} and selection["rules"]["max_blockiness"] == 1000
    assert [s["name"] for s in selection["scorers"]] == ["blockiness"]
    rows = published_rows(out, "I")
    assert result.num_examples == len(rows) == len(files) - 1  # the truncated copy is not published
    assert {r["key"]: r["image"] for r in rows} == {
        rel.removesuffix(".JPEG"): data for rel, data in files.items() if not rel.endswith("_2311.JPEG")
        or not rel.startswith(SYNSETS[2])}


def test_curated_build_applies_the_paper_theta_and_sam_settings(tmp_path: Path) -> None:
    """With the paper's scorers (a tiny random SAM stands in for ViT-H), theta = 100 masks is applied."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    imagenet_tree(tmp_path / "imagenet")
    tiny = Path(__file__).parent / "fixtures" / "tiny_sam"
    out = tmp_path / "diverseg"
    with pytest.raises(DiversegError, match="selection is empty"):  # a 4x4-point SAM never finds 100 masks
        build("I", out, source=str(tmp_path / "imagenet" / "train"), progress=False,
              scorer_options={"sam": {"model": str(tiny), "points_per_side": 4}}, select_options={"min_quality": None})
    selection = json.loads((out / ".diverseg" / "I" / "selection" / "selection.json").read_text())
    assert selection["thetas"] == {"sam_masks": 100}
    assert selection["counts"]["dropped"]["theta:sam_masks"] == 8  # every decodable image
    sam = next(s for s in selection["scorers"] if s["name"] == "sam")
    sam_preset = SUBSET_PRESETS["I"].scorer_options["sam"]
    paper = {k: v for k, v in sam_preset.items() if k not in ("model", "points_per_side")}
    assert {k: sam["settings"][k] for k in paper} == paper
    assert [s["name"] for s in selection["scorers"]] == ["blockiness", "sam"]


def test_match_list_progress_ends_at_100_percent_with_the_misses_counted(tmp_path: Path, capsys) -> None:
    from diverseg_hf.sources import open_source
    from diverseg_hf.subsets.official_lists import match_list

    root, list_path, _, absent = imagenet_case(tmp_path)
    entries = read_list(list_path)
    _, _, report = match_list(entries, open_source(str(root)), progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")
    last = [line for line in err.splitlines() if "match list" in line][-1]
    assert report["missing"] == absent and "100%" in last and f"missing={len(absent)}" in last
    assert f"{len(entries)}/{len(entries)}" in last

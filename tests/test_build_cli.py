"""``diverseg build``: list rebuilds with their missing-file report, IP, and build -> push -> load from the
(local) Hub equal to the folder byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from conftest_hub import READ_TOKEN, client_env, run_client
from test_builder import SYNSETS, imagenet_case, pass_files, write_list, write_tree

from diverseg_hf.cli import main

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/diverseg"

#: Client code: every row of config I, the image as the sha256 of its bytes, loaded three ways.
LOAD = """
def rows(path, streaming):
    ds = datasets.load_dataset(path, "I", split="train", streaming=streaming)
    ds = ds.cast_column("image", datasets.Image(decode=False))
    return [{**r, "image": digest(r["image"]["bytes"])} for r in ds]
print(json.dumps({"hub": rows(REPO, False), "stream": rows(REPO, True), "local": rows(LOCAL, False)}))
"""


def test_build_from_list_reports_missing_files(tmp_path: Path, capsys) -> None:
    root, lst, present, absent = imagenet_case(tmp_path)
    out = tmp_path / "diverseg"
    assert main(["build", "I", "--out", str(out), "--source", str(root / "train"), "--from-list", str(lst)]) == 0
    err = capsys.readouterr().err
    for path in absent:
        assert f"build: not found: {path}" in err
    broken = f"{SYNSETS[2]}/{SYNSETS[2]}_2311.JPEG"
    assert f"build: unreadable: {broken}: " in err
    report = json.loads((out / ".diverseg" / "I" / "from_list_report.json").read_text())
    assert report["missing"] == absent
    assert [u["path"] for u in report["unreadable"]] == [broken]
    assert f"build: {len(present) - 1} images published as 'I'" in err


def test_build_ip_with_per_part_options_and_errors(tmp_path: Path, capsys) -> None:
    root, lst, _, _ = imagenet_case(tmp_path)
    write_tree(tmp_path / "pass", pass_files())
    plist = write_list(tmp_path / "P.txt", list(pass_files()))
    out = tmp_path / "diverseg"
    assert main(["build", "IP", "--out", str(out), "--source", f"I={root}", "--from-list", f"I={lst}",
                 "--source", f"P={tmp_path / 'pass'}", "--from-list", f"P={plist}"]) == 0
    err = capsys.readouterr().err
    assert "published as 'I'" in err and "published as 'P'" in err and "published as 'IP'" in err
    # IP again: the parts are in the folder, nothing to pass
    assert main(["build", "IP", "--out", str(out)]) == 0
    assert "published as 'I'" not in capsys.readouterr().err

    assert main(["build", "IP", "--out", str(out), "--source", "X=somewhere"]) == 2
    assert "PART=VALUE" in capsys.readouterr().err
    assert main(["build", "I", "--out", str(out), "--source", str(root), "--from-list", str(tmp_path / "no.txt")]) == 2
    assert "no such list file" in capsys.readouterr().err
    assert main(["build", "I", "--out", str(out), "--source", str(root), "--from-list", str(lst),
                 "--scorers", "blockiness"]) == 2
    assert "cannot be used with from_list" in capsys.readouterr().err


def test_build_push_load_from_hub_equals_folder(hub_env, tmp_path: Path, capsys) -> None:
    root, lst, _, _ = imagenet_case(tmp_path)
    out = tmp_path / "diverseg"
    assert main(["build", "I", "--out", str(out), "--source", str(root), "--from-list", str(lst)]) == 0
    assert main(["push", str(out), REPO]) == 0
    assert "push: " in capsys.readouterr().err

    got = run_client(f"REPO = {REPO!r}\nLOCAL = {str(out)!r}\n" + LOAD,
                     client_env(hub_env.url, tmp_path / "client_home", READ_TOKEN))
    assert got["hub"] == got["stream"] == got["local"]
    assert len(got["hub"]) == 6 and all(len(r["image"]) == 64 for r in got["hub"])

    # --push-to-hub on build: an ImageNet config gates the repo
    assert main(["build", "I", "--out", str(out), "--source", str(root), "--from-list", str(lst),
                 "--push-to-hub", "tester/gated"]) == 0
    assert hub_env.repos[("dataset", "tester/gated")].gated == "auto"


def test_build_from_list_over_a_hub_dataset(hub_env, tmp_path: Path) -> None:
    """PASS hosted on the (local) Hub as Parquet with a ``hash`` id column: the list is matched by hash."""
    import datasets

    from diverseg_hf.hub.push import push_folder

    files = pass_files()
    names = {rel: Path(rel).stem for rel in files}
    features = datasets.Features({"hash": datasets.Value("string"), "image": datasets.Image()})
    table = datasets.Dataset.from_dict({"hash": list(names.values()),
                                        "image": [{"bytes": b, "path": None} for b in files.values()]},
                                       features=features)
    (tmp_path / "src" / "data").mkdir(parents=True)
    table.to_parquet(str(tmp_path / "src" / "data" / "train-00000-of-00001.parquet"))
    push_folder(tmp_path / "src", "tester/pass")
    listed = [*list(files)[:3], "1/ffffffffffffffffffffffffffffff.jpg"]
    lst = write_list(tmp_path / "DiverSeg-P_list.txt", listed)
    out = tmp_path / "diverseg"

    code = f"""
from diverseg_hf.subsets.build import build
r = build("P", {str(out)!r}, source="tester/pass", from_list={str(lst)!r}, source_options={{"key_column": "hash"}},
          progress=False)
print(json.dumps({{"missing": r.missing, "n": r.num_examples}}))
"""
    got = run_client(code, client_env(hub_env.url, tmp_path / "client_home", READ_TOKEN))
    assert got == {"missing": [listed[-1]], "n": 3}
    ds = datasets.load_dataset(str(out), "P", split="train").cast_column("image", datasets.Image(decode=False))
    assert {r["list_path"]: r["image"]["bytes"] for r in ds} == {rel: files[rel] for rel in listed[:3]}

"""Digest of everything the pipeline writes for a fixed generated corpus (a before/after check for refactors).

Runs ``diverseg curate`` (folder, Parquet and tar sources), ``diverseg build I --from-list`` and
``diverseg build IP`` through the command line, then prints one ``path<TAB>sha256`` line per output
file: tar shards by their bytes, Parquet files by their rows (so a pyarrow upgrade does not show as a
change), JSON and cards with the run's temporary folder replaced by ``<ROOT>`` (and without the
file mtimes of unit fingerprints). Run it before and after
a change and diff the outputs:

    python tests/pipeline_digest.py > before.txt; ...; python tests/pipeline_digest.py > after.txt

With ``--bytes``, Parquet files are hashed by their bytes too (for a comparison within one environment).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pipeline_helpers import good_images, mixed_folder, write_files


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "diverseg_hf", *args], check=True, capture_output=True)


def _canonical(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _digest(path: Path, root: Path, raw: bool) -> str:
    if path.suffix == ".parquet" and raw:
        data = path.read_bytes()
    elif path.suffix == ".parquet":
        rows = _canonical(pq.read_table(path).to_pylist())
        data = json.dumps(rows, sort_keys=True, default=str).encode()
    elif path.suffix in (".json", ".md"):
        text = path.read_text().replace(str(root), "<ROOT>")
        if path.suffix == ".json":
            payload = json.loads(text)
            payload.pop("package_version", None)
            for unit in payload.get("units", []):
                unit.pop("fingerprint", None)  # file mtimes
            text = json.dumps(payload, sort_keys=True)
        data = text.encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def _sources(root: Path) -> dict[str, Path]:
    folder = root / "src_folder"
    mixed_folder(folder, n_good=14)
    images = good_images(10, seed=7)
    table = pa.table({"key": [f"p{i}" for i in range(len(images))],
                      "image": [{"bytes": b, "path": n} for n, b in images.items()]})
    (root / "src_parquet").mkdir()
    pq.write_table(table, root / "src_parquet" / "part-0.parquet")
    (root / "src_tar").mkdir()
    with tarfile.open(root / "src_tar" / "shard-0.tar", "w") as tar:
        for i, data in enumerate(good_images(8, seed=11).values()):
            info = tarfile.TarInfo(f"s{i:03d}.png" if data[:4] == b"\x89PNG" else f"s{i:03d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    imagenet = root / "imagenet"
    write_files(imagenet, {f"n0000000{i % 2}/n0000000{i % 2}_{i}.JPEG": b
                           for i, b in enumerate(good_images(9, seed=3).values())})
    listing = root / "list.txt"
    listing.write_text("".join(f"n0000000{i % 2}/n0000000{i % 2}_{i}.JPEG\n" for i in range(0, 12, 2)))
    plist = root / "p_list.txt"
    plist.write_text("0/s000.png\n1/s002.jpg\n0/s005.jpg\n0/missing.jpg\n")
    return {"plist": plist, "folder": folder, "parquet": root / "src_parquet", "tar": root / "src_tar",
            "imagenet": imagenet, "list": listing}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = _sources(root)
        out = root / "out"
        common = ["--scorers", "blockiness", "--format", "parquet,webdataset", "--shard-size", "20KB"]
        _cli("curate", str(src["folder"]), "--out", str(out), "--name", "f", "--max-blockiness", "60", *common)
        _cli("curate", str(src["parquet"]), "--out", str(out), "--name", "p", "--keep", "0.5", "--by",
             "blockiness", *common)
        _cli("curate", str(src["tar"]), "--out", str(out), "--name", "t", *common)
        built = root / "diverseg"
        _cli("build", "I", "--out", str(built), "--source", str(src["imagenet"]), "--from-list", str(src["list"]),
             "--format", "parquet,webdataset")
        _cli("build", "P", "--out", str(built), "--source", str(src["tar"]), "--from-list", str(src["plist"]),
             "--format", "parquet,webdataset")
        _cli("build", "IP", "--out", str(built), "--format", "parquet,webdataset")
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "src_" not in p.parts[-3]):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(("out/", "diverseg/")) and not path.name.endswith(".arrow"):
                print(f"{rel}\t{_digest(path, root, '--bytes' in sys.argv)}")


if __name__ == "__main__":
    main()

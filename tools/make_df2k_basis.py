"""Write the packaged DF2K basis (``diverseg_hf/data/df2k_basis.parquet``) from the released files.

Run once, by hand, when the pinned release changes; the output is committed. The input is a folder
holding the five released files ``DF2K.txt`` and ``DF2K_q{95,85,75,50}.txt`` of gohtanii/DiverSeg-dataset
(``blockiness/blockiness_per_dataset/`` at :data:`diverseg_hf.quality.basis.DF2K_COMMIT`, MIT licence). Each
file must match its pinned sha256; the values are parsed with :func:`diverseg_hf.quality.basis.read_scores_tsv`
(float64, file order kept) and written with :func:`diverseg_hf.quality.basis.save_basis`, so loading the
Parquet file gives exactly the values of loading the folder. The provenance (repository, commit,
licence, sha256 of every original file) goes into the Parquet metadata and into
``df2k_basis.json`` beside it.

Usage:
    python tools/make_df2k_basis.py RELEASED_FOLDER [--out diverseg_hf/data]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from diverseg_hf.errors import DiversegError
from diverseg_hf.quality.basis import DF2K_COMMIT, DF2K_SHA256, discover_basis_files, read_scores_tsv, save_basis

REPOSITORY = "https://github.com/gohtanii/DiverSeg-dataset"


def provenance() -> dict:
    """What the packaged file is, where it comes from and under which licence."""
    return {
        "description": "Blockiness values of DF2K (DIV2K + Flickr2K) at JPEG quality 100/95/85/75/50, "
        "as released with Ohtani et al., ECCV 2024",
        "repository": REPOSITORY,
        "commit": DF2K_COMMIT,
        "path": "blockiness/blockiness_per_dataset",
        "licence": "MIT (Copyright (c) 2024 gohtanii); full text in df2k_basis.LICENSE",
        "files_sha256": DF2K_SHA256,
        "generated_by": "tools/make_df2k_basis.py",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("released", type=Path, help="folder with DF2K.txt, DF2K_q95.txt, ...")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "diverseg_hf" / "data")
    args = parser.parse_args(argv)
    for name, digest in DF2K_SHA256.items():
        got = hashlib.sha256((args.released / name).read_bytes()).hexdigest()
        if got != digest:
            raise DiversegError(f"{args.released / name}: sha256 {got}, expected the pinned {digest}")
    basis = {q: read_scores_tsv(path) for q, path in discover_basis_files(args.released).items()}
    meta = provenance()
    save_basis(basis, args.out / "df2k_basis.parquet", metadata=meta)
    (args.out / "df2k_basis.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out / 'df2k_basis.parquet'}: {', '.join(f'q{q} {len(v)}' for q, v in basis.items())}")


if __name__ == "__main__":
    main()

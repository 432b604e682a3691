"""Phase 3: selection -> dataset folder of original-byte shards, the score table, plots and a card.

Layout written into ``DATASET_DIR`` for config ``NAME``::

    data/NAME/train-XXXXX-of-YYYYY.parquet   key, image (datasets Image), origin, scores...
    wds/NAME/train-XXXXX.tar                 <key>.<ext> (original bytes) + <key>.json (scores)
    data/scores/NAME/train-XXXXX-of-YYYYY.parquet   the whole score table (split NAME of `scores`)
    assets/NAME_*.png                        histograms referenced by the card
    README.md                                card (all configs), .diverseg/configs.json its registry

Image bytes are copied untouched (sha256 checked against the score table); shards are cut by the
score table's byte counts before any image is read, and written deterministically (no timestamps,
fixed tar headers), so publishing the same selection again gives byte-identical files. Shards are
staged in hidden folders and moved into place only when complete.

Example:
    >>> parse_size("500MB"), parse_size("2GiB"), parse_size(1024)
    (500000000, 2147483648, 1024)
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from . import __version__
from .cards import license_for, render_card
from .errors import DiversegError
from .files import write_json_atomic
from .plots import plot_histogram
from .score import ScoreTable
from .select import load_selection
from .sources import Source, reopen_source

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "webdataset")
REGISTRY = Path(".diverseg") / "configs.json"
ROW_GROUP_ROWS = 100
SCORES_SHARD_ROWS = 500_000
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff",
        "GIF": "gif", "PPM": "ppm"}
_COUNT_LABELS = {"sam_masks": "SAM masks per image", "det_objects": "detected objects per image"}


def parse_size(size: str | int) -> int:
    """``"500MB"`` -> bytes (KB/MB/GB decimal, KiB/MiB/GiB binary), as ``push_to_hub`` reads it."""
    if isinstance(size, int):
        return size
    match = _SIZE.match(size)
    if not match:
        raise DiversegError(f"cannot read size {size!r}; use e.g. 500MB or 1GiB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return max(1, int(number * scale))


def image_extension(fmt: str | None) -> str:
    """File extension for a PIL format name (``"JPEG"`` -> ``"jpg"``)."""
    return _EXT.get((fmt or "").upper(), (fmt or "bin").lower())


def plan_shards(sizes: Sequence[int], shard_size: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` row ranges of at most ``shard_size`` bytes (at least one row each).

    Example:
        >>> plan_shards([4, 4, 4, 9, 1], 8)
        [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    shards: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > shard_size:
            shards.append((start, i))
            start, total = i, 0
        total += size
    if len(sizes) > start:
        shards.append((start, len(sizes)))
    return shards


@dataclass
class PublishResult:
    """Files written by :func:`publish` and the config's statistics."""

    out: Path
    name: str
    num_examples: int
    num_bytes: int
    files: list[Path] = field(default_factory=list)


def _features(schema: pa.Schema, with_image: bool):
    """datasets Features for published rows: key, image (Image), then the score columns."""
    import datasets

    plain = datasets.Features.from_arrow_schema(pa.schema([f for f in schema if f.name != "key"]))
    items: list[tuple[str, Any]] = [("key", datasets.Value("string"))]
    if with_image:
        items.append(("image", datasets.Image()))
    items.extend(plain.items())
    return datasets.Features(dict(items))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _json_row(row: dict[str, Any]) -> bytes:
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()


def _records_in_order(source: Source, table: pa.Table):
    """Yield (row index, record) for every selected key, in table order, checking sha256."""
    keys = table.column("key").to_pylist()
    hashes = table.column("sha256").to_pylist()
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise DiversegError("the selection has duplicate keys; the source's keys must be unique")
    want = set(keys)
    expected = 0
    for unit in source.units():
        for record in unit.records(want):
            i = index[record.key]
            if i != expected:
                raise DiversegError(f"source changed since scoring: {record.key!r} is out of order; re-score it")
            if hashlib.sha256(record.data).hexdigest() != hashes[i]:
                raise DiversegError(f"source changed since scoring: {record.key!r} has other bytes; re-score it")
            yield i, record
            expected += 1
    if expected != len(keys):
        raise DiversegError(f"source changed since scoring: {keys[expected]!r} is missing from it")


def _stage(final: Path) -> Path:
    stage = final.with_name(f".{final.name}.partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def _swap_in(stage: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(stage, final)


def _write_scores(table: pa.Table, out: Path, name: str) -> dict[str, Any]:
    """The whole score table as split ``name`` of the ``scores`` config."""
    features = _features(table.schema, with_image=False)
    table = table.select(list(features)).cast(features.arrow_schema)
    final = out / "data" / "scores" / name
    stage = _stage(final)
    shards = [(i, min(i + SCORES_SHARD_ROWS, table.num_rows)) for i in range(0, max(table.num_rows, 1),
                                                                             SCORES_SHARD_ROWS)]
    for n, (a, b) in enumerate(shards):
        pq.write_table(table.slice(a, b - a), stage / f"train-{n:05d}-of-{len(shards):05d}.parquet",
                       compression="zstd")
    _swap_in(stage, final)
    size = sum(p.stat().st_size for p in final.glob("*.parquet"))
    return {
        "split": name,
        "path": f"data/scores/{name}/*.parquet",
        "features": features._to_yaml_list(),
        "split_info": {"name": name, "num_bytes": int(table.nbytes), "num_examples": table.num_rows},
        "download_size": size,
    }


def _plots(out: Path, name: str, scores: pa.Table, info: dict[str, Any]) -> list[dict[str, str]]:
    """Histograms of the selection column (with theta) and of blockiness (with the ceiling)."""
    ok = scores.column("error").is_null().to_numpy(zero_copy_only=False)
    plots = []
    columns = [c for c in info["thetas"] if c in scores.column_names]
    if "blockiness" in scores.column_names:
        columns.append("blockiness")
    for col in columns:
        values = scores.column(col).to_numpy(zero_copy_only=False).astype(float)[ok]
        values = values[np.isfinite(values)]
        title = f"{name}: {col} of {values.size:,} scored source images"
        path = out / "assets" / f"{name}_{col}.png"
        if col == "blockiness":
            line = info["rules"].get("max_blockiness")
            plot_histogram(
                np.clip(values, 0, 300), path, xlabel="blockiness B(x) (values above 300 shown at 300)",
                title=title, line=line, line_label=f"ceiling {line:g}" if line is not None else None,
            )
        else:
            line = info["thetas"][col]
            span = int(values.max() - values.min() + 1) if values.size else 10
            plot_histogram(
                values, path, xlabel=_COUNT_LABELS.get(col, col), title=title, line=line,
                line_label=f"theta = {line:g}" if line is not None else None,
                bins=min(100, max(10, span)), color="#55A868",
            )
        plots.append({"path": f"assets/{path.name}", "alt": f"{col} histogram of {name}"})
    return plots


def _stats(table: pa.Table) -> dict[str, Any]:
    width = table.column("width").to_numpy(zero_copy_only=False).astype(float)
    height = table.column("height").to_numpy(zero_copy_only=False).astype(float)

    def mean(col: str) -> float | None:
        return float(np.nanmean(table.column(col).to_numpy(zero_copy_only=False).astype(float))) \
            if col in table.column_names and table.num_rows else None

    pct: dict[str, float] = {}
    if "blockiness" in table.column_names:
        b = table.column("blockiness").to_numpy(zero_copy_only=False).astype(float)
        b = b[np.isfinite(b)]
        if b.size:
            pct = {f"p{q}": float(np.percentile(b, q)) for q in (5, 25, 50, 75, 95)}
    return {"images": table.num_rows, "mean_pixels": float(np.mean(width * height)) if table.num_rows else 0.0,
            "mean_masks": mean("sam_masks"), "mean_objects": mean("det_objects"),
            "blockiness_percentiles": pct}


def _load_registry(out: Path) -> list[dict[str, Any]]:
    path = out / REGISTRY
    return json.loads(path.read_text())["configs"] if path.exists() else []


def rerender_card(dataset_dir: str | os.PathLike, repo: str | None = None) -> Path:
    """Render ``dataset_dir/README.md`` again from its config registry, e.g. with the Hub ``repo`` id
    its loading examples should name before a push.

    Example:
        >>> rerender_card("/no/such/dir")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/dir has no published configs (no .diverseg/configs.json)
    """
    configs = _load_registry(Path(dataset_dir))
    if not configs:
        raise DiversegError(f"{dataset_dir} has no published configs (no {REGISTRY.as_posix()})")
    return render_card(dataset_dir, configs, repo=repo)


def publish(
    selection: str | os.PathLike,
    out: str | os.PathLike,
    name: str,
    source: str | Source | None = None,
    formats: Sequence[str] = ("parquet",),
    shard_size: str | int = "500MB",
    license: str | None = None,
    gated: bool | None = None,
    include_scores: bool = True,
    description: str | None = None,
    progress: bool = True,
    repo: str | None = None,
) -> PublishResult:
    """Publish the images of a selection as config ``name`` of the dataset folder ``out``.

    ``source`` defaults to the one recorded in the selection. Other configs already in ``out`` are
    kept (the card is re-rendered for all of them; ``repo`` is the Hub id its loading examples name,
    default the folder path). Returns the files written.

    Example:
        >>> publish("/no/sel", "/tmp/ds", "mine")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/sel is not a complete selection (no selection.json); run diverseg select
    """
    formats = list(dict.fromkeys(formats))
    if not formats or any(f not in FORMATS for f in formats):
        raise DiversegError(f"--format must be a comma-separated subset of {', '.join(FORMATS)}")
    if not _NAME.match(name) or name == "scores":
        raise DiversegError(f"config name {name!r} must be letters, digits or _ (and not 'scores')")
    limit = parse_size(shard_size)
    table, info = load_selection(selection)
    if table.num_rows == 0:
        raise DiversegError("the selection is empty: nothing to publish")
    if isinstance(source, Source):
        src = source
    else:
        try:
            # a given source replaces the recorded path; its recorded options (split, columns) still apply
            src = reopen_source({**info["source"], "spec": str(source)} if source else info["source"])
        except DiversegError as exc:
            raise DiversegError(f"cannot open the selection's source: {exc} (pass --source)") from None
    if include_scores:  # read (and check) before anything is written
        scores_table = ScoreTable.open(info["scores_dir"]).read()
    else:
        scores_table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    features = _features(table.schema, with_image=True)
    score_cols = [c for c in features if c not in ("key", "image")]
    shards = plan_shards(table.column("bytes").to_pylist(), limit)
    n_shards = len(shards)
    rows = table.to_pylist()
    stages: dict[str, Path] = {}
    if "parquet" in formats:
        stages["parquet"] = _stage(out / "data" / name)
    if "webdataset" in formats:
        stages["webdataset"] = _stage(out / "wds" / name)
    extensions: set[str] = set()
    shard_of = np.repeat(np.arange(n_shards), [b - a for a, b in shards])
    buffer: list[dict[str, Any]] = []
    tar: tarfile.TarFile | None = None
    bar = tqdm(total=table.num_rows, unit="img", desc="publish", disable=not progress, dynamic_ncols=True)
    try:
        for i, record in _records_in_order(src, table):
            shard = int(shard_of[i])
            row = rows[i]
            ext = image_extension(row["format"])
            extensions.add(ext)
            if "parquet" in stages:
                image = {"bytes": record.data, "path": f"{row['key']}.{ext}"}
                buffer.append({"key": row["key"], "image": image, **{c: row[c] for c in score_cols}})
                if i + 1 == shards[shard][1]:
                    shard_name = f"train-{shard:05d}-of-{n_shards:05d}.parquet"
                    _write_parquet_shard(buffer, features, stages["parquet"] / shard_name)
                    buffer = []
            if "webdataset" in stages:
                if tar is None:
                    # closed at the shard's last row (or on error below)
                    tar = tarfile.open(  # noqa: SIM115
                        stages["webdataset"] / f"train-{shard:05d}.tar", "w", format=tarfile.PAX_FORMAT)
                payload = _json_row({"key": row["key"], **{c: row[c] for c in score_cols}})
                tar.addfile(_tarinfo(f"{row['key']}.{ext}", len(record.data)), io.BytesIO(record.data))
                tar.addfile(_tarinfo(f"{row['key']}.json", len(payload)), io.BytesIO(payload))
                if i + 1 == shards[shard][1]:
                    tar.close()
                    tar = None
            bar.update()
    except BaseException:
        if tar is not None:
            tar.close()
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        bar.close()

    files: list[Path] = []
    for kind, stage in stages.items():
        final = out / ("data" if kind == "parquet" else "wds") / name
        _swap_in(stage, final)
        files.extend(sorted(final.iterdir()))
    num_bytes = sum(p.stat().st_size for p in files if p.suffix == ".parquet") or \
        sum(p.stat().st_size for p in files)

    scores_entry = _write_scores(scores_table, out, name) if include_scores else None
    entry = _config_entry(name, info, table, features, formats, extensions, score_cols, num_bytes,
                          license_for(name, license, gated), description, scores_entry)
    entry["plots"] = _plots(out, name, scores_table, info)
    configs = [c for c in _load_registry(out) if c["name"] != name] + [entry]
    (out / REGISTRY).parent.mkdir(exist_ok=True)
    write_json_atomic(out / REGISTRY, {"package_version": __version__, "configs": configs})
    render_card(out, configs, repo=repo)
    logger.info("publish: %d images in %d shards -> %s", table.num_rows, n_shards, out)
    return PublishResult(out, name, table.num_rows, num_bytes, files)


def webdataset_features(dataset_dir: str | os.PathLike, name: str):
    """datasets Features of the WebDataset tars of config ``name`` (one Image field per extension).

    ``datasets``' WebDataset builder infers fields from the first 5 samples, which misses a format
    that appears later; pass these instead when a config mixes image formats.

    Example:
        >>> webdataset_features("/no/such/dir", "mine")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/dir has no WebDataset config 'mine'
    """
    import datasets

    for config in _load_registry(Path(dataset_dir)):
        if config["name"] == name and config.get("wds_config"):
            info = next(i for i in config["dataset_info"] if i["config_name"] == config["wds_config"])
            return datasets.Features._from_yaml_list(info["features"])
    raise DiversegError(f"{dataset_dir} has no WebDataset config {name!r}")


def _write_parquet_shard(rows: list[dict[str, Any]], features, path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    compression = {name: ("none" if name == "image" else "zstd") for name in table.column_names}
    pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS, compression=compression)


def _config_entry(name: str, info: dict[str, Any], table: pa.Table, features, formats: list[str],
                  extensions: set[str], score_cols: list[str], num_bytes: int, lic: dict[str, Any],
                  description: str | None, scores_entry: dict[str, Any] | None) -> dict[str, Any]:
    """The registry record of one config: everything the card needs."""
    import datasets

    split = {"name": "train", "num_bytes": num_bytes, "num_examples": table.num_rows}
    yaml_configs: list[dict[str, Any]] = []
    dataset_info: list[dict[str, Any]] = []
    wds_config = None
    if "parquet" in formats:
        yaml_configs.append({"config_name": name, "module": "parquet",
                             "data_files": [{"split": "train", "path": f"data/{name}/train-*.parquet"}]})
        dataset_info.append({"config_name": name, "features": features._to_yaml_list(), "splits": [split]})
    if "webdataset" in formats:
        wds_config = name if "parquet" not in formats else f"{name}_wds"
        plain = _features(pa.schema([table.schema.field(c) for c in ["key", *score_cols]]), with_image=False)
        wds_features = datasets.Features({
            **{ext: datasets.Image() for ext in sorted(extensions)},
            "json": plain,
            "__key__": datasets.Value("string"),
            "__url__": datasets.Value("string"),
        })
        yaml_configs.append({"config_name": wds_config, "module": "webdataset",
                             "data_files": [{"split": "train", "path": f"wds/{name}/train-*.tar"}]})
        dataset_info.append({"config_name": wds_config, "features": wds_features._to_yaml_list(),
                             "splits": [split]})
    thetas = info.get("thetas") or {}
    theta_column = next(iter(thetas), None)
    source = info.get("source") or {}
    return {
        "name": name,
        "num_examples": table.num_rows,
        "num_bytes": num_bytes,
        "size_text": f"{num_bytes / 1e6:,.1f} MB",
        "formats": formats,
        "wds_config": wds_config,
        "wds_path": f"wds/{name}/train-*.tar" if wds_config else None,
        "wds_fields": [*sorted(extensions), "json"] if wds_config else [],
        "yaml_configs": yaml_configs,
        "dataset_info": dataset_info,
        "description": description or (
            f"{table.num_rows:,} images selected from `{source.get('spec')}` by the rules below."),
        "source": source,
        "scorers": info.get("scorers", []),
        "rules": info.get("rules", {}),
        "thetas": thetas,
        "theta_column": theta_column,
        "theta_value": thetas.get(theta_column) if theta_column else None,
        "counts": info.get("counts", {}),
        "quality": info.get("quality"),
        "package_version": info.get("package_version", __version__),
        "stats": _stats(table),
        "scores": scores_entry,
        **lic,
    }

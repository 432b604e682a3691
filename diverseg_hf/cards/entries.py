"""What the card says about one published config: its registry entry, statistics and figures.

:func:`config_entry` turns a selection's record (rules, thetas, counts, quality estimate, source)
and the published table into the entry that :meth:`~diverseg_hf.storage.DatasetDir.register` keeps
and :func:`~diverseg_hf.cards.render.render_card` renders; :func:`config_figures` draws the histograms the
card shows.

Example:
    >>> import pyarrow as pa
    >>> stats(pa.table({"width": [4, 8], "height": [2, 2]}))["mean_pixels"]
    12.0
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import DiversegError
from ..quality.basis import load_basis
from ..quality.estimate import QualityEstimate
from ..quality.plots import plot_blockiness, plot_counts, plot_quality
from ..storage import DatasetDir, better_of
from ..storage.formats import PARQUET, SHARD_FORMATS, WEBDATASET
from ..version import __version__

logger = logging.getLogger(__name__)

_COUNT_LABELS = {"sam_masks": "SAM masks per image", "det_objects": "detected objects per image"}


def published_features(schema: pa.Schema, with_image: bool):
    """datasets Features for published rows: key, image (Image), then the score columns."""
    import datasets

    plain = datasets.Features.from_arrow_schema(pa.schema([f for f in schema if f.name != "key"]))
    items: list[tuple[str, Any]] = [("key", datasets.Value("string"))]
    if with_image:
        items.append(("image", datasets.Image()))
    items.extend(plain.items())
    return datasets.Features(dict(items))


def figure_columns(table: pa.Table, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """The columns of ``table`` that :func:`config_figures` draws for a selection described by ``info`` (each
    count column with a theta, then blockiness), as float64 with nulls as NaN.

    Example:
        >>> t = pa.table({"key": ["a"], "sam_masks": [3], "blockiness": [None]})
        >>> figure_columns(t, {"thetas": {"sam_masks": 2}})
        {'sam_masks': array([3.]), 'blockiness': array([nan])}
    """
    names = dict.fromkeys(c for c in [*info["thetas"], "blockiness"] if c in table.column_names)
    return {c: np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64) for c in names}


def config_figures(dataset: DatasetDir, name: str, columns: Mapping[str, np.ndarray], kept: np.ndarray,
                   info: dict[str, Any]) -> list[dict[str, str]]:
    """Histograms of each selection count column (theta dashed) and of blockiness (log axis, ceiling dashed),
    the source's images kept (``kept``, a mask over the rows of ``columns``, see :func:`figure_columns`) and
    dropped in two colours, with their counts; and, where the selection recorded a quality estimate, the
    paper's figure: the source's blockiness against each basis quality's."""
    rows = len(kept)
    plots = []
    for col in [c for c in info["thetas"] if c in columns]:
        label = _COUNT_LABELS.get(col, col)
        path = plot_counts(columns[col], kept, dataset.assets_dir / f"{name}_{col}.png",
                           theta=info["thetas"][col], label=label,
                           title=f"{name}: {label} of {rows:,} source images")
        plots.append({"path": f"assets/{path.name}", "alt": f"{col} histogram of {name}"})
    if "blockiness" in columns:
        path = plot_blockiness(columns["blockiness"], kept, dataset.assets_dir / f"{name}_blockiness.png",
                               ceiling=info["rules"].get("max_blockiness"),
                               title=f"{name}: blockiness of {rows:,} source images")
        plots.append({"path": f"assets/{path.name}", "alt": f"blockiness histogram of {name}"})
    if info.get("quality") and "blockiness" in columns:
        try:
            basis = load_basis(info["rules"].get("basis"))
        except DiversegError as exc:  # the basis the selection used is gone: the card keeps the numbers
            logger.warning("no quality figure for %s: %s", name, exc)
            return plots
        path = plot_quality(columns["blockiness"], basis, dataset.assets_dir / f"{name}_quality.png",
                            estimate=QualityEstimate.from_dict(info["quality"]), target_label=name)
        plots.append({"path": f"assets/{path.name}", "alt": f"source quality estimate of {name} against the basis"})
    return plots


def stats(table: pa.Table) -> dict[str, Any]:
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


def public_value(value: Any) -> Any:
    """``value`` with every absolute local path (at any depth) replaced by its file name.

    Example:
        >>> public_value({"checkpoint": "/home/me/sam_vit_b.pth", "model": "facebook/sam-vit-base", "n": 3})
        {'checkpoint': 'sam_vit_b.pth', 'model': 'facebook/sam-vit-base', 'n': 3}
    """
    if isinstance(value, dict):
        return {k: public_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_value(v) for v in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
        return os.path.basename(value.rstrip("/\\")) or value
    return value


def public_source(source: dict[str, Any]) -> dict[str, Any]:
    """What a published file may say about a source: a Hub dataset by id (and revision), a local one by its
    own name (never a path on the publishing machine).

    Example:
        >>> public_source({"kind": "folder", "spec": "../data/images", "unit_size": 256})
        {'kind': 'folder', 'spec': 'images', 'unit_size': 256}
        >>> public_source({"kind": "hub", "spec": "ILSVRC/imagenet-1k", "revision": "4603483"})["spec"]
        'ILSVRC/imagenet-1k'
    """
    out = public_value(dict(source))
    spec = source.get("spec")
    if source.get("kind") != "hub" and isinstance(spec, str):
        out["spec"] = Path(spec).name or spec
    return out


def _wds_features(table: pa.Table, score_cols: list[str], tar_extension: str):
    """Features of the tars: one image field (every image member is ``<key>.<tar_extension>``), the json."""
    import datasets

    plain = published_features(pa.schema([table.schema.field(c) for c in ["key", *score_cols]]), with_image=False)
    return datasets.Features({
        tar_extension: datasets.Image(),
        "json": plain,  # key, the original format and size, the scores
        "__key__": datasets.Value("string"),
        "__url__": datasets.Value("string"),
    })


def config_entry(name: str, info: dict[str, Any], table: pa.Table, features, formats: list[str],
                 extensions: set[str], score_cols: list[str], num_bytes: int, lic: dict[str, Any],
                 description: str | None, scores_entry: dict[str, Any] | None, generation: str | None = None,
                 tar_extension: str = "jpg") -> dict[str, Any]:
    """The registry record of one config: everything the card needs (no local path: see :func:`public_source`)."""
    split = {"name": "train", "num_bytes": num_bytes, "num_examples": table.num_rows}
    yaml_configs: list[dict[str, Any]] = []
    dataset_info: list[dict[str, Any]] = []
    wds_config = None
    for shard in (SHARD_FORMATS[f] for f in SHARD_FORMATS if f in formats):
        if shard.one_extension:  # tars: one image field named by the config's one extension
            config_name = wds_config = name if PARQUET.name not in formats else f"{name}_wds"
            shard_features = _wds_features(table, score_cols, tar_extension)
        else:
            config_name, shard_features = name, features
        yaml_configs.append({"config_name": config_name, "module": shard.module, "data_files": [
            {"split": "train", "path": shard.pattern(name, generation=generation)}]})
        dataset_info.append({"config_name": config_name, "features": shard_features._to_yaml_list(),
                             "splits": [split]})
    thetas = info.get("thetas") or {}
    theta_column = next(iter(thetas), None)
    raw_source = info.get("source") or {}
    source = public_source(raw_source)
    if description and isinstance(raw_source.get("spec"), str) and raw_source["spec"] != source["spec"]:
        description = description.replace(raw_source["spec"], source["spec"])
    return {
        "name": name,
        "generation": generation,
        "num_examples": table.num_rows,
        "num_bytes": num_bytes,
        "size_text": f"{num_bytes / 1e6:,.1f} MB",
        "formats": formats,
        "extensions": sorted(extensions),
        "wds_config": wds_config,
        "wds_path": WEBDATASET.pattern(name, generation=generation) if wds_config else None,
        "wds_image_field": tar_extension if wds_config else None,
        "wds_fields": [tar_extension, "json"] if wds_config else [],
        "yaml_configs": yaml_configs,
        "dataset_info": dataset_info,
        "description": description or (
            f"{table.num_rows:,} images selected from `{source.get('spec')}` by the rules below."),
        "source": source,
        "scorers": public_value(info.get("scorers", [])),
        "rules": info.get("rules", {}),
        "thetas": thetas,
        "better": {col: better_of(info, col) for col in thetas},
        "theta_column": theta_column,
        "theta_value": thetas.get(theta_column) if theta_column else None,
        "counts": info.get("counts", {}),
        "quality": info.get("quality"),
        "package_version": info.get("package_version", __version__),
        "stats": stats(table),
        "scores": scores_entry,
        **lic,
    }


def webdataset_features(dataset_dir: str | os.PathLike, name: str):
    """datasets Features of the WebDataset tars of config ``name``, as its card declares them: one Image field
    (every image member of a config has the same extension), ``json``, ``__key__`` and ``__url__``.

    Example:
        >>> webdataset_features("/no/such/dir", "mine")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/dir has no WebDataset config 'mine'
    """
    import datasets

    for config in DatasetDir(dataset_dir).configs():
        if config["name"] == name and config.get("wds_config"):
            info = next(i for i in config["dataset_info"] if i["config_name"] == config["wds_config"])
            return datasets.Features._from_yaml_list(info["features"])
    raise DiversegError(f"{dataset_dir} has no WebDataset config {name!r}")

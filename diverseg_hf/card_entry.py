"""What the card says about one published config: its registry entry, statistics and figures.

:func:`config_entry` turns a selection's record (rules, thetas, counts, quality estimate, source)
and the published table into the entry that :meth:`~diverseg_hf.storage.DatasetDir.register` keeps
and :func:`~diverseg_hf.cards.render_card` renders; :func:`config_figures` draws the histograms the
card shows.

Example:
    >>> import pyarrow as pa
    >>> stats(pa.table({"width": [4, 8], "height": [2, 2]}))["mean_pixels"]
    12.0
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import DiversegError
from .plots import plot_histogram
from .storage import DatasetDir
from .version import __version__

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


def config_figures(dataset: DatasetDir, name: str, scores: pa.Table, info: dict[str, Any]) -> list[dict[str, str]]:
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
        path = dataset.assets_dir / f"{name}_{col}.png"
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


def config_entry(name: str, info: dict[str, Any], table: pa.Table, features, formats: list[str],
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
                             "data_files": [{"split": "train", "path": DatasetDir.parquet_pattern(name)}]})
        dataset_info.append({"config_name": name, "features": features._to_yaml_list(), "splits": [split]})
    if "webdataset" in formats:
        wds_config = name if "parquet" not in formats else f"{name}_wds"
        plain = published_features(pa.schema([table.schema.field(c) for c in ["key", *score_cols]]), with_image=False)
        wds_features = datasets.Features({
            **{ext: datasets.Image() for ext in sorted(extensions)},
            "json": plain,
            "__key__": datasets.Value("string"),
            "__url__": datasets.Value("string"),
        })
        yaml_configs.append({"config_name": wds_config, "module": "webdataset",
                             "data_files": [{"split": "train", "path": DatasetDir.tar_pattern(name)}]})
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
        "wds_path": DatasetDir.tar_pattern(name) if wds_config else None,
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
        "stats": stats(table),
        "scores": scores_entry,
        **lic,
    }


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

    for config in DatasetDir(dataset_dir).configs():
        if config["name"] == name and config.get("wds_config"):
            info = next(i for i in config["dataset_info"] if i["config_name"] == config["wds_config"])
            return datasets.Features._from_yaml_list(info["features"])
    raise DiversegError(f"{dataset_dir} has no WebDataset config {name!r}")

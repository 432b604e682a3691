"""Hub sources: a Hugging Face dataset id (or a local dataset folder) streamed with ``datasets``.

One unit per dataset shard (``IterableDataset.shard``); images are read as their original bytes
(``Image(decode=False)``); key = the ``key_column`` when given, else a ``key``/``__key__`` column
when the dataset has one, else shard + row; a key repeated within a shard becomes ``key%23n``
(:class:`diverseg_hf.keys.KeyCounter`; repeats across shards are left to ``select``, which drops
every row of a key that is not unique).

A dataset on the Hub is pinned: the source resolves ``revision`` (default the main branch) to its
commit with ``huggingface_hub`` (``HF_ENDPOINT`` honoured) when opened, records that commit as its
``revision``, and every unit reads that commit, so a score table, its resume and ``publish`` all
read the same data even if the dataset moves on meanwhile.

Example:
    >>> open_hub_source("no-such-org/no-such-dataset-x", None, "train", None, None, None)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiversegError, ParameterError
from ..keys import KeyCounter, path_key
from .base import IMAGE_COLUMN_NAMES, KEY_COLUMN_NAMES, Record, Source, Unit, cell_record

logger = logging.getLogger(__name__)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubUnit(Unit):
    dataset: str = ""
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    shard: int = 0
    num_shards: int = 1
    image_column: str | None = None
    key_column: str | None = None

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        ds, image_col = open_hub(self.dataset, self.config, self.split, self.revision, self.image_column)
        if self.num_shards > 1:
            ds = ds.shard(num_shards=self.num_shards, index=self.shard)
        unique = KeyCounter()
        root = self.dataset if Path(self.dataset).is_dir() else None  # path cells: only inside a local folder
        for row, example in enumerate(ds):
            raw_key = example.get(self.key_column) if self.key_column else None
            key = path_key(str(raw_key)) if raw_key is not None else f"{self.shard:05d}-{row:08d}"
            origin = f"{self.dataset}:{self.split}#shard={self.shard}&row={row}"
            yield cell_record(unique(key), example[image_col], root, origin)


class HubSource(Source):
    kind = "hub"


def resolve_commit(dataset: str, revision: str | None) -> str | None:
    """The commit ``revision`` of the Hub dataset ``dataset`` is at now (None for a local folder or offline)."""
    if Path(dataset).exists():
        return revision
    if revision and _COMMIT.match(revision):
        return revision
    import huggingface_hub

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        logger.warning("offline: %s is read at %s without pinning it to a commit", dataset, revision or "main")
        return revision
    try:
        return huggingface_hub.HfApi().dataset_info(dataset, revision=revision).sha
    except Exception as exc:
        where = f" at revision {revision!r}" if revision else ""
        raise DiversegError(f"cannot open dataset {dataset!r}{where}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def open_hub(dataset: str, config: str | None, split: str, revision: str | None, image_column: str | None):
    import datasets

    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=True, revision=revision)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DiversegError(f"cannot open dataset {dataset!r}: {type(exc).__name__}: {first}") from None
    features = ds.features or {}
    if image_column is not None and image_column not in features:
        raise ParameterError("image_column", f"{image_column!r} is not a column of {dataset!r} "
                                             f"(columns: {', '.join(features)})")
    col = image_column
    if col is None:
        images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
        col = images[0] if images else next((n for n in IMAGE_COLUMN_NAMES if n in features), None)
    if col is None:
        raise DiversegError(f"dataset {dataset!r} has no image column (columns: {list(features)})")
    if isinstance(features[col], datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds, col


def open_hub_source(spec: str, config: str | None, split: str, revision: str | None,
                    image_column: str | None, key_column: str | None) -> HubSource:
    dataset = spec.removeprefix("hf://datasets/").removeprefix("hf://")
    commit = resolve_commit(dataset, revision)
    ds, image_col = open_hub(dataset, config, split, commit, image_column)
    features = ds.features or {}
    if key_column is not None and key_column not in features:
        raise ParameterError("key_column", f"{key_column!r} is not a column of {dataset!r} "
                                           f"(columns: {', '.join(features)})")
    key_column = key_column or next((c for c in KEY_COLUMN_NAMES if c in features), None)
    shards = max(int(ds.num_shards), 1)
    units: list[Unit] = [
        HubUnit(f"shard-{i:05d}", None, dataset=dataset, config=config, split=split, revision=commit,
                shard=i, num_shards=shards, image_column=image_col, key_column=key_column)
        for i in range(shards)
    ]
    options = {"config": config, "split": split, "revision": commit, "image_column": image_col,
               "key_column": key_column}
    return HubSource(dataset, units, options)

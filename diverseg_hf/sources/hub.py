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
from typing import Any

from ..errors import DiversegError, ParameterError
from ..keys import KeyCounter, path_key
from .base import IMAGE_COLUMN_NAMES, KEY_COLUMN_NAMES, Record, Source, Unit, cell_record, check_image_column

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
        unique = KeyCounter()
        root = self.dataset if Path(self.dataset).is_dir() else None  # path cells: only inside a local folder
        for row, example in enumerate(stream_rows(ds, self.shard, self.num_shards)):
            raw_key = example.get(self.key_column) if self.key_column else None
            key = path_key(str(raw_key)) if raw_key is not None else f"{self.shard:05d}-{row:08d}"
            origin = f"{self.dataset}:{self.split}#shard={self.shard}&row={row}"
            yield cell_record(unique(key), example[image_col], root, origin)


def stream_rows(ds: Any, shard: int, num_shards: int, batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """The one Hub streamer: the rows of shard ``shard`` of ``num_shards`` of a streaming dataset, in order.

    ``IterableDataset.iter`` (unlike ``__iter__``) does not split shards again inside a DataLoader
    worker, so the SR readers stream with it too.
    """
    part = ds.shard(num_shards=num_shards, index=shard, contiguous=True) if num_shards > 1 else ds
    for batch in part.iter(batch_size=batch_size):
        names = list(batch)
        for values in zip(*(batch[n] for n in names)):
            yield dict(zip(names, values))


def _holds_images(feature: Any) -> bool:
    """An ``Image`` feature, binary, or a ``{bytes, path}`` struct written without the Image metadata."""
    import datasets

    if isinstance(feature, datasets.Image):
        return True
    if isinstance(feature, dict):
        return "bytes" in feature
    return getattr(feature, "dtype", None) in ("binary", "large_binary")


def undecoded(ds: Any, image_col: str | None, where: str) -> tuple[Any, str]:
    """A ``datasets`` dataset whose image column (checked by the one column check) gives encoded bytes.

    An ``Image`` column is cast to ``Image(decode=False)`` (rows carry ``{bytes, path}``, never a decoded
    image). A streaming dataset whose features are unknown is taken at its word (``image_col``).
    """
    import datasets

    features = ds.features
    if features is None:
        return ds, image_col or IMAGE_COLUMN_NAMES[0]
    col = check_image_column({name: _holds_images(f) for name, f in features.items()}, image_col, where)
    if isinstance(features[col], datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds, col


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


def open_hub(dataset: str, config: str | None, split: str, revision: str | None, image_column: str | None,
             streaming: bool = True) -> tuple[Any, str]:
    """``load_dataset`` (streaming by default) with its image column checked and left undecoded."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=streaming, revision=revision)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DiversegError(f"cannot open dataset {dataset!r}: {type(exc).__name__}: {first}") from None
    return undecoded(ds, image_column, repr(dataset))


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

"""Hub sources: a Hugging Face dataset id (or a local dataset folder) streamed with ``datasets``.

One unit per dataset shard (``IterableDataset.shard``); images are read as their original bytes
(``Image(decode=False)``); key = the ``key_column`` when given, else shard + row. ``HF_ENDPOINT`` is
honoured by ``datasets`` itself.

Example:
    >>> open_hub_source("no-such-org/no-such-dataset-x", None, "train", None, None, None)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

from ..errors import DiversegError
from ..keys import encode_key
from .base import IMAGE_COLUMN_NAMES, Record, Source, Unit, cell_record


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
        for row, example in enumerate(ds):
            raw_key = example.get(self.key_column) if self.key_column else None
            key = encode_key(str(raw_key)) if raw_key is not None else f"{self.shard:05d}-{row:08d}"
            origin = f"{self.dataset}:{self.split}#shard={self.shard}&row={row}"
            yield cell_record(key, example[image_col], None, origin)


class HubSource(Source):
    kind = "hub"


def open_hub(dataset: str, config: str | None, split: str, revision: str | None, image_column: str | None):
    import datasets

    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=True, revision=revision)
    except Exception as exc:
        raise DiversegError(f"cannot open dataset {dataset!r}: {type(exc).__name__}: {exc}") from exc
    features = ds.features or {}
    col = image_column
    if col is None:
        images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
        col = images[0] if images else next((n for n in IMAGE_COLUMN_NAMES if n in features), None)
    if col is None or col not in features:
        raise DiversegError(f"dataset {dataset!r} has no image column (columns: {list(features)})")
    if isinstance(features[col], datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds, col


def open_hub_source(spec: str, config: str | None, split: str, revision: str | None,
                     image_column: str | None, key_column: str | None) -> HubSource:
    dataset = spec.removeprefix("hf://datasets/").removeprefix("hf://")
    ds, image_col = open_hub(dataset, config, split, revision, image_column)
    shards = max(int(ds.num_shards), 1)
    units: list[Unit] = [
        HubUnit(f"shard-{i:05d}", None, dataset=dataset, config=config, split=split, revision=revision,
                shard=i, num_shards=shards, image_column=image_col, key_column=key_column)
        for i in range(shards)
    ]
    options = {"config": config, "split": split, "revision": revision, "image_column": image_col,
               "key_column": key_column}
    return HubSource(dataset, units, options)

"""Re-threshold a published subset without GPUs: select again from the ``scores`` config it carries.

:func:`select_published` reads split ``NAME`` of the ``scores`` config of a published dataset (a dataset
folder or a Hub repo: :class:`~diverseg_hf.hub.published.PublishedDataset`) into a score table under
``SELECTION/scores/`` and applies :func:`diverseg_hf.select.select`'s rules to it, so ``diverseg publish
SELECTION`` then publishes the new subset. The selection records where its images are read from:

- a stricter rule (every kept image is in config ``NAME``): the published config itself, its shards'
  original bytes (nothing else is read);
- a looser one: the source the config was made from, as its registry (a local folder) or card records
  it; a source that cannot be reached stops ``publish`` with one line naming ``--source``, with which the
  images are read from where they are now (a local source is recorded by its folder's name only).

Example:
    >>> select_published("/no/such/folder", "/tmp/sel", config="mine")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: /no/such/folder is neither a dataset folder nor a Hub dataset id (org/name)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .hub.published import PublishedDataset
from .scoring import get_scorer_class, scorer_names
from .select import SelectionResult, select
from .storage import ScoreTable, load_selection, write_selection

logger = logging.getLogger(__name__)

SCORES_DIR = "scores"
UNIT_ID = "published-scores"


def _scorers(entry: dict[str, Any] | None, columns: list[str]) -> list[dict[str, Any]]:
    """The scorers of the score table: as the registry records them, else the registered ones whose columns
    the table has."""
    if entry and entry.get("scorers"):
        return entry["scorers"]
    classes = [get_scorer_class(n) for n in scorer_names()]
    return [{"name": s.name, "options": {}, "settings": {}, "columns": dict(s.columns),
             "lower_is_better": sorted(s.lower_is_better)}
            for s in classes if s.columns and all(c in columns for c in s.columns)]


def read_published_scores(dataset: PublishedDataset, config: str, out: str | os.PathLike) -> ScoreTable:
    """Write the score table config ``config`` was selected from (its ``scores`` split) as a score table
    folder ``out``; its header records the source the config was made from."""
    table = pa.concat_tables([pq.read_table(p) for p in dataset.scores_files(config)]).replace_schema_metadata(None)
    header = {"source": dataset.source_of(config) or {}, "limit": None,
              "scorers": _scorers(dataset.entry(config), table.column_names), "columns": table.column_names,
              "published": dataset.describe(config)}
    store = ScoreTable.create(Path(out), header, [{"id": UNIT_ID, "size": table.num_rows, "max_records": None}],
                              overwrite=True)
    store.commit(UNIT_ID, table)
    return store


def select_published(dataset: str | os.PathLike, out: str | os.PathLike, *, config: str,
                     revision: str | None = None, **rules: Any) -> SelectionResult:
    """Select from config ``config`` of the published ``dataset`` (folder or Hub id) by ``rules`` (those of
    :func:`diverseg_hf.select.select`), without GPUs; see the module docstring.

    Example:
        >>> select_published("my-org/diverseg", "sel", config="I", max_blockiness=3.0)  # doctest: +SKIP
        >>> # then: diverseg publish sel --out stricter/ --name I3
    """
    published = PublishedDataset(dataset, revision)
    store = read_published_scores(published, config, Path(out) / SCORES_DIR)
    result = select(store.root, out, **rules)
    table, info = load_selection(out)
    in_config = set()
    for path in published.files(config):
        in_config.update(pq.read_table(path, columns=["key"]).column("key").to_pylist())
    stricter = set(table.column("key").to_pylist()) <= in_config
    if stricter:
        info["source"] = published.describe(config)
    info["published"] = {**published.describe(config), "images_from": "config" if stricter else "source"}
    write_selection(out, table, info)
    logger.info("select: %s; images from %s", result, f"config {config}" if stricter else "the recorded source")
    return result

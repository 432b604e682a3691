"""The official DiverSeg lists: read them, match their entries to a source's images, re-key the matches.

Each list line (``n01440764/n01440764_18.JPEG``, PASS ``0/0a0bf4db55141fcfff5da2c8655f93.jpg``) is
matched to a source image by its file name without suffix (the ImageNet-on-the-Hub form
``<name>_<synset>.JPEG`` is understood too); the published key is the list path without suffix
(dot-free, :mod:`diverseg_hf.keys`).

Example:
    >>> list_name("train/n01440764/n01440764_18.JPEG"), list_name("n01440764_18_n01440764.JPEG")
    ('n01440764_18', 'n01440764_18')
    >>> list_key("n01440764/n01440764_18.JPEG")
    'n01440764/n01440764_18'
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
from tqdm import tqdm

from ..errors import DiversegError
from ..keys import decode_key, encode_key
from ..scoring.run import prepare_records
from ..sources import FolderUnit, Record, Source, Unit
from ..storage import BASE_SCHEMA

_IMAGENET_HUB_NAME = re.compile(r"^(n\d{8})_(\d+)_(n\d{8})$")
#: Score-table schema of a list build: identity and decode check, no scores, plus the list path.
LIST_SCHEMA = pa.schema([*BASE_SCHEMA, pa.field("list_path", pa.string()), pa.field("error", pa.string())])


def read_list(path: str | os.PathLike) -> list[str]:
    """Relative image paths of an official list file, one per line (blank lines and ``#`` comments skipped).

    Example:
        >>> read_list("/no/such/list.txt")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such list file: /no/such/list.txt
    """
    path = Path(path)
    if not path.is_file():
        raise DiversegError(f"no such list file: {path}")
    entries: list[str] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        rel = line.strip().replace("\\", "/")
        if not rel or rel.startswith("#"):
            continue
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise DiversegError(f"{path}:{number}: list paths must be relative, got {rel!r}")
        name = list_name(rel)
        if name in seen:
            raise DiversegError(f"{path}:{number}: {rel!r} has the same file name as {seen[name]!r}")
        seen[name] = rel
        entries.append(rel)
    if not entries:
        raise DiversegError(f"{path} lists no images")
    return entries


def list_name(path: str) -> str:
    """The name a list entry and a source image are matched by: the file name without suffix.

    ImageNet on the Hub names train images ``<name>_<synset>.JPEG``; the trailing synset is dropped.
    """
    stem = PurePosixPath(path).name.split(".", 1)[0]
    match = _IMAGENET_HUB_NAME.match(stem)
    if match and match.group(1) == match.group(3):
        return f"{match.group(1)}_{match.group(2)}"
    return stem


def list_key(path: str) -> str:
    """Published key of a list entry: its path without suffix, dot-free (``n01440764/n01440764_18``)."""
    pure = PurePosixPath(path)
    return encode_key(str(pure.with_name(pure.name.split(".", 1)[0])))


def _record_name(record: Record) -> str:
    """A source record's file name for matching: its image path when the source gives one, else its key."""
    path = record.extra.get("path") if record.extra else None
    return list_name(path or decode_key(record.key))


@dataclass(frozen=True)
class ListUnit(Unit):
    """A unit of another source, restricted to listed images and re-keyed by the list."""

    inner: Unit | None = None
    mapping: tuple[tuple[str, str], ...] = ()  # (source key, list key), in source order

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        to_list = dict(self.mapping)
        for record in self.inner.records(set(to_list)):  # type: ignore[union-attr]
            yield Record(to_list[record.key], record.data, record.origin, record.extra)


class ListSource(Source):
    """The listed images of a source, keyed by the list (what :func:`build` publishes with ``from_list``)."""

    kind = "list"


def match_list(entries: list[str], src: Source, progress: bool) -> tuple[list[ListUnit], list[list[dict]], dict]:
    """One pass over ``src``: the listed records per unit (and their score-table rows), plus what is missing."""
    wanted = {list_name(e): e for e in entries}
    found: dict[str, str] = {}
    duplicates: list[dict[str, str]] = []
    units: list[ListUnit] = []
    unit_rows: list[list[dict]] = []
    bar = tqdm(total=len(entries), unit="img", desc="match list", disable=not progress, dynamic_ncols=True)
    for unit in src.units():
        keys = None
        if isinstance(unit, FolderUnit):  # names are known without reading: read only listed files
            keys = {k for f, k in zip(unit.files, unit.keys) if list_name(f) in wanted}
            if not keys:
                continue
        mapping: list[tuple[str, str]] = []
        rows: list[dict] = []
        for record in unit.records(keys):
            entry = wanted.get(_record_name(record))
            if entry is None:
                continue
            if entry in found:
                duplicates.append({"path": entry, "origin": record.origin, "used": found[entry]})
                continue
            found[entry] = record.origin
            mapping.append((record.key, list_key(entry)))
            rows.append(_row(list_key(entry), entry, record))
            bar.update()
        if mapping:
            units.append(ListUnit(f"list-{unit.id}", len(mapping), inner=unit, mapping=tuple(mapping)))
            unit_rows.append(rows)
    missing = len(entries) - len(found)
    if missing:  # the bar ends at 100%: the misses are counted, not left unfinished
        bar.set_postfix(missing=missing)
        bar.update(missing)
    bar.close()
    report = {"listed": len(entries), "found": len(found),
              "missing": [e for e in entries if e not in found], "duplicates": duplicates}
    return units, unit_rows, report


def _row(key: str, entry: str, record: Record) -> dict[str, Any]:
    """Score-table row of a listed image: identity, size and decode check as in scoring, no scores."""
    (row,), _ = prepare_records([dataclasses.replace(record, key=key)], [])
    return {**row, "list_path": entry}


"""The score table: one Parquet shard per source unit plus a manifest, committed atomically per unit.

Layout of ``SCORES_DIR``::

    scores.json              manifest: source, scorers + settings, version, units, counts, complete
    scores.journal           counts of the units committed since the manifest was written (one line each)
    units/<unit-id>.parquet  one row per record of that unit, in source order
    table-cache.arrow        concatenated table (derived data, safe to delete)

A unit file exists only when complete (written to a temporary file, fsynced, renamed), so a run
killed at any moment and re-run skips the complete units and gives a table equal row for row to an
uninterrupted one. A commit appends one line to the journal (:mod:`.journal`) instead of rewriting
the manifest, so its cost does not grow with the number of units; the journal is folded into the
manifest when the table is opened for writing and when it completes. The unit files are the truth:
counts missing from manifest and journal (a kill between the rename and the append) are read back from
the file. On resume, a unit whose source fingerprint changed (a file edited in place, a shard
replaced) is scored again, and unit files the source no longer has are removed.

Example:
    >>> import tempfile, pyarrow as pa
    >>> root = tempfile.mkdtemp()
    >>> header = {"source": {"kind": "folder", "spec": "x"}, "limit": None, "scorers": [], "columns": []}
    >>> table = ScoreTable.create(root, header, [{"id": "u0", "size": 1, "max_records": None}])
    >>> table.complete
    False
    >>> table.commit("u0", table_schema([]).empty_table())
    >>> table.complete, ScoreTable.open(root).read().num_rows
    (True, 0)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DiversegError
from ..files import TEMP_GLOB, write_atomic, write_json_atomic
from ..version import __version__
from .journal import Journal

logger = logging.getLogger(__name__)

MANIFEST = "scores.json"
JOURNAL = "scores.journal"
UNITS_DIR = "units"
#: Concatenated table cache of :meth:`ScoreTable.read` (derived data; safe to delete).
CACHE = "table-cache.arrow"
METADATA_KEY = b"diverseg"
FORMAT_VERSION = 1

#: Columns every score table has, before the scorers' own columns (``error`` comes last).
BASE_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("origin", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
    ]
)


class HasColumns(Protocol):
    """Anything that declares score columns (a scorer class or instance): name -> Arrow type alias."""

    columns: Mapping[str, str]


def table_schema(scorers: Iterable[HasColumns]) -> pa.Schema:
    """Schema of a score table produced by ``scorers``: base columns, their columns, ``error``.

    Example:
        >>> table_schema([]).names[-2:]
        ['format', 'error']
    """
    fields = list(BASE_SCHEMA)
    for scorer in scorers:
        fields.extend(pa.field(name, pa.type_for_alias(kind)) for name, kind in scorer.columns.items())
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


@dataclass
class ScoreTable:
    """A score table folder: manifest + committed unit shards.

    ``header`` is what must match on resume (source, scorers and settings, limit, unit ids).
    """

    root: Path
    header: dict[str, Any]
    units: list[dict[str, Any]]
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ids = frozenset(u["id"] for u in self.units)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def journal(self) -> Journal:
        return Journal(self.root / JOURNAL)

    def unit_path(self, unit_id: str) -> Path:
        return self.root / UNITS_DIR / f"{unit_id}.parquet"

    @classmethod
    def create(cls, root: Path, header: dict[str, Any], units: list[dict[str, Any]],
               overwrite: bool = False, resume: bool = True,
               compared: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> ScoreTable:
        """Start or resume a table at ``root``; a different header on resume is an error.

        ``compared`` maps a header to the part of it that must match on resume (default: all of it);
        the new header is recorded either way.
        """
        root = Path(root)
        manifest = root / MANIFEST
        old_units: list[dict[str, Any]] = []
        if root.exists() and overwrite:
            if manifest.exists() or (root / UNITS_DIR).exists():
                shutil.rmtree(root / UNITS_DIR, ignore_errors=True)
                for name in (MANIFEST, JOURNAL, CACHE):
                    (root / name).unlink(missing_ok=True)
        elif manifest.exists():
            old = json.loads(manifest.read_text())
            if not resume:
                raise DiversegError(f"{root} already holds a score table; pass --resume or --overwrite")
            view = compared or (lambda h: h)
            before, now = view(old.get("header", {})), view(header)
            diff = [k for k in now if before.get(k) != now[k]]
            if diff:
                raise DiversegError(
                    f"{root} holds a score table made with different {', '.join(diff)}; "
                    "use --overwrite to start afresh or another --out"
                )
            old_units = old.get("units", [])
        elif any((root / UNITS_DIR).glob("*.parquet")):  # an empty one: a first manifest write failed (full disk)
            raise DiversegError(f"{root} has unit files but no {MANIFEST}; use --overwrite")
        (root / UNITS_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (root / UNITS_DIR).glob(TEMP_GLOB):
            stale.unlink()
        table = cls(root, header, units)
        table._drop_stale(old_units)
        table._reconcile()
        table._compact()
        return table

    @classmethod
    def open(cls, root: str | os.PathLike) -> ScoreTable:
        """Open an existing table for reading."""
        root = Path(root)
        manifest = root / MANIFEST
        if not manifest.exists():
            raise DiversegError(f"{root} is not a score table (no {MANIFEST}); run diverseg score first")
        data = json.loads(manifest.read_text())
        table = cls(root, data["header"], data["units"], data.get("unit_counts", {}))
        for entry in table.journal.entries():
            if entry.get("unit") in table._ids:
                table.counts[entry["unit"]] = entry["counts"]
        table._reconcile(trust_manifest=True)
        return table

    def _drop_stale(self, old_units: list[dict[str, Any]]) -> None:
        """Remove the unit files of units the source no longer has or whose entry (fingerprint) changed."""
        now = {u["id"]: u for u in self.units}
        changed = [u["id"] for u in old_units if now.get(u["id"]) != u]
        for unit_id in changed:
            self.unit_path(unit_id).unlink(missing_ok=True)
        if changed:
            logger.warning("%d unit(s) of %s changed in the source since they were scored (or left it): "
                           "scoring them again", len(changed), self.root)

    def _reconcile(self, trust_manifest: bool = False) -> None:
        """Counts of the unit files present (a kill may land between commit and manifest write).

        With ``trust_manifest``, counts the manifest already holds are reused for files present.
        """
        known = self.counts if trust_manifest else {}
        self.counts = {}
        for unit in self.units:
            path = self.unit_path(unit["id"])
            if path.exists():
                self.counts[unit["id"]] = known.get(unit["id"]) or _counts(pq.read_table(path, columns=["error"]))

    def done(self) -> set[str]:
        return set(self.counts)

    @property
    def complete(self) -> bool:
        return len(self.counts) == len(self._ids)  # counts only ever holds ids of self.units

    def commit(self, unit_id: str, table: pa.Table) -> None:
        """Atomically write one unit's table, then record it: a journal line, or the manifest at the end.

        The cost does not depend on how many units the table has (the manifest is rewritten only when
        the last unit lands).
        """
        if unit_id not in self._ids:
            raise DiversegError(f"unit {unit_id!r} is not a unit of the score table {self.root}")
        meta = {METADATA_KEY: json.dumps({"unit": unit_id, **self.header}).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        write_atomic(self.unit_path(unit_id), lambda fh: pq.write_table(table, fh, compression="zstd"))
        self.counts[unit_id] = _counts(table)
        if self.complete:
            self._compact()
        else:
            self.journal.append({"unit": unit_id, "counts": self.counts[unit_id]})

    def totals(self) -> dict[str, Any]:
        total: Counter = Counter()
        kinds: Counter = Counter()
        for c in self.counts.values():
            total.update({k: c[k] for k in ("rows", "scored", "undefined", "errors")})
            kinds.update(c["errors_by_kind"])
        return {**{k: total[k] for k in ("rows", "scored", "undefined", "errors")},
                "errors_by_kind": dict(sorted(kinds.items()))}

    def write_manifest(self) -> None:
        payload = {
            "format": FORMAT_VERSION,
            "package_version": __version__,
            "complete": self.complete,
            "header": self.header,
            "totals": self.totals(),
            "units": self.units,
            "unit_counts": {u["id"]: self.counts[u["id"]] for u in self.units if u["id"] in self.counts},
        }
        write_json_atomic(self.manifest_path, payload)

    def _compact(self) -> None:
        """Fold the journal into the manifest: write the manifest, then remove the journal."""
        self.write_manifest()
        self.journal.remove()

    def read(self, columns: list[str] | None = None, cache: bool = True) -> pa.Table:
        """All committed units, in unit order, as one table.

        With ``cache``, the concatenated table is kept in ``CACHE`` (uncompressed Arrow IPC, memory
        mapped), tagged with the unit files' sizes and mtimes, so re-reading a large table is instant.
        """
        self._check_complete()
        if not cache:
            return self._concat(columns)
        stamp = self._fingerprint()
        path = self.root / CACHE
        table = self._cached(path, stamp)
        if table is None:
            concat = self._concat(None)
            schema = concat.schema.with_metadata({**(concat.schema.metadata or {}), b"fingerprint": stamp})

            def write(fh: Any) -> None:
                with pa.ipc.new_file(fh, schema) as writer:
                    writer.write_table(concat.replace_schema_metadata(schema.metadata))

            write_atomic(path, write)
            del concat
            table = self._cached(path, stamp)  # the same arrays whether the cache was there or not
        return table.select(columns) if columns else table

    @staticmethod
    def _cached(path: Path, stamp: bytes) -> pa.Table | None:
        """The cached table at ``path`` when it is there, readable and of the current unit files."""
        if not path.exists():
            return None
        try:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
            if (reader.schema.metadata or {}).get(b"fingerprint") == stamp:
                return reader.read_all()
        except (pa.ArrowInvalid, OSError):
            logger.info("rebuilding unreadable cache %s", path)
        return None

    def _check_complete(self) -> None:
        if not self.complete:
            missing = sum(1 for u in self.units if u["id"] not in self.counts)
            raise DiversegError(
                f"score table {self.root} is incomplete ({missing} of {len(self.units)} units missing); "
                "re-run diverseg score on it to resume"
            )

    def schema(self) -> pa.Schema:
        """The table's schema (that of its first unit file; the base columns when it has no units)."""
        self._check_complete()
        return pq.read_schema(self.unit_path(self.units[0]["id"])) if self.units else table_schema([])

    def iter_units(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Each committed unit's rows (only ``columns`` when given), in unit order: the table without
        holding it whole (memory bounded by one unit).

        Example:
            >>> import tempfile
            >>> t = ScoreTable.create(tempfile.mkdtemp(), {"source": {}}, [{"id": "u0", "size": 0}])
            >>> t.commit("u0", table_schema([]).empty_table())
            >>> [u.num_rows for u in t.iter_units(["key"])]
            [0]
        """
        self._check_complete()
        for unit in self.units:
            yield pq.read_table(self.unit_path(unit["id"]), columns=columns)

    def _concat(self, columns: list[str] | None) -> pa.Table:
        tables = [pq.read_table(self.unit_path(u["id"]), columns=columns) for u in self.units]
        return pa.concat_tables(tables) if tables else table_schema([]).empty_table()

    def _fingerprint(self) -> bytes:
        stats = []
        for unit in self.units:
            st = self.unit_path(unit["id"]).stat()
            stats.append((unit["id"], st.st_size, st.st_mtime_ns))
        return hashlib.sha256(json.dumps(stats).encode()).hexdigest().encode()


def _counts(table: pa.Table) -> dict[str, Any]:
    errors = table.column("error").to_pylist()
    kinds = Counter(e.split(":", 1)[0] for e in errors if e)
    undefined = kinds.pop("undefined", 0)
    return {
        "rows": table.num_rows,
        "scored": sum(1 for e in errors if e is None),
        "undefined": undefined,
        "errors": sum(kinds.values()),
        "errors_by_kind": dict(kinds),
    }

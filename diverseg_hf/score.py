"""Phase 1: source -> score table (Parquet shards, one per source unit), resumable exactly once.

Layout of ``SCORES_DIR``::

    scores.json              manifest: source, scorers + settings, version, units, counts, complete
    units/<unit-id>.parquet  one row per record of that unit, in source order

Each unit is scored by the pure function :func:`score_unit` (any engine can call it), written to a
temporary file in ``units/``, fsynced and renamed into place (:meth:`ScoreTable.commit`), so a unit
file exists only when complete. A re-run skips complete units; a run killed at any moment and
re-run gives a table equal row for row to an uninterrupted one.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src / "flat.png")
    >>> summary = score(str(src), pathlib.Path(tempfile.mkdtemp()) / "scores", progress=False)
    >>> summary.rows, summary.undefined
    (1, 1)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import DiversegError, ImageError, is_out_of_memory
from .files import TEMP_GLOB, write_atomic, write_json_atomic
from .images import decode_rgb, probe
from .scoring import Scorer, create_scorer, get_scorer_class
from .sources import DEFAULT_UNIT_SIZE, Record, Source, Unit, open_source

logger = logging.getLogger(__name__)

MANIFEST = "scores.json"
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

#: Scorer constructor options that the engine fills in when the scorer's ``__init__`` accepts them.
ENGINE_OPTIONS = ("device", "dtype", "batch_size")

ScorerSpec = tuple[str, dict[str, Any]]


# ----------------------------------------------------------------------------- scoring one unit


def table_schema(scorers: Sequence[Scorer]) -> pa.Schema:
    """Schema of a score table produced by ``scorers``."""
    fields = list(BASE_SCHEMA)
    for scorer in scorers:
        fields.extend(pa.field(name, pa.type_for_alias(kind)) for name, kind in scorer.columns.items())
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def _join_errors(*reasons: str | None) -> str | None:
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None


def prepare_records(records: Iterable[Record], scorers: Sequence[Scorer]) -> tuple[list[dict], list]:
    """Decode each record once, fill the base columns, run ``scorers`` on the good images.

    Returns ``(rows, images)``: one row dict per record and the decoded RGB array (None where the
    record could not be decoded; its ``error`` holds the :class:`ImageError` reason).
    """
    rows: list[dict] = []
    images: list[np.ndarray | None] = []
    for record in records:
        row: dict[str, Any] = {
            "key": record.key,
            "origin": record.origin,
            "sha256": hashlib.sha256(record.data).hexdigest(),
            "bytes": len(record.data),
            "width": None,
            "height": None,
            "format": None,
            "error": None,
        }
        rgb = None
        try:
            if record.error:  # the source could not hand over the bytes
                row["error"] = record.error
            else:
                info = probe(record.data)
                row["format"] = info.format
                row["width"], row["height"] = info.width, info.height
                rgb = decode_rgb(record.data)
                row["height"], row["width"] = int(rgb.shape[0]), int(rgb.shape[1])  # after EXIF rotation
        except ImageError as exc:
            row["error"] = exc.reason
        rows.append(row)
        images.append(rgb)
    for scorer in scorers:
        _merge(rows, images, scorer)
    return rows, images


def run_scorer(scorer: Scorer, images: list[np.ndarray], batch_size: int) -> dict[str, list]:
    """Call ``scorer`` over ``images`` in batches; never loses an image.

    Out of memory: the batch is halved and retried (logged). Any other exception: the batch is
    retried one image at a time, and an image that still fails gets the exception as its error.
    """
    out: dict[str, list] = {name: [] for name in [*scorer.columns, "error"]}
    start = 0
    size = max(1, batch_size)
    while start < len(images):
        chunk = images[start : start + size]
        try:
            result = scorer(chunk)
        except Exception as exc:
            if is_out_of_memory(exc) and size > 1:
                size = max(1, size // 2)
                logger.warning("%s: out of memory; retrying with batch size %d", scorer.name, size)
                _empty_cache()
                continue
            if len(chunk) > 1:
                result = _one_by_one(scorer, chunk)
            else:
                kind = "oom" if is_out_of_memory(exc) else "scorer"
                result = {name: [None] for name in scorer.columns}
                result["error"] = [f"{kind}: {scorer.name}: {type(exc).__name__}: {exc}"]
        for name in out:
            values = result.get(name) or [None] * len(chunk)
            if len(values) != len(chunk):
                raise DiversegError(f"scorer {scorer.name} returned {len(values)} {name!r} values for {len(chunk)}")
            out[name].extend(values)
        start += len(chunk)
    return out


def _one_by_one(scorer: Scorer, chunk: list[np.ndarray]) -> dict[str, list]:
    parts = [run_scorer(scorer, [image], 1) for image in chunk]
    return {name: [p[name][0] for p in parts] for name in parts[0]}


def _empty_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _merge(rows: list[dict], images: list, scorer: Scorer, batch_size: int | None = None) -> None:
    """Run ``scorer`` on the decodable images of ``rows`` and merge its columns and errors."""
    good = [i for i, im in enumerate(images) if im is not None]
    for row in rows:
        for name in scorer.columns:
            row.setdefault(name, None)
    if not good:
        return
    result = run_scorer(scorer, [images[i] for i in good], batch_size or scorer.default_batch_size)
    for j, i in enumerate(good):
        for name in scorer.columns:
            rows[i][name] = result[name][j]
        rows[i]["error"] = _join_errors(rows[i]["error"], result["error"][j])


def score_unit(
    unit: Unit,
    scorers: Sequence[Scorer],
    batch_size: int | None = None,
    prepare: Callable[[list[Record]], tuple[list[dict], list]] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> pa.Table:
    """Score every record of ``unit``: the engine-agnostic work of one unit, as an Arrow table.

    Records are read in batches of ``batch_size`` (default: the largest scorer default). With
    ``prepare`` (an engine's pool doing decode + CPU scorers elsewhere), only GPU scorers run here.
    """
    size = batch_size or max((s.default_batch_size for s in scorers), default=32)
    here = [s for s in scorers if s.uses_gpu] if prepare else list(scorers)
    rows: list[dict] = []
    batch: list[Record] = []

    def flush() -> None:
        if not batch:
            return
        if prepare is not None:
            done, images = prepare(batch)
            for scorer in here:
                _merge(done, images, scorer, size)
        else:
            done, images = prepare_records(batch, [s for s in here if not s.uses_gpu])
            for scorer in here:
                if scorer.uses_gpu:
                    _merge(done, images, scorer, size)
        rows.extend(done)
        if on_batch:
            on_batch(len(batch))
        batch.clear()

    for record in unit.records():
        batch.append(record)
        if len(batch) >= size:
            flush()
    flush()
    schema = table_schema(scorers)
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)


# ----------------------------------------------------------------------------- scorer specs


def scorer_specs(names: Sequence[str], options: dict[str, dict[str, Any]] | None = None,
                 common: dict[str, Any] | None = None) -> list[ScorerSpec]:
    """(name, constructor options) per scorer; ``common`` options go only where ``__init__`` takes them.

    ``device`` and ``dtype`` also go to scorers whose ``__init__`` takes ``**options``.

    Example:
        >>> scorer_specs(["blockiness"], common={"device": "cpu"})
        [('blockiness', {})]
    """
    if not names:
        raise DiversegError("no scorers given")
    if len(set(names)) != len(names):
        raise DiversegError(f"scorer listed twice: {', '.join(names)}")
    specs = []
    for name in names:
        cls = get_scorer_class(name)
        params = inspect.signature(cls.__init__).parameters if cls.__init__ is not object.__init__ else {}
        accepted = set(params)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            accepted |= {"device", "dtype"}  # forwarded through **options; batching stays the engine's
        opts = {k: v for k, v in (common or {}).items() if v is not None and k in accepted}
        opts.update((options or {}).get(name, {}))
        specs.append((name, opts))
    return specs


def build_scorers(specs: Sequence[ScorerSpec], device: str | None = None) -> list[Scorer]:
    """Instantiate scorers from specs; GPU scorers are moved to ``device`` when given."""
    scorers = [create_scorer(name, **opts) for name, opts in specs]
    if device:
        scorers = [s.to(device) if s.uses_gpu else s for s in scorers]
    return scorers


# ----------------------------------------------------------------------------- the score table


@dataclass
class ScoreTable:
    """A score table folder: manifest + committed unit shards.

    ``header`` is what must match on resume (source, scorers and settings, limit, unit ids).
    """

    root: Path
    header: dict[str, Any]
    units: list[dict[str, Any]]
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def unit_path(self, unit_id: str) -> Path:
        return self.root / UNITS_DIR / f"{unit_id}.parquet"

    @classmethod
    def create(cls, root: Path, header: dict[str, Any], units: list[dict[str, Any]],
               overwrite: bool = False, resume: bool = True) -> ScoreTable:
        """Start or resume a table at ``root``; a different header on resume is an error."""
        root = Path(root)
        manifest = root / MANIFEST
        if root.exists() and overwrite:
            if manifest.exists() or (root / UNITS_DIR).exists():
                shutil.rmtree(root / UNITS_DIR, ignore_errors=True)
                manifest.unlink(missing_ok=True)
                (root / CACHE).unlink(missing_ok=True)
        elif manifest.exists():
            old = json.loads(manifest.read_text())
            if not resume:
                raise DiversegError(f"{root} already holds a score table; pass --resume or --overwrite")
            diff = [k for k in header if old.get("header", {}).get(k) != header[k]]
            if not diff and old.get("units") != units:
                diff = ["source contents (files or shards changed)"]
            if diff:
                raise DiversegError(
                    f"{root} holds a score table made with different {', '.join(diff)}; "
                    "use --overwrite to start afresh or another --out"
                )
        elif (root / UNITS_DIR).exists():
            raise DiversegError(f"{root} has unit files but no {MANIFEST}; use --overwrite")
        (root / UNITS_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (root / UNITS_DIR).glob(TEMP_GLOB):
            stale.unlink()
        table = cls(root, header, units)
        table._reconcile()
        table.write_manifest()
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
        table._reconcile(trust_manifest=True)
        return table

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
        return all(u["id"] in self.counts for u in self.units)

    def commit(self, unit_id: str, table: pa.Table) -> None:
        """Atomically write one unit's table, then record it in the manifest."""
        meta = {METADATA_KEY: json.dumps({"unit": unit_id, **self.header}).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        write_atomic(self.unit_path(unit_id), lambda fh: pq.write_table(table, fh, compression="zstd"))
        self.counts[unit_id] = _counts(table)
        self.write_manifest()

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
            "unit_counts": self.counts,
        }
        write_json_atomic(self.manifest_path, payload)

    def read(self, columns: list[str] | None = None, cache: bool = True) -> pa.Table:
        """All committed units, in unit order, as one table.

        With ``cache``, the concatenated table is kept in ``CACHE`` (uncompressed Arrow IPC, memory
        mapped), tagged with the unit files' sizes and mtimes, so re-reading a large table is instant.
        """
        if not self.complete:
            missing = sum(1 for u in self.units if u["id"] not in self.counts)
            raise DiversegError(
                f"score table {self.root} is incomplete ({missing} of {len(self.units)} units missing); "
                "re-run diverseg score on it to resume"
            )
        if not cache:
            return self._concat(columns)
        stamp = self._fingerprint()
        path = self.root / CACHE
        if path.exists():
            try:
                reader = pa.ipc.open_file(pa.memory_map(str(path)))
                if (reader.schema.metadata or {}).get(b"fingerprint") == stamp:
                    table = reader.read_all()
                    return table.select(columns) if columns else table
            except (pa.ArrowInvalid, OSError):
                logger.info("rebuilding unreadable cache %s", path)
        table = self._concat(None)
        schema = table.schema.with_metadata({**(table.schema.metadata or {}), b"fingerprint": stamp})

        def write(fh: Any) -> None:
            with pa.ipc.new_file(fh, schema) as writer:
                writer.write_table(table.replace_schema_metadata(schema.metadata))

        write_atomic(path, write)
        return table.select(columns) if columns else table

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


# ----------------------------------------------------------------------------- phase 1


@dataclass
class ScoreSummary:
    """Counts of a score run: rows scored, undefined (NaN + reason), errors by kind."""

    out: Path
    rows: int
    scored: int
    undefined: int
    errors: int
    errors_by_kind: dict[str, int]
    units_done_before: int

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.errors_by_kind.items())
        return (f"{self.rows} images: {self.scored} scored, {self.undefined} undefined, "
                f"{self.errors} errors" + (f" ({kinds})" if kinds else ""))


def score(
    source: str | Source,
    out: str | os.PathLike,
    scorers: Sequence[str] = ("blockiness",),
    scorer_options: dict[str, dict[str, Any]] | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    gpus: Sequence[int] | None = None,
    batch_size: int | None = None,
    workers: int = 1,
    resume: bool = True,
    overwrite: bool = False,
    limit: int | None = None,
    unit_size: int = DEFAULT_UNIT_SIZE,
    hub_config: str | None = None,
    split: str = "train",
    progress: bool = True,
    engine: Callable[..., None] | None = None,
) -> ScoreSummary:
    """Score every record of ``source`` into a score table at ``out`` (resumable).

    ``scorer_options`` maps a scorer name to constructor options (e.g. ``{"sam": {"model": ...}}``);
    ``device``, ``dtype`` and ``batch_size`` are passed to scorers whose ``__init__`` accepts them.
    CPU scorers run over ``workers`` processes; GPU scorers in this process on ``device``, or one
    process per GPU with ``gpus=[0, 1]``. ``engine`` replaces the local engine: a callable with the
    call shape of :func:`diverseg_hf.engines.local.run_local` (e.g. ``engines.ray.ray_engine(...)``).

    Example:
        >>> score("/no/such/folder", "/tmp/x")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such file or folder: /no/such/folder
    """
    from .engines.local import run_local

    if workers < 1:
        raise DiversegError("--workers must be at least 1")
    if limit is not None and limit < 1:
        raise DiversegError("--limit must be at least 1")
    specs = scorer_specs(list(scorers), scorer_options, {"device": device, "dtype": dtype,
                                                          "batch_size": batch_size})
    src = source if isinstance(source, Source) else open_source(
        source, unit_size=unit_size, config=hub_config, split=split)
    units = src.units(limit)
    if not units:
        raise DiversegError(f"source {src.spec} has no records")
    probe_scorers = build_scorers(specs)
    header = {
        "source": src.describe(),
        "limit": limit,
        "scorers": [
            {"name": s.name, "options": opts, "settings": s.settings(), "columns": s.columns}
            for s, (_, opts) in zip(probe_scorers, specs)
        ],
        "columns": table_schema(probe_scorers).names,
    }
    header = json.loads(json.dumps(header, default=str))
    unit_list = [{"id": u.id, "size": u.size, "max_records": u.max_records, "fingerprint": u.fingerprint()}
                 for u in units]
    table = ScoreTable.create(Path(out), header, unit_list, overwrite=overwrite, resume=resume)
    before = len(table.done())
    todo = [u for u in units if u.id not in table.done()]
    if before:
        logger.info("resuming: %d of %d units already complete", before, len(units))
    expected = [u.size if u.max_records is None else min(u.max_records, u.size or math.inf) for u in todo]
    total = None if any(s is None for s in expected) else int(sum(expected))  # type: ignore[arg-type]
    options = {"workers": workers, "gpus": gpus, "device": device, "batch_size": batch_size, "total": total,
               "progress": progress}
    if engine is None:
        run_local(todo, specs, table.commit, scorers=probe_scorers, **options)
    else:
        del probe_scorers  # the engine builds its own scorers where it runs them
        engine(todo, specs, table.commit, **options)
    totals = table.totals()
    summary = ScoreSummary(out=Path(out), units_done_before=before, **totals)
    logger.info("score: %s", summary)
    return summary

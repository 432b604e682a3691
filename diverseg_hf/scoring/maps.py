"""Scorers as ``datasets`` map functions: ``ds.map(scorer_map("blockiness"), batched=True)``.

:func:`scorer_map` returns a callable for ``Dataset.map`` and ``IterableDataset.map`` (``batched=True``)
that adds the score table's columns of one scorer (``blockiness``; ``sam_masks``; ``det_objects``...)
and one ``<name>_error`` column; :func:`score_dataset` runs several scorers in one pass.

- **Cells.** Every form the ``Image`` feature gives: ``{"bytes", "path"}`` (``Image(decode=False)``,
  and what ``Dataset.map`` holds before decoding: the map reads those stored cells, so ``datasets``
  neither decodes nor re-encodes the column), raw bytes, a decoded PIL image (a streaming dataset's;
  converted with the same OpenCV semantics), or None. Bytes are decoded once with
  :mod:`diverseg_hf.decode` exactly as ``diverseg score`` decodes them: the values equal the score
  table's bit for bit.
- **Errors.** A missing, corrupt or undecodable image never fails the batch: its score columns get
  NaN (float columns) or -1 (count columns) and ``<name>_error`` the reason; ``""`` means no error.
  Every column is typed from the first batch on (no null-typed column), so a plain
  ``ds.map(f, batched=True)`` needs no ``features=``.
- **Devices.** The scorer (and its model) is built on the first call inside the process that maps,
  never in the parent and never pickled. With ``with_rank=True, num_proc=N``, rank r uses
  ``cuda:{r % device_count}``.
- **Caching.** The callable pickles as its name and settings only, so ``datasets`` fingerprints it
  deterministically: the same map twice reuses the cache, other settings do not.

Example:
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> noise = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    >>> buf = io.BytesIO(); Image.fromarray(noise).save(buf, "JPEG")
    >>> f = scorer_map("blockiness")
    >>> out = f({"image": [{"bytes": buf.getvalue(), "path": None}, None, {"bytes": b"junk", "path": None}]})
    >>> out["blockiness"].dtype, bool(out["blockiness"][0] > 0), out["blockiness_error"]
    (dtype('float64'), True, ['', 'missing: the image cell is None', 'corrupt: not a recognised image format'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..decode.images import decode_rgb
from ..errors import DiversegError, ImageError
from ..sources.base import IMAGE_COLUMN_NAMES, cell_record
from . import get_scorer_class
from .base import ENGINE_OPTIONS, Scorer
from .run import decode_record, prepare_decoded, preparers_of, score_batch
from .specs import build_scorers, check_device, scorer_specs, spec_name

_MISSING = {"float": np.nan, "int": -1}


class ScoreMap:
    """The callable :func:`scorer_map` and :func:`score_dataset` hand to ``map``: see the module doc.

    ``scorers`` are scorer names; ``options`` maps a scorer name to its constructor options;
    ``engine`` holds engine options (:data:`~diverseg_hf.scoring.base.ENGINE_OPTIONS`) given to each
    scorer that accepts them.
    """

    def __init__(self, scorers: Sequence[str], *, image_column: str | None = None, device: str | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None, engine: Mapping[str, Any] | None = None):
        # a registered scorer travels as its "module:Class": a worker process resolves it without the registry
        self.scorers = tuple(spec_name(name) for name in scorers)
        self.image_column = image_column
        self.device = device
        self.options = {spec_name(name): dict(sorted((options or {}).get(name, {}).items())) for name in scorers}
        self.engine = dict(sorted((k, v) for k, v in (engine or {}).items() if v is not None))
        scorer_specs(self.scorers, self.options, self.engine)  # unknown names and options fail here, not in a worker
        if device is not None and any(get_scorer_class(name).uses_gpu for name in self.scorers):
            check_device(device)
        self._loaded: tuple[int | None, list[Scorer]] | None = None  # (rank, scorers)

    def __reduce__(self) -> tuple:
        # name and settings only: the scorers are rebuilt where the map runs, and the pickle (the
        # fingerprint ``datasets`` caches by) is the same in every process and every run
        return (_rebuild, (self.scorers, self.image_column, self.device, self.options, self.engine))

    def __repr__(self) -> str:
        return f"ScoreMap({list(self.scorers)}, image_column={self.image_column!r}, device={self.device!r})"

    @property
    def columns(self) -> list[str]:
        """The columns the map adds, in order: each scorer's score columns, then ``<name>_error``."""
        out: list[str] = []
        for name in self.scorers:
            cls = get_scorer_class(name)
            out.extend([*cls.columns, f"{_label(name, cls)}_error"])
        return out

    def _scorers(self, rank: int | None) -> list[Scorer]:
        """The scorers, built on the first call in this process (on the rank's GPU when GPU scorers are used)."""
        if self._loaded is None or self._loaded[0] != rank:
            device = self._device(rank)
            specs = scorer_specs(self.scorers, self.options, {**self.engine, "device": device})
            self._loaded = (rank, build_scorers(specs, device))
        return self._loaded[1]

    def _device(self, rank: int | None) -> str | None:
        if not any(get_scorer_class(name).uses_gpu for name in self.scorers):
            return None
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        check_device(device)
        if device == "cuda" and rank is not None:
            device = f"cuda:{rank % torch.cuda.device_count()}"
        return device

    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict[str, Any]:
        column = self._column(batch)
        if _is_row(batch, column):  # map without batched=True: one example, scalars back
            return {name: _scalar(values[0]) for name, values in self(_as_batch(batch, column), rank).items()}
        cells = _cells(batch, column)
        rows, images = zip(*[_decode_cell(cell) for cell in cells]) if cells else ((), ())
        out: dict[str, Any] = {}
        size = self.engine.get("batch_size")
        for scorer in self._scorers(rank):
            mine = [{"error": row["error"]} for row in rows]
            gpu = [scorer] if scorer.uses_gpu else []
            done = score_batch(prepare_decoded(mine, list(images), [] if gpu else [scorer], preparers_of(gpu)),
                               gpu, size)
            for column, kind in scorer.columns.items():
                out[column] = _typed([row.get(column) for row in done], kind)
            out[f"{_label(scorer.name, scorer)}_error"] = [row["error"] or "" for row in done]
        return out

    def _column(self, batch: Mapping[str, Any]) -> str:
        if self.image_column is not None:
            if self.image_column not in batch:
                raise DiversegError(f"no column {self.image_column!r} in the batch; columns: {sorted(batch)}")
            return self.image_column
        for name in IMAGE_COLUMN_NAMES:
            if name in batch:
                return name
        raise DiversegError(f"no image column among {sorted(batch)}; give image_column=")


def _cells(batch: Mapping[str, Any], column: str) -> list:
    """The cells of ``column``; from ``Dataset.map``'s lazy batch, the stored cells, before ``datasets`` decodes them.

    Reading them undecoded gives the original bytes (strict decode, the score table's values) and
    keeps the column unformatted, so that ``map`` writes it back as it was instead of re-encoding
    the PIL images it would otherwise have decoded.
    """
    table = getattr(batch, "pa_table", None)
    if table is not None and column in getattr(batch, "keys_to_format", ()):
        return table.column(column).to_pylist()
    return list(batch[column])


def _is_row(batch: Mapping[str, Any], column: str) -> bool:
    """Whether ``batch`` is one example (``map`` without ``batched=True``) rather than a batch."""
    if type(batch).__name__ in ("LazyRow", "LazyBatch"):  # Dataset.map's lazy formats
        return type(batch).__name__ == "LazyRow"
    return not isinstance(batch[column], (list, tuple))


def _as_batch(row: Mapping[str, Any], column: str) -> dict[str, list]:
    """One example as a batch of one, its image cell undecoded where ``datasets`` has not decoded it yet."""
    return {column: _cells(row, column) if hasattr(row, "pa_table") else [row[column]]}


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _rebuild(scorers: tuple[str, ...], image_column: str | None, device: str | None,
             options: dict[str, dict[str, Any]], engine: dict[str, Any]) -> ScoreMap:
    return ScoreMap(scorers, image_column=image_column, device=device, options=options, engine=engine)


def _label(name: str, scorer: Scorer | type[Scorer]) -> str:
    """The name in ``<name>_error``: the scorer's own name (a registered name, never ``module:Class``)."""
    return scorer.name or name


def _decode_cell(cell: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    """``({"error": reason or None}, RGB array or None)`` for one image cell, decoded as ``diverseg score`` does."""
    if cell is None:
        return {"error": "missing: the image cell is None"}, None
    if isinstance(cell, (bytes, bytearray, dict)):
        row, rgb = decode_record(cell_record("", cell, None, "", confine=False))  # the caller's own paths
        return {"error": row["error"]}, rgb
    if not isinstance(cell, (Image.Image, np.ndarray)):
        return {"error": f"unsupported: image cell of type {type(cell).__name__}"}, None
    try:
        return {"error": None}, decode_rgb(cell)  # a decoded PIL image (or an array): OpenCV semantics
    except ImageError as exc:
        return {"error": exc.reason}, None


def _typed(values: list, kind: str) -> Any:
    """``values`` as a typed NumPy array for number columns (NaN / -1 where missing), else a list."""
    family = "float" if kind.startswith("float") else "int" if kind.startswith("int") else None
    if family is None:
        return values
    fill = _MISSING[family]
    return np.array([fill if v is None else v for v in values], dtype=np.dtype(kind))


def scorer_map(name: str, *, image_column: str | None = None, device: str | None = None, **options: Any) -> ScoreMap:
    """A function for ``ds.map(f, batched=True)`` that adds the scorer ``name``'s columns and ``<name>_error``.

    ``name`` as in ``--scorers`` (``blockiness``, ``sam``, ``detect`` or a registered scorer).
    ``image_column``: default the first of ``image``, ``img``, ``jpg``, ``jpeg``, ``png``, ``webp``.
    ``device``: of a GPU scorer (default ``cuda`` when available; with ``with_rank=True`` rank r takes
    ``cuda:{r % device_count}``). ``options``: engine options (``batch_size``, ``dtype``,
    ``points_per_batch``...) and the scorer's own constructor options (``model=...``).
    A streaming dataset decodes images before the function sees them (a corrupt file raises inside
    ``datasets``): cast the column first, ``ds.cast_column("image", Image(decode=False))``.

    Example:
        >>> f = scorer_map("blockiness")
        >>> f.columns
        ['blockiness', 'blockiness_error']
        >>> # ds = ds.map(f, batched=True); ds = ds.filter(lambda r: r["blockiness"] <= 0.5)
    """
    engine = {k: v for k, v in options.items() if k in ENGINE_OPTIONS}
    own = {k: v for k, v in options.items() if k not in ENGINE_OPTIONS}
    return ScoreMap([name], image_column=image_column, device=device, options={name: own}, engine=engine)


def score_dataset(ds: Any, scorers: Sequence[str] = ("blockiness",), *, image_column: str | None = None,
                  device: str | None = None, scorer_options: Mapping[str, Mapping[str, Any]] | None = None,
                  batch_size: int | None = None, num_proc: int | None = None, **engine: Any) -> Any:
    """``ds`` (``Dataset`` or ``IterableDataset``) with the columns of every scorer, decoded once per image.

    The same columns as one :func:`scorer_map` per scorer. ``batch_size``: rows per ``map`` batch
    (default ``datasets``' 1000) and, when given, the scorers' engine option. ``scorer_options`` maps a scorer name to
    its constructor options; ``engine``: engine options (``dtype``, ``points_per_batch``...). With
    ``num_proc`` (a ``Dataset`` only), one process per rank, GPU scorers on ``cuda:{rank % device_count}``.

    Example:
        >>> import datasets
        >>> ds = datasets.Dataset.from_dict({"image": [None]})
        >>> score_dataset(ds, ["blockiness"])[0]["blockiness_error"]  # doctest: +SKIP
        'missing: the image cell is None'
    """
    f = ScoreMap(list(scorers), image_column=image_column, device=device, options=scorer_options,
                 engine={**engine, "batch_size": batch_size})
    rows = batch_size or 1000
    if num_proc is not None:
        return ds.map(f, batched=True, batch_size=rows, with_rank=True, num_proc=num_proc)
    return ds.map(f, batched=True, batch_size=rows)


__all__ = ["ScoreMap", "check_device", "score_dataset", "scorer_map"]

"""Phase 2: score table -> selection, with column rules only (no image I/O), fast to re-run.

Every column says which way is better: the score table records, per scorer, the columns where lower is
better (``blockiness``; a scorer class declares them in ``lower_is_better``), and every other column is
better higher (the count columns ``sam_masks``, ``det_objects``); see :func:`lower_is_better`.
Rules, applied in this order (a dropped row is counted under the first rule it fails):

1. ``error``: rows with an error (undecodable, undefined score, scorer failure) are never selected;
2. ``duplicate_key``: every row of a key the table holds more than once (a Hub dataset repeating a
   key across shards; other sources make keys unique) is dropped, so ``publish`` never meets one;
   the count appears only when there is such a row;
3. ``nan:<col>``: rows with NaN/null in a column some rule uses;
4. ``max_blockiness``: per-image ceiling, kept when ``blockiness <= max_blockiness`` (a theta on
   ``blockiness`` is the same rule: ``thetas={"blockiness": 10}`` is ``max_blockiness=10``);
5. ``theta:<col>``: kept when ``col`` is at least as good as theta (``col >= theta``, or
   ``col <= theta`` for a lower-is-better column), e.g. ``{"sam_masks": 100}``, the paper's theta;
6. ``keep:<col>``: ``keep=FRACTION, by=COL`` picks theta = the k-th best ``COL`` among rows still
   in, with k = ceil(FRACTION x all rows of the table), and keeps rows at least as good. Ties at
   theta are all kept, so the kept count may exceed k (and too few eligible rows may leave it
   below): then a warning is logged, and ``selection.json`` records under ``keep`` the target and
   what was actually kept.

``selection.json`` records under ``better`` which way each rule column is better (``"lower"`` or
``"higher"``), so that the card states each rule the way it was applied.

Thresholds must be finite numbers. An optional dataset-level quality gate (``min_quality``)
estimates the source's JPEG quality from its blockiness values
(:func:`diverseg_hf.quality.estimate.estimate_quality`) and refuses (or warns) below it; its basis is
loaded by :func:`check_select_arguments` before anything else, so a missing basis fails early.

Example:
    >>> import numpy as np, pyarrow as pa
    >>> t = pa.table({"v": [5, 1, 3, 3], "error": [None, None, None, "x"]})
    >>> mask, theta = keep_fraction(t, "v", 0.5, np.array([True, True, True, False]))
    >>> mask.tolist(), theta
    ([True, False, True, False], 3)
    >>> keep_fraction(t, "v", 0.25, np.array([True, True, True, False]), lower_is_better=True)[0].tolist()
    [False, True, False, False]
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DiversegError, ParameterError
from .storage import ScoreTable, lower_is_better, rule_text, write_selection
from .version import __version__

logger = logging.getLogger(__name__)

_HASH_BASE = np.uint64(0x100000001B3)  # key_hashes: the FNV-64 prime as the polynomial's base
_HASH_MIX = np.uint64(0x9E3779B97F4A7C15)  # and a golden-ratio constant times the length

@dataclass
class SelectionResult:
    """What :func:`select` kept: counts, thetas actually used, the quality estimate, output paths."""

    out: Path
    rows: int
    kept: int
    dropped: dict[str, int]
    thetas: dict[str, float]
    quality: dict[str, Any] | None
    better: dict[str, str] = field(default_factory=dict)
    max_blockiness: float | None = None

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.rows if self.rows else 0.0

    def rules(self) -> str:
        """The thresholds applied, each with the way its column is better (e.g. ``blockiness <= 60``)."""
        applied = ({"blockiness": self.max_blockiness} if self.max_blockiness is not None else {}) | self.thetas
        return ", ".join(rule_text(col, theta, self.better.get(col, "higher")) for col, theta in applied.items())

    def __str__(self) -> str:
        dropped = ", ".join(f"{k} {v}" for k, v in self.dropped.items() if v)
        return (f"kept {self.kept} of {self.rows} ({self.kept_fraction:.2%})"
                + (f"; dropped: {dropped}" if dropped else ""))


def _check_numeric(schema: pa.Schema, column: str) -> None:
    """Refuse a rule on a column the score table lacks or that is not numeric."""
    if column not in schema.names:
        raise DiversegError(f"the score table has no column {column!r} (columns: {', '.join(schema.names)})")
    kind = schema.field(column).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise DiversegError(f"column {column!r} is not numeric ({kind})")


def _values(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls."""
    _check_numeric(table.schema, column)
    return table.column(column).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def keep_fraction(table: pa.Table, by: str, fraction: float, eligible: np.ndarray,
                  lower_is_better: bool = False) -> tuple[np.ndarray, Any]:
    """Mask keeping rows at least as good as theta, where theta keeps ``ceil(fraction x rows)`` rows (ties all kept).

    Better is higher ``by`` unless ``lower_is_better``. Returns ``(mask, theta)``; theta is None
    when nothing is eligible.
    """
    _check_fraction(fraction)
    raw = table.column(by).to_numpy(zero_copy_only=False)
    values = raw[eligible]
    if values.size == 0:
        return np.zeros(len(raw), bool), None
    k = min(values.size, max(1, math.ceil(fraction * table.num_rows)))
    index = k - 1 if lower_is_better else values.size - k
    theta = np.partition(values, index)[index].item()
    if pa.types.is_integer(table.column(by).type):
        theta = int(theta)
    return eligible & ((raw <= theta) if lower_is_better else (raw >= theta)), theta


def _quality(scan: _Scan, basis: Any) -> dict[str, Any]:
    from .quality.basis import load_basis
    from .quality.estimate import estimate_quality

    values = _values(scan.table, "blockiness")
    ok = scan.no_error & np.isfinite(values)
    if not ok.any():
        raise DiversegError("no defined blockiness values to estimate the source quality from")
    return estimate_quality(values[ok], load_basis(basis)).to_dict()


def _estimate_if_possible(scan: _Scan) -> dict[str, Any] | None:
    """The source quality estimate with the default basis, or None (logged) when the values allow none."""
    try:
        return _quality(scan, None)
    except (DiversegError, ValueError, np.linalg.LinAlgError) as exc:
        logger.warning("no source quality estimate: %s", exc)
        return None


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction <= 1:  # NaN fails too
        raise ParameterError("keep", f"must be in (0, 1], got {fraction}")


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and math.isfinite(value)


def _check_finite(param: str, value: float | None) -> None:
    if value is not None and not _finite(value):
        raise ParameterError(param, f"must be a finite number, got {value}")


def blockiness_shorthand(max_blockiness: float | None,
                         thetas: dict[str, float] | None) -> tuple[float | None, dict[str, float]]:
    """``max_blockiness`` and the other thetas: a theta on ``blockiness`` is the ``max_blockiness`` rule.

    Example:
        >>> blockiness_shorthand(None, {"blockiness": 60, "sam_masks": 100})
        (60, {'sam_masks': 100})
    """
    thetas = dict(thetas or {})
    if "blockiness" in thetas:
        theta = thetas.pop("blockiness")
        if max_blockiness is not None and max_blockiness != theta:
            raise ParameterError("theta", f"blockiness={theta} contradicts max_blockiness={max_blockiness} "
                                 "(the same rule; give one)")
        max_blockiness = theta
    return max_blockiness, thetas


def check_select_arguments(max_blockiness: float | None = None, thetas: dict[str, float] | None = None,
                           keep: float | None = None, by: str | None = None, min_quality: float | None = None,
                           basis: Any = None, on_low_quality: str = "error") -> str | None:
    """Check :func:`select`'s rule arguments before any work (the basis is loaded when the quality is
    asked for); returns the ``keep`` column. :func:`diverseg_hf.curate.curate` calls it before scoring.

    Example:
        >>> check_select_arguments(max_blockiness=float("nan"))
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: max_blockiness must be a finite number, got nan
    """
    thetas = thetas or {}
    if on_low_quality not in ("error", "warn"):
        raise ParameterError("on_low_quality", "must be 'error' or 'warn'")
    _check_finite("max_blockiness", max_blockiness)
    _check_finite("min_quality", min_quality)
    for col, theta in thetas.items():
        if not _finite(theta):
            raise ParameterError("theta", f"{col}={theta} is not a finite number")
    if min_quality is not None or basis is not None:
        from .quality.basis import load_basis

        load_basis(basis)
    if keep is None:
        if by is not None:
            raise ParameterError("by", "is only used with keep")
        return None
    _check_fraction(keep)
    by = by or ("sam_masks" if not thetas else None)
    if by is None:
        raise ParameterError("by", "is needed with keep (the column to rank by)")
    if by in thetas:
        raise DiversegError(f"give either a theta or --keep for {by!r}, not both")
    return by


def key_hashes(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit polynomial hash of each key (its UTF-8 bytes), vectorised: equal keys hash equal.

    Example:
        >>> h = key_hashes(pa.array(["a", "bc", "a", ""]))
        >>> bool(h[0] == h[2]), bool(h[0] != h[1]), len(h)
        (True, True, 4)
    """
    arr = pc.fill_null(keys, "").cast(pa.large_binary())
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], np.int64, count=len(arr) + 1, offset=8 * arr.offset)
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    starts = offsets[:-1] - offsets[0]
    segment = data[offsets[0]:offsets[-1]].astype(np.uint64) + np.uint64(1)
    powers = np.cumprod(np.full(int(lengths.max(initial=0)), _HASH_BASE, np.uint64))
    hashes = lengths.astype(np.uint64) * _HASH_MIX
    filled = lengths > 0
    if filled.any():
        within = np.arange(segment.size, dtype=np.int64) - np.repeat(starts, lengths)
        hashes[filled] += np.add.reduceat(segment * powers[within], starts[filled])
    return hashes


def _duplicates(store: ScoreTable, hashes: np.ndarray) -> np.ndarray:
    """True for every row whose key the table holds more than once, from the keys' hashes (8 bytes a row);
    the keys themselves are read again only for rows whose hash is shared (and compared exactly)."""
    ordered = np.sort(hashes)
    shared = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    candidates = np.isin(hashes, shared) if shared.size else np.zeros(len(hashes), bool)
    if not candidates.any():
        return candidates
    where = np.flatnonzero(candidates)
    keys: list[str] = []
    start = 0
    for unit in store.iter_units(["key"]):
        inside = where[(where >= start) & (where < start + unit.num_rows)] - start
        keys.extend(unit.column("key").take(pa.array(inside)).to_pylist())
        start += unit.num_rows
    counts = Counter(keys)
    candidates[where] = [counts[k] > 1 for k in keys]
    return candidates


@dataclass
class _Scan:
    """What the rules read of a score table: the columns they use (float64, NaN for null; ``integer``: those
    stored as integers), which rows have no error, and the rows whose key repeats."""

    table: pa.Table
    integer: frozenset[str]
    no_error: np.ndarray
    duplicated: np.ndarray


def _scan(store: ScoreTable, columns: list[str]) -> _Scan:
    """The rule columns of every unit (projected: no other column is read, one unit at a time, into arrays
    of 8 bytes a row) and the error and key checks."""
    schema = store.schema()
    for column in columns:
        _check_numeric(schema, column)
    n = sum(store.counts[u["id"]]["rows"] for u in store.units)
    values = {c: np.empty(n, np.float64) for c in columns}
    no_error, hashes = np.empty(n, bool), np.empty(n, np.uint64)
    start = 0
    for unit in store.iter_units(["key", "error", *columns]):
        end = start + unit.num_rows
        if end > n:
            raise DiversegError(f"score table {store.root} changed while it was read; run select again")
        no_error[start:end] = pc.is_null(unit.column("error")).to_numpy(zero_copy_only=False)
        hashes[start:end] = key_hashes(unit.column("key"))
        for column, out in values.items():
            out[start:end] = _values(unit, column)
        start = end
    integer = frozenset(c for c in columns if pa.types.is_integer(schema.field(c).type))
    table = pa.table({c: pa.array(v) for c, v in values.items()}, schema=pa.schema([(c, pa.float64()) for c in values]))
    return _Scan(table, integer, no_error, _duplicates(store, hashes))


def rule_columns(max_blockiness: float | None = None, thetas: dict[str, float] | None = None,
                 by: str | None = None, quality: bool = False) -> list[str]:
    """The score columns the rules read (``quality``: the source quality estimate is asked for too).

    Example:
        >>> rule_columns(max_blockiness=10, thetas={"sam_masks": 100}, by="det_objects")
        ['blockiness', 'sam_masks', 'det_objects']
    """
    blockiness = ["blockiness"] if max_blockiness is not None or quality else []
    return list(dict.fromkeys(blockiness + list(thetas or {}) + ([by] if by else [])))


def _rule_masks(scan: _Scan, max_blockiness: float | None, thetas: dict[str, float],
                by: str | None, lower: frozenset[str]) -> list[tuple[str, np.ndarray]]:
    """(rule name, rows passing it) in the order rules apply: error, duplicate keys, NaN, ceiling, thetas."""
    rules = [("error", scan.no_error)]
    if scan.duplicated.any():
        rules.append(("duplicate_key", ~scan.duplicated))
    values = {col: _values(scan.table, col) for col in rule_columns(max_blockiness, thetas, by)}
    rules.extend((f"nan:{col}", ~np.isnan(vals)) for col, vals in values.items())
    with np.errstate(invalid="ignore"):
        if max_blockiness is not None:
            rules.append(("max_blockiness", values["blockiness"] <= max_blockiness))
        rules.extend((f"theta:{col}", (values[col] <= theta) if col in lower else (values[col] >= theta))
                     for col, theta in thetas.items())
    return rules


def _keep_rule(scan: _Scan, by: str, keep: float, kept: np.ndarray,
               lower: frozenset[str]) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """The ``keep`` rule's mask and theta, and what it kept against its target (warned when they differ)."""
    table = scan.table
    mask, theta = keep_fraction(table, by, keep, kept, lower_is_better=by in lower)
    if theta is not None and by in scan.integer:
        theta = int(theta)  # as keep_fraction gives it for a column stored as integers
    target = max(1, math.ceil(keep * table.num_rows))
    got = int(mask.sum())
    report = {"fraction": keep, "by": by, "better": "lower" if by in lower else "higher",
              "target_rows": target, "kept_rows": got, "theta": theta, "reached": got == target}
    if got != target:
        why = (f"ties at theta={theta} keep {got}" if got > target
               else f"only {got} rows are eligible")
        logger.warning("--keep %s by %s asked for %d of %d rows, but %s (%.2f%%)", keep, by, target,
                       table.num_rows, why, 100 * got / max(table.num_rows, 1))
    return mask, theta, report


def _gate(scan: _Scan, basis: Any, min_quality: float | None, on_low_quality: str) -> dict[str, Any]:
    """The source quality estimate, refusing (or warning) below ``min_quality``."""
    quality = _quality(scan, basis)
    if min_quality is not None and quality["quality"] < min_quality:
        message = (f"source quality {quality['quality']:.4f} is below --min-quality {min_quality} "
                   "(the source looks JPEG-compressed)")
        if on_low_quality == "error":
            raise DiversegError(message + "; pass --on-low-quality warn to select anyway")
        logger.warning("%s; selecting anyway", message)
    quality["min_quality"] = min_quality
    quality["passed"] = min_quality is None or quality["quality"] >= min_quality
    return quality


def _kept_rows(store: ScoreTable, kept: np.ndarray) -> Iterator[pa.Table]:
    """The kept rows of each unit (all columns but ``error``), one unit read at a time."""
    start = 0
    for unit in store.iter_units():
        mask = kept[start:start + unit.num_rows]
        start += unit.num_rows
        if mask.any():
            yield unit.filter(pa.array(mask)).drop_columns(["error"])


def select(
    scores_dir: str | os.PathLike,
    out: str | os.PathLike,
    max_blockiness: float | None = None,
    thetas: dict[str, float] | None = None,
    keep: float | None = None,
    by: str | None = None,
    min_quality: float | None = None,
    basis: Any = None,
    on_low_quality: str = "error",
    estimate: bool = False,
) -> SelectionResult:
    """Apply the rules to the score table at ``scores_dir``; write the selection folder ``out``.

    ``thetas`` maps count columns to minimum values; ``keep``/``by`` pick a theta by retention.
    ``min_quality`` (e.g. 0.9) gates on the source's estimated JPEG quality (``basis`` as
    :func:`diverseg_hf.quality.basis.load_basis` takes it; None = the default DF2K basis);
    ``on_low_quality`` is ``"error"`` (refuse) or ``"warn"``. Passing ``basis`` alone records the
    estimate without gating; so does ``estimate=True`` with the default basis, where a table whose
    blockiness values cannot be estimated from (none, or all equal) records no estimate and warns.

    Example:
        >>> select("/no/such", "/tmp/sel")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such is not a score table (no scores.json); run diverseg score first
    """
    by = check_select_arguments(max_blockiness, thetas, keep, by, min_quality, basis, on_low_quality)
    max_blockiness, thetas = blockiness_shorthand(max_blockiness, thetas)
    store = ScoreTable.open(scores_dir)
    asked = min_quality is not None or basis is not None
    estimate = estimate and not asked and "blockiness" in store.schema().names
    scan = _scan(store, rule_columns(max_blockiness, thetas, by, quality=asked or estimate))
    n = len(scan.no_error)

    kept = np.ones(n, bool)
    dropped: dict[str, int] = {}
    lower = lower_is_better(store.header)
    for name, ok in _rule_masks(scan, max_blockiness, thetas, by, lower):
        dropped[name] = int(np.count_nonzero(kept & ~ok))
        kept &= ok
    used_thetas: dict[str, Any] = dict(thetas)
    keep_report = None
    if keep is not None and by is not None:
        mask, theta, keep_report = _keep_rule(scan, by, keep, kept, lower)
        dropped[f"keep:{by}"] = int(np.count_nonzero(kept & ~mask))
        kept = mask
        used_thetas[by] = theta

    quality = None
    if asked:
        quality = _gate(scan, basis, min_quality, on_low_quality)
    elif estimate:
        quality = _estimate_if_possible(scan)
    del scan

    better = {col: "lower" if col in lower else "higher"
              for col in (["blockiness"] if max_blockiness is not None else []) + list(used_thetas)}
    result = SelectionResult(Path(out), n, int(kept.sum()), dropped, used_thetas, quality, better, max_blockiness)
    info = {
        "package_version": __version__,
        "scores_dir": str(Path(scores_dir).resolve()),
        "source": store.header["source"],
        "scorers": store.header["scorers"],
        "rules": {"max_blockiness": max_blockiness, "thetas": thetas, "keep": keep, "by": by,
                  "min_quality": min_quality, "basis": None if basis is None else str(basis),
                  "on_low_quality": on_low_quality},
        "thetas": used_thetas,
        "better": better,
        "counts": {"rows": n, "kept": result.kept, "kept_fraction": result.kept_fraction,
                   "dropped": dropped},
        "quality": quality,
    }
    if keep_report is not None:
        info["keep"] = keep_report
    schema = store.schema()
    write_selection(out, _kept_rows(store, kept), info, schema=schema.remove(schema.get_field_index("error")))
    logger.info("select: %s", result)
    return result

"""The selection folder: the kept rows of a score table (``selection.parquet``) and ``selection.json``.

``selection.json`` (rules, thetas, counts, quality estimate, source) is written last and marks the
selection complete; both files are written atomically. Which way each rule column is better is read
from the score table's header, where each scorer declared its lower-is-better columns
(:func:`lower_is_better`), and recorded under ``better`` in ``selection.json``; :func:`rule_text` spells a
rule the one way the select messages and the dataset card state it.

Example:
    >>> import tempfile, pyarrow as pa
    >>> out = tempfile.mkdtemp()
    >>> write_selection(out, pa.table({"key": ["a"]}), {"counts": {"kept": 1}})
    >>> table, info = load_selection(out)
    >>> table.column("key").to_pylist(), info["counts"]
    (['a'], {'kept': 1})
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DiversegError
from ..files import write_atomic, write_json_atomic

SELECTION_PARQUET = "selection.parquet"
SELECTION_JSON = "selection.json"
#: Rows per row group of ``selection.parquet`` (and the most rows a streamed write holds at once).
ROW_GROUP_ROWS = 65536
#: Lower-is-better columns of score tables written before the tables recorded them.
_FORMER_LOWER_IS_BETTER = frozenset({"blockiness"})


def lower_is_better(header: dict[str, Any]) -> frozenset[str]:
    """The columns of a score table (its header, or a selection.json) where a lower value is better, as its
    scorers declared them (``Scorer.lower_is_better``); every other column is better higher.

    Example:
        >>> sorted(lower_is_better({"scorers": [{"name": "blockiness", "columns": {"blockiness": "float64"},
        ...                                     "lower_is_better": ["blockiness"]}]}))
        ['blockiness']
    """
    found: set[str] = set()
    for scorer in header.get("scorers", []):
        declared = scorer.get("lower_is_better")
        found.update(_FORMER_LOWER_IS_BETTER.intersection(scorer.get("columns", {})) if declared is None else declared)
    return frozenset(found)


def better_of(info: dict[str, Any], column: str) -> str:
    """``"lower"`` or ``"higher"``: which way ``column`` is better in a selection.json (its ``better`` record,
    else its scorers' declarations, for selections written before it was recorded).

    Example:
        >>> better_of({"better": {"blockiness": "lower"}}, "blockiness"), better_of({}, "sam_masks")
        ('lower', 'higher')
    """
    recorded = info.get("better") or {}
    if column in recorded:
        return recorded[column]
    return "lower" if column in lower_is_better(info) else "higher"


def rule_text(column: str, theta: Any, better: str, symbols: tuple[str, str] = ("<=", ">=")) -> str:
    """A kept-when rule as the messages and the card state it: ``column <= theta`` when lower is better.

    Example:
        >>> rule_text("blockiness", 100, "lower"), rule_text("sam_masks", 80, "higher", ("≤", "≥"))
        ('blockiness <= 100', 'sam_masks ≥ 80')
    """
    return f"{column} {symbols[0] if better == 'lower' else symbols[1]} {theta}"


def write_selection(out: str | os.PathLike, table: pa.Table | Iterable[pa.Table], info: dict[str, Any],
                    schema: pa.Schema | None = None) -> None:
    """Write the kept rows and their description; ``info`` is JSON-serialised with ``str`` for the rest.

    ``table`` may be an iterable of tables (of ``schema``), written as they come: the rows are never held
    together (row groups of up to :data:`ROW_GROUP_ROWS` rows).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SELECTION_JSON).unlink(missing_ok=True)  # the json marks a complete selection: written last
    info = json.loads(json.dumps(info, default=str))
    meta = {b"diverseg": json.dumps(info).encode()}
    parts = [table] if isinstance(table, pa.Table) else table
    schema = (table.schema if isinstance(table, pa.Table) else schema).with_metadata(meta)
    columns = ["format"] if "format" in schema.names else False

    def write(fh: Any) -> None:
        with pq.ParquetWriter(fh, schema, compression="snappy", use_dictionary=columns) as writer:
            pending: list[pa.Table] = []
            rows = 0
            for part in parts:
                pending.append(part.replace_schema_metadata(meta))
                rows += part.num_rows
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)

    write_atomic(out / SELECTION_PARQUET, write)
    write_json_atomic(out / SELECTION_JSON, info)


def load_selection(path: str | os.PathLike) -> tuple[pa.Table, dict[str, Any]]:
    """Read a selection folder written by :func:`write_selection`: (table, selection.json contents)."""
    path = Path(path)
    if not (path / SELECTION_JSON).exists() or not (path / SELECTION_PARQUET).exists():
        raise DiversegError(f"{path} is not a complete selection (no {SELECTION_JSON}); run diverseg select")
    info = json.loads((path / SELECTION_JSON).read_text())
    return pq.read_table(path / SELECTION_PARQUET), info

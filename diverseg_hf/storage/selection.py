"""The selection folder: the kept rows of a score table (``selection.parquet``) and ``selection.json``.

``selection.json`` (rules, thetas, counts, quality estimate, source) is written last and marks the
selection complete; both files are written atomically.

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
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DiversegError
from ..files import write_atomic, write_json_atomic

SELECTION_PARQUET = "selection.parquet"
SELECTION_JSON = "selection.json"


def write_selection(out: str | os.PathLike, table: pa.Table, info: dict[str, Any]) -> None:
    """Write the kept rows and their description; ``info`` is JSON-serialised with ``str`` for the rest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SELECTION_JSON).unlink(missing_ok=True)  # the json marks a complete selection: written last
    info = json.loads(json.dumps(info, default=str))
    meta = {b"diverseg": json.dumps(info).encode()}
    columns = ["format"] if "format" in table.column_names else False
    write_atomic(out / SELECTION_PARQUET, lambda fh: pq.write_table(
        table.replace_schema_metadata(meta), fh, compression="snappy", use_dictionary=columns))
    write_json_atomic(out / SELECTION_JSON, info)


def load_selection(path: str | os.PathLike) -> tuple[pa.Table, dict[str, Any]]:
    """Read a selection folder written by :func:`write_selection`: (table, selection.json contents)."""
    path = Path(path)
    if not (path / SELECTION_JSON).exists() or not (path / SELECTION_PARQUET).exists():
        raise DiversegError(f"{path} is not a complete selection (no {SELECTION_JSON}); run diverseg select")
    info = json.loads((path / SELECTION_JSON).read_text())
    return pq.read_table(path / SELECTION_PARQUET), info

"""Storage: the only code that knows file layouts (score tables, selections, dataset folders, shards).

Phases read and write through these classes and functions; nothing above this floor spells out a
path inside those folders.

Example:
    >>> from diverseg_hf.storage import DatasetDir
    >>> DatasetDir("ds").tar_pattern("I")
    'wds/I/train-*.tar'
"""

from __future__ import annotations

from .dataset_dir import DatasetDir
from .formats import SHARD_FORMATS, ShardFormat, shard_format
from .score_table import BASE_SCHEMA, ScoreTable, table_schema
from .selection import better_of, load_selection, lower_is_better, rule_text, write_selection
from .shards import (
    ParquetShardWriter,
    TarSample,
    TarShardWriter,
    iter_parquet_rows,
    iter_tar_samples,
    parquet_schema,
    read_parquet_table,
)

__all__ = [
    "BASE_SCHEMA",
    "SHARD_FORMATS",
    "DatasetDir",
    "ParquetShardWriter",
    "ScoreTable",
    "ShardFormat",
    "TarSample",
    "TarShardWriter",
    "better_of",
    "iter_parquet_rows",
    "iter_tar_samples",
    "load_selection",
    "lower_is_better",
    "parquet_schema",
    "read_parquet_table",
    "rule_text",
    "shard_format",
    "table_schema",
    "write_selection",
]

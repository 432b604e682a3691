"""The one way an engine carries a :class:`~diverseg_hf.sources.Record` between processes: whole.

Ray Data moves records as Arrow rows; a record travels as one binary cell holding every field of the
dataclass (key, bytes, origin, extra, error, and any field added later), so what a remote scorer sees
is the record the source made, never a re-spelling of some of its fields. (The local engine's process
pools pickle records and units themselves, the same thing.)

Example:
    >>> from diverseg_hf.sources import Record
    >>> record = Record("k", b"", "a.png", error="missing: dangling symlink to b.png")
    >>> unpack_record(pack_record(record)) == record
    True
"""

from __future__ import annotations

import pickle

import pyarrow as pa

from ..sources import Record

#: The Arrow type of a packed record.
RECORD_TYPE = pa.binary()


def pack_record(record: Record) -> bytes:
    """``record`` as bytes, every field included (see :func:`unpack_record`)."""
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_record(blob: bytes) -> Record:
    """The :class:`Record` that :func:`pack_record` packed."""
    record = pickle.loads(blob)
    if not isinstance(record, Record):
        raise TypeError(f"not a packed Record: {type(record).__name__}")
    return record

"""Basis distributions for the dataset quality estimate: blockiness values per JPEG quality.

A basis maps a JPEG quality (int, 100 = pristine originals) to the float64 blockiness values of one
reference corpus encoded at that quality. Sources, in :func:`load_basis` order of precedence:

- an explicit ``spec``: a folder of TSV files in the released ``path<TAB>value`` format (``DF2K.txt``
  is q100, ``DF2K_q95.txt`` is q95, ...), or a ``.parquet`` / ``.json`` file written by :func:`save_basis`;
- the ``DIVERSEG_BASIS`` environment variable, with the same meaning;
- the paper's DF2K basis, shipped in the package (``data/df2k_basis.parquet``, the released values
  exactly; source, commit, licence and the originals' sha256 in ``data/df2k_basis.json``), so the
  default works offline.

:func:`fetch_default_basis` still downloads the released files themselves, at the pinned commit and
checked by sha256, into the user cache (``tools/make_df2k_basis.py`` turns them into the packaged file).

Example:
    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "tiny.json"
    >>> save_basis({100: np.array([1.0, 2.0]), 50: np.array([150.0, 180.0])}, path)
    >>> sorted(load_basis(path))
    [50, 100]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DiversegError
from ..files import write_bytes_atomic

logger = logging.getLogger(__name__)

Basis = dict[int, np.ndarray]

#: Environment variable naming a basis folder or file to use instead of the default DF2K basis.
BASIS_ENV = "DIVERSEG_BASIS"
#: Environment variable overriding the cache root (default ``$XDG_CACHE_HOME/diverseg_hf``).
CACHE_ENV = "DIVERSEG_CACHE"

#: Commit of gohtanii/DiverSeg-dataset whose DF2K basis files are the default basis.
DF2K_COMMIT = "f04175fdc353ba10548fb535ecffc9a430dcb677"
#: sha256 of the released DF2K basis files at :data:`DF2K_COMMIT`, by file name.
DF2K_SHA256 = {
    "DF2K.txt": "3ce3394a51d05c5641021fc258e1465f3beb77defee936f24b8bacdf44e63f27",
    "DF2K_q95.txt": "b130acb5bfe68d35ab883596e3c6bc5b7d044f32aaf47d012d44c79abb2044fa",
    "DF2K_q85.txt": "de47e26616369b14e6792a95dcb5886461757fad20efd2db21267c57634cda83",
    "DF2K_q75.txt": "8c9c2fa5efb80adadf4aa071f4b94b7fcb2411e7d7b418d7067a802386128820",
    "DF2K_q50.txt": "0601d5963a633c245da3881de73217b405896359b3adbdcfdda1516d28c02f6f",
}
#: The packaged DF2K basis (written by tools/make_df2k_basis.py from the released files).
DF2K_PACKAGED = Path(__file__).resolve().parents[1] / "data" / "df2k_basis.parquet"
# Where the default basis files are fetched from; tests point it at a local server.
_BASE_URL = (
    f"https://raw.githubusercontent.com/gohtanii/DiverSeg-dataset/{DF2K_COMMIT}/blockiness/blockiness_per_dataset"
)
_DOWNLOAD_TIMEOUT_S = 60

_TSV_NAME = re.compile(r"^(?P<name>.+?)(?:_q(?P<quality>\d+))?\.txt$")
_JSON_FORMAT = "diverseg-basis"


# Characters at which str.splitlines() breaks a line; a name holding one is written quoted.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def escape_name(name: str) -> str:
    r"""A file name as the ``path`` field of a ``path<TAB>value`` line; ordinary names are unchanged.

    A name that would break the line format (a line break of any kind: newline, carriage return, form
    feed, U+2028 ...), that cannot be written as UTF-8 (an undecodable byte kept as a surrogate) or
    that starts with a double quote is written as a JSON string in ASCII; :func:`read_scores_table`
    turns it back. Every other name, i.e. every name of the released files, is written as it is.

    Example:
        >>> print(escape_name("n01/img 1.JPEG"), escape_name("a\nb.png"), escape_name("bad\udcff.png"))
        n01/img 1.JPEG "a\nb.png" "bad\udcff.png"
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(name)
    return json.dumps(name) if name.startswith('"') or not _LINE_BREAKS.isdisjoint(name) else name


def unescape_name(field: str) -> str:
    r"""The file name a ``path`` field stands for (the inverse of :func:`escape_name`).

    Example:
        >>> unescape_name('"a\\nb.png"') == "a\nb.png", unescape_name("plain.png")
        (True, 'plain.png')
    """
    if len(field) >= 2 and field[0] == field[-1] == '"':
        try:
            return json.loads(field)
        except json.JSONDecodeError:
            pass  # an older file's name that merely starts and ends with a quote
    return field


def read_scores_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    r"""Names and values of a ``path<TAB>value`` file (the released scorer's output), ``nan`` kept.

    Lines end at ``\n`` (or ``\r\n``) only, so a name with another line break written by an older
    release still reads; quoted names are unescaped (:func:`escape_name`). Blank lines are skipped;
    the value is the text after the last tab. A line without a tab or with a value that is not a
    number raises :class:`DiversegError` naming the file and line.

    Example:
        >>> import tempfile
        >>> tsv = Path(tempfile.mkdtemp()) / "scores.tsv"
        >>> _ = tsv.write_text('a.png\t1.5\n"b\\fc.png"\tnan\n')
        >>> read_scores_table(tsv)
        (['a.png', 'b\x0cc.png'], array([1.5, nan]))
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise DiversegError(f"no such scores file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DiversegError(f"cannot read scores file {path}: {exc}") from None
    names, values = [], []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        name, tab, value = line.rpartition("\t")
        try:
            if not tab:
                raise ValueError
            values.append(float(value))
        except ValueError:
            raise DiversegError(f"{path}:{lineno}: expected 'path<TAB>value', got {line[:80]!r}") from None
        names.append(unescape_name(name))
    return names, np.asarray(values, dtype=np.float64)


def read_scores_tsv(path: str | os.PathLike) -> np.ndarray:
    """Values of a ``path<TAB>value`` file (the released scorer's output) as float64, ``nan`` kept.

    The values of :func:`read_scores_table`, by its rules.

    Example:
        >>> import tempfile
        >>> tsv = Path(tempfile.mkdtemp()) / "scores.tsv"
        >>> _ = tsv.write_text("a.png\\t1.5\\n\\nb.png\\tnan\\n")
        >>> read_scores_tsv(tsv).tolist()
        [1.5, nan]
    """
    return read_scores_table(path)[1]


def discover_basis_files(folder: str | os.PathLike) -> dict[int, Path]:
    """Map quality -> TSV file in a basis folder: ``NAME.txt`` is q100, ``NAME_q<Q>.txt`` is q<Q>.

    All ``.txt`` files must share one NAME; a folder mixing names, or holding both ``NAME.txt`` and
    ``NAME_q100.txt``, is refused as ambiguous.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for f in ("DF2K.txt", "DF2K_q95.txt"): _ = (d / f).write_text("")
        >>> {q: p.name for q, p in discover_basis_files(d).items()}
        {100: 'DF2K.txt', 95: 'DF2K_q95.txt'}
    """
    folder = Path(folder)
    by_name: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.glob("*.txt")):
        match = _TSV_NAME.match(path.name)
        if not match:  # pragma: no cover - the pattern matches every *.txt name
            continue
        quality = int(match["quality"]) if match["quality"] else 100
        if not 1 <= quality <= 100:
            raise DiversegError(f"basis file {path} names quality {quality}; qualities are 1..100")
        files = by_name.setdefault(match["name"], {})
        if quality in files:
            raise DiversegError(
                f"ambiguous basis folder {folder}: both {files[quality].name} and {path.name} are q{quality}"
            )
        files[quality] = path
    if not by_name:
        raise DiversegError(f"no basis files (NAME.txt, NAME_q95.txt, ...) in {folder}")
    if len(by_name) > 1:
        raise DiversegError(
            f"ambiguous basis folder {folder}: several basis names ({', '.join(sorted(by_name))}); "
            "keep one basis per folder"
        )
    (files,) = by_name.values()
    return dict(sorted(files.items(), reverse=True))


def _finite(values: np.ndarray, source: str) -> np.ndarray:
    keep = np.isfinite(values)
    if not keep.all():
        logger.warning("%s: dropped %d non-finite values", source, int((~keep).sum()))
    return values[keep]


def _sorted_basis(basis: Mapping[int, np.ndarray]) -> Basis:
    return {int(q): np.asarray(basis[q], dtype=np.float64) for q in sorted(basis, reverse=True)}


def _load_folder(folder: Path) -> Basis:
    return {q: _finite(read_scores_tsv(p), str(p)) for q, p in discover_basis_files(folder).items()}


def _load_json(path: Path) -> Basis:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DiversegError(f"cannot read basis file {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != _JSON_FORMAT or "values" not in doc:
        raise DiversegError(f"{path} is not a basis file written by save_basis (a calibration record? pass its folder)")
    try:
        return _sorted_basis({int(q): _finite(np.asarray(v, np.float64), str(path)) for q, v in doc["values"].items()})
    except (AttributeError, TypeError, ValueError) as exc:
        raise DiversegError(f"basis file {path}: 'values' must map qualities to lists of numbers ({exc})") from None


def _load_parquet(path: Path) -> Basis:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["quality", "value"])
    except (OSError, KeyError, ValueError) as exc:
        raise DiversegError(f"cannot read basis file {path}: {exc}") from None
    qualities = table.column("quality").to_numpy()
    values = table.column("value").to_numpy().astype(np.float64)
    return _sorted_basis({int(q): _finite(values[qualities == q], str(path)) for q in np.unique(qualities)})


def load_basis(spec: str | os.PathLike | None = None) -> Basis:
    """Load a basis: quality -> float64 blockiness values, highest quality first.

    ``spec`` is a folder of released-format TSV files or a ``.parquet``/``.json`` file from
    :func:`save_basis`. Without it, ``$DIVERSEG_BASIS`` is used, else the paper's DF2K basis shipped
    in the package. Non-finite values are dropped with a logged warning.

    Example:
        >>> basis = load_basis(DF2K_PACKAGED)  # what load_basis() gives when $DIVERSEG_BASIS is unset
        >>> {q: len(v) for q, v in basis.items()}
        {100: 3450, 95: 3450, 85: 3450, 75: 3450, 50: 3450}
    """
    if spec is None:
        spec = os.environ.get(BASIS_ENV) or DF2K_PACKAGED
    path = Path(spec)
    if path.is_dir():
        return _load_folder(path)
    if not path.exists():
        raise DiversegError(f"no such basis folder or file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _load_json(path)
    if suffix == ".parquet":
        return _load_parquet(path)
    raise DiversegError(f"basis {path}: expected a folder of TSV files, a .parquet or a .json file")


def save_basis(
    basis: Mapping[int, np.ndarray], path: str | os.PathLike, metadata: Mapping[str, object] | None = None
) -> None:
    """Write a basis to a ``.parquet`` (long table ``quality``, ``value``) or ``.json`` file, atomically.

    ``metadata`` (JSON-serialisable) is stored alongside: in the Parquet schema metadata or the JSON
    document. Values are written with full float64 precision, so :func:`load_basis` returns them exactly.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "b.parquet"
        >>> save_basis({100: np.array([1.0, 2.5])}, out, metadata={"source": "demo"})
        >>> load_basis(out)[100].tolist()
        [1.0, 2.5]
    """
    path = Path(path)
    basis = _sorted_basis(basis)
    meta = dict(metadata or {})
    suffix = path.suffix.lower()
    if suffix == ".json":
        doc = {"format": _JSON_FORMAT, "metadata": meta, "values": {str(q): v.tolist() for q, v in basis.items()}}
        write_bytes_atomic(path, json.dumps(doc).encode("utf-8"))
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        qualities = np.concatenate([np.full(len(v), q, np.int16) for q, v in basis.items()] or [np.zeros(0, np.int16)])
        values = np.concatenate(list(basis.values()) or [np.zeros(0)])
        table = pa.table({"quality": qualities, "value": values})
        table = table.replace_schema_metadata({"diverseg_basis": json.dumps(meta)})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_bytes_atomic(path, sink.getvalue().to_pybytes())
    else:
        raise DiversegError(f"save_basis: {path} must end in .parquet or .json")


def cache_dir() -> Path:
    """Root of diverseg_hf's user cache: ``$DIVERSEG_CACHE``, else ``$XDG_CACHE_HOME/diverseg_hf``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diverseg_hf"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_default_basis() -> Path:
    """Folder of the paper's released DF2K basis files in the user cache, downloading them if needed.

    The default basis is the packaged copy (:data:`DF2K_PACKAGED`); this fetches the released text files
    themselves (to check the packaged copy or regenerate it). Files already cached with the right
    sha256 are not fetched again. Without network access this raises :class:`DiversegError`.
    """
    folder = cache_dir() / "basis" / f"df2k-{DF2K_COMMIT}"
    for name, digest in DF2K_SHA256.items():
        target = folder / name
        if target.is_file() and _sha256(target) == digest:
            continue
        url = f"{_BASE_URL}/{name}"
        logger.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                data = response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DiversegError(
                f"cannot download the released DF2K basis files ({url}: {exc}); the packaged copy "
                "(the default basis) needs no network"
            ) from None
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DiversegError(f"checksum mismatch for {url}: expected sha256 {digest}, got {got}")
        write_bytes_atomic(target, data)
    return folder


def check_basis(basis: Mapping[int, np.ndarray]) -> Basis:
    """Validate a basis for density estimation; return it as float64 arrays, highest quality first.

    Each set needs at least two finite values that are not all equal (a KDE needs a spread).
    """
    if not basis:
        raise DiversegError("the basis is empty: it needs at least one quality")
    out = _sorted_basis(basis)
    for quality, values in out.items():
        if not 1 <= quality <= 100:
            raise DiversegError(f"basis quality {quality} is outside 1..100")
        if values.ndim != 1 or values.size < 2 or not np.isfinite(values).all() or np.ptp(values) == 0:
            raise DiversegError(
                f"basis set q{quality} needs at least two finite, distinct values (got {values.size} values)"
            )
    return out

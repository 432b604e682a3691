"""BasicSR's dataset conventions: file names, sub-image crops, ``meta_info`` lines and the LMDB layout.

What BasicSR-family code (BasicSR, HAT, SwinIR/KAIR ports, RCAN/EDSR ports) expects of a DIV2K-style
training folder, as :mod:`diverseg_hf.sr.export` writes it:

* names carry no ``.``, space or path separator: ``meta_info`` lines are split on spaces and LMDB keys
  are the names up to the first ``.``. :func:`safe_names` keeps a key as its name when it is already
  safe, else replaces unsafe characters by ``_`` and appends ``-`` and 8 hex digits of the key's
  BLAKE2b hash (also when two keys would differ only by case), so names are unique and do not depend
  on the order of the keys;
* sub-images (``extract_subimages``): crops of ``crop`` pixels every ``step`` pixels, plus a last crop
  flush with the bottom/right edge when pixels remain (``thresh_size`` 0), numbered row by row from
  ``_s001``;
* ``meta_info``: one line per image, ``<file name> (<h>,<w>,<c>)``; in an LMDB folder the line also
  ends with the PNG compression level, and the key is the file name without its extension.

Example:
    >>> subimage_starts(1000, 480, 240)
    [0, 240, 480, 520]
    >>> safe_names(["0001", "n01/img 1.JPEG"])["n01/img 1.JPEG"]
    'n01_img_1_JPEG-94007a00'
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DiversegError, require

#: PNG compression level of the files written (OpenCV's default, as ``extract_subimages`` uses).
PNG_LEVEL = 3
#: Longest name kept before the hash suffix (file systems allow 255 bytes with the suffixes).
MAX_NAME = 120

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_FORMAT_SUFFIX = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "GIF": "gif",
                  "PPM": "ppm"}


def _hashed(key: str, safe: str) -> str:
    return f"{safe[:MAX_NAME]}-{hashlib.blake2b(key.encode('utf-8'), digest_size=4).hexdigest()}"


def safe_names(keys: Iterable[str]) -> dict[str, str]:
    """Map each key to a unique safe file name (see the module docstring).

    Example:
        >>> sorted(safe_names(["a", "A", "b"]).values())
        ['A-af3c7293', 'a-ca234c55', 'b']
    """
    keys = list(keys)
    if len(set(keys)) != len(keys):
        raise DiversegError("keys are not unique")
    safe = {k: _UNSAFE.sub("_", k) or "_" for k in keys}
    groups: dict[str, int] = {}
    for s in safe.values():
        groups[s.lower()] = groups.get(s.lower(), 0) + 1
    names = {
        k: s if s == k and len(s) <= MAX_NAME and groups[s.lower()] == 1 else _hashed(k, s) for k, s in safe.items()
    }
    if len({n.lower() for n in names.values()}) != len(names):
        raise DiversegError("two keys give the same file name; rename one of them")
    return names


def image_suffix(data: bytes, path_hint: str | None = None) -> str:
    """The file suffix of encoded image bytes, from their format (else from ``path_hint``).

    Example:
        >>> image_suffix(encode_png(np.zeros((2, 2), np.uint8))), image_suffix(b"?", "x.JPEG")
        ('png', 'jpeg')
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
    except Exception:  # undecodable bytes: the decode step reports them
        fmt = None
    if fmt in _FORMAT_SUFFIX:
        return _FORMAT_SUFFIX[fmt]
    suffix = Path(path_hint or "").suffix.lstrip(".").lower()
    return suffix if suffix and not _UNSAFE.search(suffix) else "img"


def subimage_starts(size: int, crop: int, step: int) -> list[int]:
    """Crop starts along one side, as ``extract_subimages`` places them (empty when ``size < crop``).

    Example:
        >>> subimage_starts(480, 480, 240), subimage_starts(479, 480, 240)
        ([0], [])
    """
    if size < crop:
        return []
    starts = list(range(0, size - crop + 1, step))
    if size - (starts[-1] + crop) > 0:
        starts.append(size - crop)
    return starts


def subimage_boxes(height: int, width: int, crop: int, step: int) -> list[tuple[int, int]]:
    """``(top, left)`` of every sub-image, row by row; sub-image ``i`` (from 0) is named ``_s{i+1:03d}``.

    Example:
        >>> subimage_boxes(6, 5, 4, 2)
        [(0, 0), (0, 1), (2, 0), (2, 1)]
    """
    return [(t, left) for t in subimage_starts(height, crop, step) for left in subimage_starts(width, crop, step)]


def subimage_name(name: str, index: int) -> str:
    """The name of sub-image ``index`` (from 0) of ``name``.

    Example:
        >>> subimage_name("0001", 0), subimage_name("0001", 1203)
        ('0001_s001', '0001_s1204')
    """
    return f"{name}_s{index + 1:03d}"


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes of an HxWx3 (or HxW) uint8 array (deterministic).

    Example:
        >>> encode_png(np.zeros((2, 2, 3), np.uint8))[:4]
        b'\\x89PNG'
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def meta_line(file_name: str, shape: tuple[int, int, int], level: int | None = None) -> str:
    """One ``meta_info`` line (``level`` only in LMDB folders).

    Example:
        >>> meta_line("0001_s001.png", (480, 480, 3)), meta_line("0001_s001.png", (480, 480, 3), 3)
        ('0001_s001.png (480,480,3)', '0001_s001.png (480,480,3) 3')
    """
    h, w, c = shape
    return f"{file_name} ({h},{w},{c})" + ("" if level is None else f" {level}")


def write_lmdb(lmdb_dir: str | os.PathLike, entries: list[tuple[str, Path, tuple[int, int, int]]]) -> None:
    """BasicSR's LMDB folder: ``data.mdb`` (key = name, value = the file's bytes) and ``meta_info.txt``.

    ``entries`` are ``(key, file, shape)``. ``meta_info.txt`` is written last, so a folder without it
    is unfinished: it is rebuilt from scratch, and a finished one is left as it is.
    """
    lmdb = require("lmdb", "lmdb")
    lmdb_dir = Path(lmdb_dir)
    if (lmdb_dir / "meta_info.txt").is_file():
        return
    if lmdb_dir.exists():
        shutil.rmtree(lmdb_dir)
    total = sum(path.stat().st_size for _, path, _ in entries)
    env = lmdb.open(str(lmdb_dir), map_size=max(2 * total, 1 << 20) + (1 << 20) * (1 + len(entries) // 1000))
    try:
        with env.begin(write=True) as txn:
            for key, path, _ in sorted(entries):
                txn.put(key.encode("ascii"), path.read_bytes())
    finally:
        env.close()
    lines = "".join(meta_line(f"{key}.png", shape, PNG_LEVEL) + "\n" for key, _, shape in sorted(entries))
    from ..files import write_atomic

    write_atomic(lmdb_dir / "meta_info.txt", lambda fh: fh.write(lines), "w")

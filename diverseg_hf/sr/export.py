"""The export phase: a published subset -> a DIV2K-style folder that BasicSR, HAT and SwinIR train from.

``export_basicsr(dataset, config, out)`` writes::

    out/HR/<name>.png                       the decoded HR cropped at its bottom/right to a multiple of every
                                            scale (*mod-crop* to their least common multiple), lossless PNG
    out/LR_bicubic/X<s>/<name>x<s>.png      MATLAB imresize(HR, 1/s) of that HR: exactly HR/s pixels, uint8 PNG
    out/original/<name>.<ext>               the original bytes, untouched (a PNG stays PNG, a JPEG JPEG)
    out/meta_info_HR.txt                    '<name>.png (h,w,3)' per image, sorted by name
    out/key_map.jsonl                       {"name", "key", "file", "original"} per image: names back to keys
    out/skipped.jsonl                       {"key", "reason"} per image that could not be exported
    out/export.json                         the settings, and "complete" once everything is written
    with subimages=(crop, step):
    out/HR_sub/<name>_s001.png ...          extract_subimages' crops (PNG) of HR/, and the matching LR crops in
    out/LR_bicubic/X<s>_sub/<name>_s001.png (same names: BasicSR pairs them with filename_tmpl '{}')
    out/meta_info_HR_sub.txt
    with lmdb=True (the [lmdb] extra): HR[_sub].lmdb and LR_bicubic_X<s>[_sub].lmdb, as create_lmdb does.

Every pair BasicSR reads is exact: ``HR/`` and ``LR_bicubic/X<s>/`` (by folder, ``meta_info`` or LMDB)
have GT sides ``s`` times the LQ sides, for every format and size, because one HR, cropped to a
multiple of every exported scale, serves every ``X<s>`` (DIV2K's HR sides are multiples of 12, so there
the crop removes nothing); the HR is a PNG, so BasicSR's folder reader (which takes the LR's extension
from the HR's) finds ``<name>x<s>.png``. ``original/`` is not paired with anything. Sub-images are crops
of ``HR/`` and of the LR files at the same positions; for images whose sides are such multiples this is
exactly ``extract_subimages``' output. Names follow :func:`diverseg_hf.sr.basicsr.safe_names`.

Resumable: every file is written atomically and an image whose files all exist is not decoded again,
so a killed export re-run finishes the rest; the output is the same bytes as an uninterrupted run's.

Example:
    >>> export_basicsr("/nonexistent", "I", "/tmp/out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: no dataset folder or Hub dataset id: /nonexistent
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..decode.images import decode_rgb, probe
from ..errors import DiversegError, ImageError, require
from ..files import TEMP_GLOB, temp_target, write_atomic, write_bytes_atomic, write_json_atomic
from ..processes import process_pool
from ..sources.published import open_published
from . import basicsr
from .evaluate import modcrop
from .imresize import imresize

EXPORT_VERSION = 2  # 1: HR/ held the un-cropped originals (pairs broke on odd sizes)


@dataclass(frozen=True)
class Plan:
    """What to write for each image (picklable: it travels to the worker processes)."""

    out: Path
    scales: tuple[int, ...]
    subimages: tuple[int, int] | None

    @property
    def lcm(self) -> int:
        return math.lcm(*self.scales)

    def hr_path(self, name: str) -> Path:
        return self.out / "HR" / f"{name}.png"

    def lr_path(self, name: str, s: int) -> Path:
        return self.out / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png"

    def sub_paths(self, name: str, count: int) -> list[list[Path]]:
        """Per sub-image: [HR_sub file, X<s>_sub file for each scale]."""
        folders = [self.out / "HR_sub"] + [self.out / "LR_bicubic" / f"X{s}_sub" for s in self.scales]
        return [[f / f"{basicsr.subimage_name(name, i)}.png" for f in folders] for i in range(count)]


@dataclass
class Done:
    """One image's outcome: its HR file and shape, its original, how many sub-images, or why it was skipped."""

    key: str
    name: str = ""
    file: str = ""
    original: str = ""
    shape: tuple[int, int, int] = (0, 0, 0)
    subimages: int = 0
    error: str = ""


@dataclass
class ExportReport:
    """What an export wrote; :attr:`skipped` lists ``(key, reason)``."""

    out: Path
    images: int = 0
    subimages: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def resolve_dataset(dataset: str | os.PathLike, config: str) -> Path:
    """A local published folder as is; a Hub dataset id downloaded (only ``data/<config>/*.parquet``)."""
    path = Path(dataset)
    if path.is_dir():
        return path
    text = str(dataset)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", text):
        raise DiversegError(f"no dataset folder or Hub dataset id: {dataset}")
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(text, repo_type="dataset", allow_patterns=[f"data/{config}/*.parquet"])
    except Exception as exc:  # network, auth, missing repo: one line for the CLI
        raise DiversegError(f"cannot download {text}: {type(exc).__name__}: {exc}") from exc
    return Path(local)


def _size_of(data: bytes) -> tuple[int, int]:
    """(height, width) of the image as decoded (EXIF orientation applied), from its header."""
    probe(data)  # refuses unreadable headers and images over the pixel limit
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        try:
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        except Exception:  # a broken EXIF block is ignored, as the decoder does
            turned = False
    return (width, height) if turned else (height, width)


def _outputs(plan: Plan, name: str, height: int, width: int) -> tuple[list[Path], list[list[Path]]]:
    """The HR and LR files of an image of the mod-cropped size ``height`` x ``width``, and its sub-images'."""
    files = [plan.hr_path(name)] + [plan.lr_path(name, s) for s in plan.scales]
    subs = plan.sub_paths(name, len(basicsr.subimage_boxes(height, width, *plan.subimages))) if plan.subimages else []
    return files, subs


def export_one(plan: Plan, key: str, name: str, data: bytes | None, hint: str | None,
               error: str | None = None) -> Done:
    """Write one image's files (those not there yet); a bad image (or a record read with ``error``) is a
    ``Done`` with ``error``."""
    try:
        if error:
            raise ImageError(*error.split(": ", 1))
        if not data:
            raise ImageError("missing", "record has no image bytes")
        height, width = _size_of(data)
        L = plan.lcm
        if min(height, width) < L:
            raise ImageError("too-small", f"{width}x{height} is smaller than {L}, the least common multiple of the "
                             f"scales {list(plan.scales)}")
        height, width = height - height % L, width - width % L
        original = plan.out / "original" / f"{name}.{basicsr.image_suffix(data, hint)}"
        files, subs = _outputs(plan, name, height, width)
        if not all(p.is_file() for p in [*files, *(p for paths in subs for p in paths), original]):
            _write(plan, name, decode_rgb(data), subs)
            if not original.is_file():  # last: an original means its image was finished
                write_bytes_atomic(original, data)
    except ImageError as exc:
        return Done(key, error=exc.reason)
    except Exception as exc:  # a decoder crash on one image must not end the export
        return Done(key, error=f"corrupt: {type(exc).__name__}: {exc}")
    return Done(key, name, f"HR/{name}.png", f"original/{original.name}", (height, width, 3), len(subs))


def _write(plan: Plan, name: str, rgb: Any, subs: list[list[Path]]) -> None:
    """HR (``rgb`` mod-cropped to a multiple of every scale), its LRs and the sub-images, those not there yet."""
    hr = modcrop(rgb, plan.lcm)
    lr = {s: imresize(hr, 1.0 / s) for s in plan.scales}
    for path, image in [(plan.hr_path(name), hr), *((plan.lr_path(name, s), lr[s]) for s in plan.scales)]:
        if not path.is_file():
            write_bytes_atomic(path, basicsr.encode_png(image))
    if subs:
        crop, step = plan.subimages
        for (top, left), paths in zip(basicsr.subimage_boxes(hr.shape[0], hr.shape[1], crop, step), subs):
            crops = [hr[top : top + crop, left : left + crop]]
            crops += [lr[s][top // s : (top + crop) // s, left // s : (left + crop) // s] for s in plan.scales]
            for path, image in zip(paths, crops):
                if not path.is_file():
                    write_bytes_atomic(path, basicsr.encode_png(image))


def _run_task(args: tuple) -> Done:
    return export_one(*args)


def _ordered_map(fn: Callable[[tuple], Done], tasks: Iterator[tuple], workers: int) -> Iterator[Done]:
    """``map(fn, tasks)`` in ``workers`` processes, in order, holding at most ``4 * workers`` tasks."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    with process_pool(workers) as pool:
        pending = []
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= 4 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


#: The files an export writes at the top of its folder (besides its LMDBs, which are folders).
_TOP_FILES = ("export.json", "meta_info_HR.txt", "meta_info_HR_sub.txt", "key_map.jsonl", "skipped.jsonl")


def _own_temps(plan: Plan, names: Collection[str]) -> Iterator[Path]:
    """The temporary files a killed export of ``names`` left (see :func:`~diverseg_hf.files.temp_target`):
    only those of a file this export writes, never another program's ``.*.tmp`` files."""
    marks: dict[Path, str | None] = {plan.out / "HR": None, plan.out / "HR_sub": "_s"}
    for s in plan.scales:  # LR file stems end in x<s>, sub-image stems in _s<index>
        marks[plan.out / "LR_bicubic" / f"X{s}"] = f"x{s}"
        marks[plan.out / "LR_bicubic" / f"X{s}_sub"] = "_s"
    for temp in sorted(plan.out.glob(TEMP_GLOB)) if plan.out.is_dir() else []:
        if temp_target(temp) in _TOP_FILES:
            yield temp
    for folder, mark in marks.items():
        for temp in sorted(folder.glob(TEMP_GLOB)) if folder.is_dir() else []:
            stem = (temp_target(temp) or "").rsplit(".", 1)[0]
            if (stem.rsplit(mark, 1)[0] if mark else stem) in names:
                yield temp


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix two different exports in one folder; record the settings of this one."""
    record = out / "export.json"
    if record.is_file():
        before = json.loads(record.read_text())
        if before.get("version") != EXPORT_VERSION:
            raise DiversegError(f"{out} holds an export of format {before.get('version')} (before HR/ was cropped to "
                                f"pair with the LR); export into a new folder")
        if before.get("settings") != settings:
            raise DiversegError(f"{out} holds an export with other settings: {before.get('settings')}")
    write_json_atomic(record, {"version": EXPORT_VERSION, "settings": settings, "complete": False})


def _validate(scales: tuple[int, ...], subimages: tuple[int, int] | None) -> None:
    if not scales or any(s < 2 for s in scales) or len(set(scales)) != len(scales):
        raise DiversegError(f"scales must be distinct integers >= 2, got {list(scales)}")
    if subimages is not None:
        crop, step, L = subimages[0], subimages[1], math.lcm(*scales)
        if crop < 1 or step < 1 or crop % L or step % L:
            raise DiversegError(f"sub-image crop and step must be positive multiples of {L} (scales {list(scales)})")


def _write_lines(path: Path, lines: list[str]) -> None:
    write_atomic(path, lambda fh: fh.write("".join(line + "\n" for line in lines)), "w")


def _finish(plan: Plan, done: list[Done], lmdb: bool) -> None:
    """meta_info files, the key map, the skipped list and the LMDBs, all sorted by name or key."""
    ok = sorted((d for d in done if not d.error), key=lambda d: d.file)  # sorted file names, as BasicSR lists
    _write_lines(plan.out / "meta_info_HR.txt", [basicsr.meta_line(d.file[3:], d.shape) for d in ok])
    maps = [json.dumps({"name": d.name, "key": d.key, "file": d.file, "original": d.original}, ensure_ascii=False)
            for d in ok]
    _write_lines(plan.out / "key_map.jsonl", maps)
    errors = sorted((d.key, d.error) for d in done if d.error)
    _write_lines(plan.out / "skipped.jsonl", [json.dumps({"key": k, "reason": r}) for k, r in errors])
    subs = sorted((paths for d in ok for paths in plan.sub_paths(d.name, d.subimages)), key=lambda p: p[0].name)
    if plan.subimages:
        side = plan.subimages[0]
        _write_lines(plan.out / "meta_info_HR_sub.txt", [basicsr.meta_line(p[0].name, (side, side, 3)) for p in subs])
    if not lmdb:
        return
    if plan.subimages:
        for i, folder in enumerate(["HR_sub"] + [f"LR_bicubic_X{s}_sub" for s in plan.scales]):
            side = plan.subimages[0] // ([1, *plan.scales][i])
            basicsr.write_lmdb(plan.out / f"{folder}.lmdb", [(p[0].stem, p[i], (side, side, 3)) for p in subs])
        return
    basicsr.write_lmdb(plan.out / "HR.lmdb", [(d.name, plan.out / d.file, d.shape) for d in ok])
    for s in plan.scales:
        entries = [(d.name, plan.lr_path(d.name, s), (d.shape[0] // s, d.shape[1] // s, 3)) for d in ok]
        basicsr.write_lmdb(plan.out / f"LR_bicubic_X{s}.lmdb", entries)


def export_basicsr(
    dataset: str | os.PathLike,
    config: str,
    out: str | os.PathLike,
    scales: tuple[int, ...] = (2, 3, 4),
    workers: int = 1,
    subimages: tuple[int, int] | None = None,
    lmdb: bool = False,
    progress: bool = False,
) -> ExportReport:
    """Export one config of a published dataset (folder or Hub id) as a DIV2K-style BasicSR folder.

    See the module docstring for the layout. ``subimages=(480, 240)`` is BasicSR's DIV2K setting.
    """
    scales = tuple(int(s) for s in scales)
    _validate(scales, subimages)
    if workers < 1:
        raise DiversegError("workers must be at least 1")
    if lmdb:
        require("lmdb", "lmdb")
    root = resolve_dataset(dataset, config)
    source = open_published(root, config)  # the one reader of a published folder
    names = basicsr.safe_names(source.record_keys())
    plan = Plan(Path(out), scales, tuple(subimages) if subimages else None)
    settings = {"config": config, "scales": list(scales), "subimages": list(subimages) if subimages else None}
    for leftover in _own_temps(plan, set(names.values())):  # half-written files of a killed run
        leftover.unlink()
    _check_settings(plan.out, settings)
    tasks = (
        (plan, record.key, names[record.key], record.data, record.extra.get("path"), record.error)
        for unit in source.units() for record in unit.records()
    )
    from tqdm import tqdm

    done = list(tqdm(_ordered_map(_run_task, tasks, workers), total=len(names), unit="img", disable=not progress))
    _finish(plan, done, lmdb)
    report = ExportReport(plan.out, sum(not d.error for d in done), sum(d.subimages for d in done))
    report.skipped = sorted((d.key, d.error) for d in done if d.error)
    counts = {"images": report.images, "subimages": report.subimages, "skipped": len(report.skipped)}
    write_json_atomic(plan.out / "export.json", {"version": EXPORT_VERSION, "settings": settings, "complete": True,
                                                 **counts})
    return report

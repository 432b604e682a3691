"""The export phase: a published subset -> a DIV2K-style folder that BasicSR, HAT and SwinIR train from.

``export_basicsr(dataset, config, out)`` writes::

    out/HR/<name>.<ext>                     the original bytes, untouched (a PNG stays PNG, a JPEG JPEG)
    out/LR_bicubic/X<s>/<name>x<s>.png      MATLAB imresize(modcrop(HR, s), 1/s), uint8, lossless PNG
    out/meta_info_HR.txt                    '<name>.<ext> (h,w,c)' per image, sorted by name
    out/key_map.jsonl                       {"name", "key", "file"} per image: names back to keys
    out/skipped.jsonl                       {"key", "reason"} per image that could not be exported
    out/export.json                         the settings, and "complete" once everything is written
    with subimages=(crop, step):
    out/HR_sub/<name>_s001.png ...          extract_subimages' crops (PNG), and the matching LR crops in
    out/LR_bicubic/X<s>_sub/<name>_s001.png (same names: BasicSR pairs them with filename_tmpl '{}')
    out/meta_info_HR_sub.txt
    with lmdb=True (the [lmdb] extra): HR[_sub].lmdb and LR_bicubic_X<s>[_sub].lmdb, as create_lmdb does.

*Mod-crop*: the HR is cropped at its bottom and right to a multiple of ``s`` before the LR is made,
so the LR is exactly HR/s pixels. Sub-image positions are computed on the HR cropped to a multiple of
every exported scale (their least common multiple; ``crop`` and ``step`` must be multiples of it), so
one ``HR_sub`` serves every ``X<s>_sub``; for images whose sides are such multiples (DIV2K's are)
this is exactly ``extract_subimages``' output. Names follow :func:`diverseg_hf.sr.basicsr.safe_names`.
BasicSR's folder reader takes the LR's extension from the HR's: whole-image pairs work for PNG
originals; ``subimages`` and ``lmdb`` work for every format.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..decode.images import decode_rgb, probe
from ..errors import DiversegError, ImageError, require
from ..files import TEMP_GLOB, write_atomic, write_bytes_atomic, write_json_atomic
from ..processes import process_pool
from ..storage import DatasetDir, iter_parquet_rows, parquet_schema
from . import basicsr
from .evaluate import modcrop
from .imresize import imresize

EXPORT_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """What to write for each image (picklable: it travels to the worker processes)."""

    out: Path
    scales: tuple[int, ...]
    subimages: tuple[int, int] | None

    @property
    def lcm(self) -> int:
        return math.lcm(*self.scales)

    def lr_path(self, name: str, s: int) -> Path:
        return self.out / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png"

    def sub_paths(self, name: str, count: int) -> list[list[Path]]:
        """Per sub-image: [HR_sub file, X<s>_sub file for each scale]."""
        folders = [self.out / "HR_sub"] + [self.out / "LR_bicubic" / f"X{s}_sub" for s in self.scales]
        return [[f / f"{basicsr.subimage_name(name, i)}.png" for f in folders] for i in range(count)]


@dataclass
class Done:
    """One image's outcome: its HR file and shape, how many sub-images, or why it was skipped."""

    key: str
    name: str = ""
    file: str = ""
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


def _published_images(dataset_dir: Path, config: str, with_images: bool = True) -> Iterator[dict[str, Any]]:
    """Rows ``{"key", "image": {"bytes", "path"}}`` of the config's Parquet shards (keys only if not
    ``with_images``). The one place that reads the published folder."""
    columns = ["key", "image"] if with_images else ["key"]
    for path in DatasetDir(dataset_dir).parquet_shards(config):
        names = parquet_schema(path).names
        if missing := [c for c in columns if c not in names]:
            raise DiversegError(f"{path}: no column {missing[0]!r}; columns: {names}")
        yield from iter_parquet_rows(path, columns=columns, batch_size=32)


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


def _shape_of(data: bytes) -> tuple[int, int, int]:
    """(height, width, channels) of the image as decoded (EXIF orientation applied), from its header."""
    probe(data)  # refuses unreadable headers and images over the pixel limit
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        try:
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        except Exception:  # a broken EXIF block is ignored, as the decoder does
            turned = False
        gray = im.mode in ("L", "1")
    return (width, height, 1 if gray else 3) if turned else (height, width, 1 if gray else 3)


def _missing(plan: Plan, name: str, height: int, width: int) -> tuple[list[Path], list[list[Path]]]:
    lr = [plan.lr_path(name, s) for s in plan.scales if not plan.lr_path(name, s).is_file()]
    subs: list[list[Path]] = []
    if plan.subimages:
        L = plan.lcm
        count = len(basicsr.subimage_boxes(height - height % L, width - width % L, *plan.subimages))
        subs = plan.sub_paths(name, count)
    return lr, subs


def export_one(plan: Plan, key: str, name: str, data: bytes | None, hint: str | None) -> Done:
    """Write one image's files (those not there yet); a bad image is a ``Done`` with ``error``."""
    try:
        if not data:
            raise ImageError("missing", "record has no image bytes")
        height, width, channels = _shape_of(data)
        if min(height, width) < max(plan.scales):
            raise ImageError("too-small", f"{width}x{height} is smaller than scale {max(plan.scales)}")
        suffix = basicsr.image_suffix(data, hint)
        hr_file = plan.out / "HR" / f"{name}.{suffix}"
        lr_missing, subs = _missing(plan, name, height, width)
        todo = [p for paths in subs for p in paths if not p.is_file()]
        if lr_missing or todo or not hr_file.is_file():
            _write(plan, name, decode_rgb(data), hr_file, data, subs)
    except ImageError as exc:
        return Done(key, error=exc.reason)
    except Exception as exc:  # a decoder crash on one image must not end the export
        return Done(key, error=f"corrupt: {type(exc).__name__}: {exc}")
    return Done(key, name, f"HR/{hr_file.name}", (height, width, channels), len(subs))


def _write(plan: Plan, name: str, rgb: Any, hr_file: Path, data: bytes, subs: list[list[Path]]) -> None:
    lr = {s: imresize(modcrop(rgb, s), 1.0 / s) for s in plan.scales}
    for s, image in lr.items():
        if not plan.lr_path(name, s).is_file():
            write_bytes_atomic(plan.lr_path(name, s), basicsr.encode_png(image))
    if subs:
        L, (crop, step) = plan.lcm, plan.subimages
        boxes = basicsr.subimage_boxes(rgb.shape[0] - rgb.shape[0] % L, rgb.shape[1] - rgb.shape[1] % L, crop, step)
        for (top, left), paths in zip(boxes, subs):
            crops = [rgb[top : top + crop, left : left + crop]]
            crops += [lr[s][top // s : (top + crop) // s, left // s : (left + crop) // s] for s in plan.scales]
            for path, image in zip(paths, crops):
                if not path.is_file():
                    write_bytes_atomic(path, basicsr.encode_png(image))
    if not hr_file.is_file():  # last: an HR file means its image was finished or is being finished
        write_bytes_atomic(hr_file, data)


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


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix two different exports in one folder; record the settings of this one."""
    record = out / "export.json"
    for leftover in out.rglob(TEMP_GLOB):  # half-written files of a killed run
        leftover.unlink()
    if record.is_file():
        before = json.loads(record.read_text())
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
    maps = [json.dumps({"name": d.name, "key": d.key, "file": d.file}, ensure_ascii=False) for d in ok]
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
    names = basicsr.safe_names(str(row["key"]) for row in _published_images(root, config, with_images=False))
    plan = Plan(Path(out), scales, tuple(subimages) if subimages else None)
    settings = {"config": config, "scales": list(scales), "subimages": list(subimages) if subimages else None}
    _check_settings(plan.out, settings)
    tasks = (
        (plan, str(row["key"]), names[str(row["key"])], (row["image"] or {}).get("bytes"),
         (row["image"] or {}).get("path"))
        for row in _published_images(root, config)
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

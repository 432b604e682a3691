"""The dataset folder: where each config's shards, the card, the figures and the registry live.

Layout of ``DATASET_DIR`` (what ``load_dataset(DATASET_DIR, NAME)`` and the Hub read)::

    README.md                                          the card (YAML configs for every config)
    data/NAME/train-XXXXX-of-YYYYY-GEN.parquet         images of config NAME (datasets Image feature)
    wds/NAME/train-XXXXX-GEN.tar                       the same images as WebDataset shards
    data/scores/NAME/train-XXXXX-of-YYYYY-GEN.parquet  the score table NAME came from (config `scores`)
    assets/NAME_*.png                                  figures the card shows
    .diverseg/configs.json                             registry: one entry per config (what the card needs)
    .diverseg/publish-pending/NAME.json                marker of a publish of NAME under way (or killed)
    .diverseg/NAME/                                    work files of curate/build (score table, selection)

``GEN`` is the config's *generation*: a digest of what was published, so that the files of a new
publish never share a name with the files the card names. Re-publishing is atomic from a reader's
side: the new generation's files are written beside the old ones (each file atomically), then the
registry and the card are switched to the new generation (each one atomic rename), and only then are
the old generation's files deleted. Every reader therefore sees one complete generation: the card's
``data_files`` patterns name it (``load_dataset``, streaming, the Hub) and so does the registry
(:meth:`DatasetDir.shards`). A folder without a registry entry
(hand-made, or from before generations) is read by the plain patterns ``train-*.parquet``/``train-*.tar``.

The shard folders and names are those of the format table (:mod:`.formats`).

Example:
    >>> d = DatasetDir("/data/diverseg")
    >>> d.parquet_dir("I").as_posix(), d.parquet_pattern("I", generation="3f2a9c01")
    ('/data/diverseg/data/I', 'data/I/train-*-3f2a9c01.parquet')
    >>> d.parquet_shard_name(0, 2, generation="3f2a9c01"), d.tar_shard_name(1, generation="3f2a9c01")
    ('train-00000-of-00002-3f2a9c01.parquet', 'train-00001-3f2a9c01.tar')
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import DiversegError
from ..files import TEMP_GLOB, write_json_atomic
from ..version import __version__
from .formats import PARQUET, SHARD_FORMATS, WEBDATASET, generation_suffix, shard_format

WORK_DIR = ".diverseg"
REGISTRY = f"{WORK_DIR}/configs.json"
PENDING_DIR = f"{WORK_DIR}/publish-pending"
CARD = "README.md"
SCORES_CONFIG = "scores"


class DatasetDir:
    """A dataset folder (see the module docstring for its layout)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- places
    @property
    def card_path(self) -> Path:
        return self.root / CARD

    @property
    def registry_path(self) -> Path:
        return self.root / REGISTRY

    @property
    def assets_dir(self) -> Path:
        return self.root / "assets"

    def work_dir(self, name: str) -> Path:
        """Where curate and build keep the score table and selection of config ``name``."""
        return self.root / WORK_DIR / name

    def parquet_dir(self, name: str) -> Path:
        return PARQUET.config_dir(self.root, name)

    def tar_dir(self, name: str) -> Path:
        return WEBDATASET.config_dir(self.root, name)

    def scores_dir(self, name: str) -> Path:
        """Parquet shards of the score table of config ``name`` (split ``name`` of the ``scores`` config)."""
        return self.root / "data" / SCORES_CONFIG / name

    def config_dirs(self, name: str) -> list[Path]:
        """Every folder that holds shards of config ``name``."""
        return [f.config_dir(self.root, name) for f in SHARD_FORMATS.values()] + [self.scores_dir(name)]

    # -- shard names, as the card's data_files patterns match them
    @staticmethod
    def parquet_pattern(name: str, split: str = "train", generation: str | None = None) -> str:
        return PARQUET.pattern(name, split, generation)

    @staticmethod
    def tar_pattern(name: str, split: str = "train", generation: str | None = None) -> str:
        return WEBDATASET.pattern(name, split, generation)

    @staticmethod
    def scores_pattern(name: str, generation: str | None = None) -> str:
        return f"data/{SCORES_CONFIG}/{name}/*{generation_suffix(generation)}.{PARQUET.suffix}"

    @staticmethod
    def parquet_shard_name(index: int, count: int, split: str = "train", generation: str | None = None) -> str:
        return PARQUET.shard_name(index, count, split, generation)

    @staticmethod
    def tar_shard_name(index: int, split: str = "train", generation: str | None = None) -> str:
        return WEBDATASET.shard_name(index, 0, split, generation)

    def shards(self, format: str, name: str, split: str = "train", missing_ok: bool = False) -> list[Path]:
        """The shards of config ``name`` in ``format`` (its registered generation), in order; an error when
        there are none (unless ``missing_ok``).

        Example:
            >>> DatasetDir("/nonexistent").shards("parquet", "I")
            Traceback (most recent call last):
            ...
            diverseg_hf.errors.DiversegError: no train-*.parquet shards in /nonexistent/data/I
        """
        fmt = shard_format(format)
        pattern = fmt.pattern(name, split, self.generation(name)).rsplit("/", 1)[1]
        files = sorted(fmt.config_dir(self.root, name).glob(pattern))
        if not files and not missing_ok:
            raise DiversegError(f"no {pattern} shards in {fmt.config_dir(self.root, name)}")
        return files

    def parquet_shards(self, name: str, split: str = "train", missing_ok: bool = False) -> list[Path]:
        """The Parquet shards of config ``name``: :meth:`shards` of ``"parquet"``."""
        return self.shards(PARQUET.name, name, split, missing_ok)

    def tar_shards(self, name: str, split: str = "train") -> list[Path]:
        """The WebDataset tar shards of config ``name``: :meth:`shards` of ``"webdataset"``."""
        return self.shards(WEBDATASET.name, name, split)

    # -- the config registry
    def configs(self) -> list[dict[str, Any]]:
        """Registry entries of the published configs, in publishing order (empty for a new folder)."""
        path = self.registry_path
        return json.loads(path.read_text())["configs"] if path.exists() else []

    def config_names(self) -> list[str]:
        return [c["name"] for c in self.configs()]

    def generation(self, name: str) -> str | None:
        """The registered generation of config ``name`` (None when unregistered or from before generations)."""
        return next((c.get("generation") for c in self.configs() if c["name"] == name), None)

    def register(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Add or replace the registry entry of ``entry["name"]``; returns all entries."""
        configs = [c for c in self.configs() if c["name"] != entry["name"]] + [entry]
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.registry_path, {"package_version": __version__, "configs": configs})
        return configs

    def any_gated(self) -> bool:
        """Whether a published config asks for gated access (gating applies to a whole Hub repo)."""
        return any(c.get("gated") for c in self.configs())

    # -- publishing a generation: begin, write files, switch registry + card, finish
    def pending_path(self, name: str) -> Path:
        return self.root / PENDING_DIR / f"{name}.json"

    def begin_publish(self, name: str, generation: str) -> None:
        """Mark a publish of generation ``generation`` of config ``name`` as under way (before any file is
        written), after sweeping what an interrupted earlier publish left (see :meth:`sweep`)."""
        self.sweep(name, keep=generation)
        write_json_atomic(self.pending_path(name), {"config": name, "generation": generation})

    def finish_publish(self, name: str) -> None:
        """After the registry and the card name the new generation: delete the files of the others, unmark."""
        self.sweep(name, keep=self.generation(name))
        self.pending_path(name).unlink(missing_ok=True)

    def incomplete_publish(self) -> list[str]:
        """Configs whose last publish did not complete (killed or failed): a folder to re-publish, not to push.

        Example:
            >>> DatasetDir("/nonexistent").incomplete_publish()
            []
        """
        folder = self.root / PENDING_DIR
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def sweep(self, name: str, keep: str | None) -> list[Path]:
        """Delete the files of config ``name`` that belong neither to the registered generation nor to
        ``keep`` (an unfinished generation worth resuming), temporary files of killed writers (beside the
        shards, the card, the registry and the figures), and the staging folders of earlier versions;
        returns what was deleted."""
        entry = next((c for c in self.configs() if c["name"] == name), None)
        legacy = entry is not None and not entry.get("generation")  # its files have no generation to tell
        keep_suffixes = {f"{generation_suffix(g)}.{f.suffix}" for g in {self.generation(name), keep} if g
                         for f in SHARD_FORMATS.values()}
        deleted: list[Path] = []
        for folder in (self.root, self.root / WORK_DIR, self.root / PENDING_DIR, self.assets_dir):
            for temp in sorted(folder.glob(TEMP_GLOB)) if folder.is_dir() else []:
                temp.unlink()  # the card's, the registry's, a marker's or a figure's
                deleted.append(temp)
        for folder in self.config_dirs(name):
            stale = folder.with_name(f".{folder.name}.partial")  # staging folders of earlier versions
            if stale.is_dir():
                shutil.rmtree(stale)
                deleted.append(stale)
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                temp = path.match(TEMP_GLOB)
                kept = legacy or any(path.name.endswith(s) for s in keep_suffixes)
                if path.is_file() and (temp or not kept):
                    path.unlink()
                    deleted.append(path)
        return deleted


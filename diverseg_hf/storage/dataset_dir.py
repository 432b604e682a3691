"""The dataset folder: where each config's shards, the card, the figures and the registry live.

Layout of ``DATASET_DIR`` (what ``load_dataset(DATASET_DIR, NAME)`` and the Hub read)::

    README.md                                        the card (YAML configs for every config)
    data/NAME/train-XXXXX-of-YYYYY.parquet           images of config NAME (datasets Image feature)
    wds/NAME/train-XXXXX.tar                         the same images as WebDataset shards
    data/scores/NAME/train-XXXXX-of-YYYYY.parquet    the score table NAME came from (config `scores`)
    assets/NAME_*.png                                figures the card shows
    .diverseg/configs.json                           registry: one entry per config (what the card needs)
    .diverseg/NAME/                                  work files of curate/build (score table, selection)

A folder of shards is written as a hidden staging folder beside its final place and swapped in when
complete (:meth:`DatasetDir.stage`, :meth:`DatasetDir.swap_in`).

Example:
    >>> d = DatasetDir("/data/diverseg")
    >>> d.parquet_dir("I").as_posix(), d.parquet_pattern("I"), d.parquet_shard_name(0, 2)
    ('/data/diverseg/data/I', 'data/I/train-*.parquet', 'train-00000-of-00002.parquet')
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import DiversegError
from ..files import write_json_atomic
from ..version import __version__

WORK_DIR = ".diverseg"
REGISTRY = f"{WORK_DIR}/configs.json"
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
        return self.root / "data" / name

    def tar_dir(self, name: str) -> Path:
        return self.root / "wds" / name

    def scores_dir(self, name: str) -> Path:
        """Parquet shards of the score table of config ``name`` (split ``name`` of the ``scores`` config)."""
        return self.root / "data" / SCORES_CONFIG / name

    # -- shard names, as the card's data_files patterns match them
    @staticmethod
    def parquet_pattern(name: str, split: str = "train") -> str:
        return f"data/{name}/{split}-*.parquet"

    @staticmethod
    def tar_pattern(name: str, split: str = "train") -> str:
        return f"wds/{name}/{split}-*.tar"

    @staticmethod
    def scores_pattern(name: str) -> str:
        return f"data/{SCORES_CONFIG}/{name}/*.parquet"

    @staticmethod
    def parquet_shard_name(index: int, count: int, split: str = "train") -> str:
        return f"{split}-{index:05d}-of-{count:05d}.parquet"

    @staticmethod
    def tar_shard_name(index: int, split: str = "train") -> str:
        return f"{split}-{index:05d}.tar"

    def parquet_shards(self, name: str, split: str = "train", missing_ok: bool = False) -> list[Path]:
        """The Parquet shards of config ``name``, in order; an error when there are none (unless ``missing_ok``).

        Example:
            >>> DatasetDir("/nonexistent").parquet_shards("I")
            Traceback (most recent call last):
            ...
            diverseg_hf.errors.DiversegError: no train-*.parquet shards in /nonexistent/data/I
        """
        return _shards(self.parquet_dir(name), f"{split}-*.parquet", missing_ok)

    def tar_shards(self, name: str, split: str = "train") -> list[Path]:
        """The WebDataset tar shards of config ``name``, in order; an error when there are none."""
        return _shards(self.tar_dir(name), f"{split}-*.tar")

    # -- the config registry
    def configs(self) -> list[dict[str, Any]]:
        """Registry entries of the published configs, in publishing order (empty for a new folder)."""
        path = self.registry_path
        return json.loads(path.read_text())["configs"] if path.exists() else []

    def config_names(self) -> list[str]:
        return [c["name"] for c in self.configs()]

    def register(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Add or replace the registry entry of ``entry["name"]``; returns all entries."""
        configs = [c for c in self.configs() if c["name"] != entry["name"]] + [entry]
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.registry_path, {"package_version": __version__, "configs": configs})
        return configs

    def any_gated(self) -> bool:
        """Whether a published config asks for gated access (gating applies to a whole Hub repo)."""
        return any(c.get("gated") for c in self.configs())

    # -- staging
    @staticmethod
    def stage(final: Path) -> Path:
        """A fresh hidden folder beside ``final`` to write its new contents into."""
        stage = final.with_name(f".{final.name}.partial")
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        return stage

    @staticmethod
    def swap_in(stage: Path, final: Path) -> None:
        """Replace ``final`` by the completed ``stage``."""
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)


def _shards(folder: Path, pattern: str, missing_ok: bool = False) -> list[Path]:
    files = sorted(folder.glob(pattern))
    if not files and not missing_ok:
        raise DiversegError(f"no {pattern} shards in {folder}")
    return files

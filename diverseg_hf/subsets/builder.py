"""The DiverSeg ``datasets`` builder class ``DiverSegBuilder``: configs I (ImageNet-1k), P (PASS), IP (both).

datasets >= 4 runs no loading scripts, so the class is used directly (it is also re-exported by
``builders/diverseg.py`` for those who want the file; the subset presets it serves are
:mod:`diverseg_hf.subsets.presets`). ``data_dir`` is a dataset folder made by
``diverseg build`` (or ``diverseg publish``/``curate``, or a snapshot of a pushed repo); the builder reads
its Parquet shards ``data/<CONFIG>/train-*.parquet`` with their own features (the image bytes stay the
originals). Given ``source=`` and/or ``from_list=`` for a config the folder lacks, it first builds it
with :func:`diverseg_hf.subsets.build.build` (``build_options`` are that function's other keyword arguments).

Example:
    >>> from diverseg_hf.subsets.builder import DiverSegBuilder
    >>> builder = DiverSegBuilder(config_name="I", data_dir="diverseg")                     # doctest: +SKIP
    >>> builder.download_and_prepare(); ds = builder.as_dataset(split="train")      # doctest: +SKIP
    >>> DiverSegBuilder(config_name="P", data_dir="diverseg", source="/data/pass",         # doctest: +SKIP
    ...          from_list="DiverSeg-P_list.txt").as_streaming_dataset(split="train")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import datasets
from datasets.builder import Key

from ..cards.render import LICENSE_PRESETS
from ..errors import DiversegError
from ..storage import DatasetDir, iter_parquet_rows, parquet_schema
from .build import build
from .presets import SUBSET_PRESETS

CITATION = """@inproceedings{ohtani2024rethinking,
  title     = {Rethinking Image Super-Resolution from Training Data Perspectives},
  author    = {Ohtani, Go and Tadokoro, Ryu and Yamada, Ryosuke and Asano, Yuki M. and Laina, Iro and
               Rupprecht, Christian and Inoue, Nakamasa and Yokota, Rio and Kataoka, Hirokatsu and
               Aoki, Yoshimitsu},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2024}
}"""
HOMEPAGE = "https://github.com/gohtanii/DiverSeg-dataset"


@dataclass
class DiverSegBuilderConfig(datasets.BuilderConfig):
    """A DiverSeg config; ``source``/``from_list``/``build_options`` are used only to build a missing config."""

    source: Any = None
    from_list: Any = None
    build_options: dict[str, Any] = field(default_factory=dict)


class DiverSegBuilder(datasets.GeneratorBasedBuilder):
    """DiverSeg-I/-P/-IP super-resolution training images, read from (or built into) ``data_dir``."""

    BUILDER_CONFIG_CLASS = DiverSegBuilderConfig
    BUILDER_CONFIGS: ClassVar[list[datasets.BuilderConfig]] = [
        DiverSegBuilderConfig(name=s.name, description=s.title) for s in SUBSET_PRESETS.values()]
    DEFAULT_CONFIG_NAME = "I"
    VERSION = datasets.Version("1.0.0")

    def _folder(self) -> Path:
        if not self.config.data_dir:
            raise DiversegError("pass data_dir=: a dataset folder made by `diverseg build` (or to build into)")
        return Path(self.config.data_dir)

    def _shards(self) -> list[Path]:
        return DatasetDir(self._folder()).parquet_shards(self.config.name, missing_ok=True)

    def _info(self) -> datasets.DatasetInfo:
        shards = self._shards() if self.config.data_dir else []
        return datasets.DatasetInfo(
            description=f"{self.config.description}: DiverSeg super-resolution training images.",
            features=_features(shards[0]) if shards else None,  # a config built later sets them then
            homepage=HOMEPAGE,
            citation=CITATION,
            license=LICENSE_PRESETS[self.config.name]["license_text"],
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        shards = self._shards()
        if not shards and (self.config.source is not None or self.config.from_list is not None):
            build(self.config.name, self._folder(), source=self.config.source, from_list=self.config.from_list,
                  **self.config.build_options)
            shards = self._shards()
        if not shards:
            raise DiversegError(f"{self._folder()} has no config {self.config.name!r} (no data/{self.config.name}/"
                                "train-*.parquet); run `diverseg build` or pass source=/from_list=")
        self.info.features = _features(shards[0])
        return [datasets.SplitGenerator(name=datasets.Split.TRAIN, gen_kwargs={"files": [str(p) for p in shards]})]

    def _generate_examples(self, files: list[str]):
        for file_index, path in enumerate(files):
            for row, example in enumerate(iter_parquet_rows(path)):
                yield Key(file_index, row), example


def _features(shard: str | os.PathLike) -> datasets.Features:
    """The features a published shard declares (its ``huggingface`` schema metadata)."""
    return datasets.Features.from_arrow_schema(parquet_schema(shard))

"""Read a published DiverSeg dataset (a local dataset folder or a Hub dataset repo): its card's configs, the
files of a config, the source a config was made from, and its images as a source.

A folder is read in place; from a Hub repo the card and the files of the configs asked for are downloaded
into the Hugging Face cache (``hf_hub_download``: ``HF_ENDPOINT``, ``HF_TOKEN`` or the login cache), never
more. The files of a config are those its card's ``data_files`` patterns name (``scores`` has one split per
published config, named after it).

Example:
    >>> PublishedDataset("my-org/diverseg").is_local
    False
    >>> source_from_card("## Subset `I`\\n\\n- **Source**: `ILSVRC/imagenet-1k` (hub, revision `4603483`).", "I")
    {'kind': 'hub', 'spec': 'ILSVRC/imagenet-1k', 'revision': '4603483'}
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DiversegError
from ..sources.published import PublishedSource, parquet_config_source
from ..storage import DatasetDir
from ..storage.dataset_dir import CARD, SCORES_CONFIG

KIND = PublishedSource.kind  # the kind a selection records for a published config
_SOURCE_LINE = re.compile(r"- \*\*Source\*\*: `([^`]*)` \(([^,)]*)(?:, revision `([^`]*)`)?\)")


def source_from_card(card: str, name: str) -> dict[str, Any] | None:
    """The source the card says config ``name`` was made from (kind, spec, revision), or None."""
    _, found, rest = card.partition(f"## Subset `{name}`")
    match = _SOURCE_LINE.search(rest.split("\n## ", 1)[0]) if found else None
    if match is None:
        return None
    return {"kind": match[2], "spec": match[1], **({"revision": match[3]} if match[3] else {})}


class PublishedDataset:
    """A published dataset: ``spec`` is a dataset folder or a Hub dataset repo id (at ``revision``)."""

    def __init__(self, spec: str | os.PathLike, revision: str | None = None):
        self.spec = str(spec)
        self.revision = revision
        self.is_local = Path(self.spec).is_dir()
        self._card: str | None = None
        self._paths: list[str] | None = None

    @property
    def where(self) -> str:
        return self.spec if self.is_local else f"datasets/{self.spec}"

    def card(self) -> str:
        """The card's text (an error naming the dataset when it has none or cannot be read)."""
        if self._card is None:
            self._card = self._path(CARD).read_text(encoding="utf-8")
        return self._card

    def configs(self) -> dict[str, list[dict[str, Any]]]:
        """config name -> its ``data_files`` entries (split, path pattern), from the card's YAML."""
        import yaml

        parts = self.card().split("---", 2)
        meta = yaml.safe_load(parts[1]) if len(parts) == 3 and not parts[0].strip() else None
        if not isinstance(meta, dict) or not meta.get("configs"):
            raise DiversegError(f"{self.where} is not a published dataset (its {CARD} declares no configs)")
        return {c["config_name"]: c["data_files"] for c in meta["configs"]}

    def files(self, config: str, split: str = "train") -> list[Path]:
        """The files of ``split`` of ``config``, in order, as local paths (downloaded from the Hub)."""
        configs = self.configs()
        if config not in configs:
            raise DiversegError(f"{self.where} has no config {config!r} (configs: {', '.join(configs)})")
        patterns = [p for e in configs[config] if e.get("split", "train") == split
                    for p in ([e["path"]] if isinstance(e["path"], str) else e["path"])]
        if not patterns:
            raise DiversegError(f"config {config!r} of {self.where} has no split {split!r}")
        paths = sorted(p for p in self._listing() if any(fnmatch.fnmatch(p, pat) for pat in patterns))
        if not paths:
            raise DiversegError(f"no files of config {config!r} ({', '.join(patterns)}) in {self.where}")
        return [self._path(p) for p in paths]

    def scores_files(self, name: str) -> list[Path]:
        """The files of the score table that config ``name`` was selected from (split ``name`` of ``scores``)."""
        configs = self.configs()
        if name not in configs or name == SCORES_CONFIG:
            raise DiversegError(f"{self.where} has no published config {name!r} "
                                f"(configs: {', '.join(c for c in configs if c != SCORES_CONFIG)})")
        if SCORES_CONFIG not in configs:
            raise DiversegError(f"{self.where} has no `{SCORES_CONFIG}` config (published with --no-scores?)")
        return self.files(SCORES_CONFIG, name)

    def entry(self, name: str) -> dict[str, Any] | None:
        """The registry entry of config ``name`` (a local folder published by diverseg), else None."""
        if not self.is_local:
            return None
        return next((c for c in DatasetDir(self.spec).configs() if c["name"] == name), None)

    def source_of(self, name: str) -> dict[str, Any] | None:
        """The source config ``name`` was made from, as its registry or card records it (None: not said)."""
        entry = self.entry(name)
        return entry["source"] if entry and entry.get("source") else source_from_card(self.card(), name)

    def describe(self, name: str) -> dict[str, Any]:
        """The description of config ``name``'s images as a source (see :func:`open_published`)."""
        spec = str(Path(self.spec).resolve()) if self.is_local else self.spec
        return {"kind": KIND, "spec": spec, "config": name, "revision": self.revision}

    def _listing(self) -> list[str]:
        if self._paths is None:
            if self.is_local:
                root = Path(self.spec)
                self._paths = [p.relative_to(root).as_posix() for p in root.rglob("*")
                               if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)]
            else:
                self._paths = self._hub(lambda api: api.list_repo_files(self.spec, repo_type="dataset",
                                                                         revision=self.revision))
        return self._paths

    def _path(self, path_in_repo: str) -> Path:
        if self.is_local:
            path = Path(self.spec) / path_in_repo
            if not path.is_file():
                raise DiversegError(f"{self.spec} is not a published dataset (no {path_in_repo})")
            return path
        return Path(self._hub(lambda api: api.hf_hub_download(self.spec, path_in_repo, repo_type="dataset",
                                                               revision=self.revision)))

    def _hub(self, call: Any) -> Any:
        """``call(HfApi())``, its failures (not found, gated, no network) as one-line errors."""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        if not re.fullmatch(r"[\w.-]+/[\w.-]+", self.spec):
            raise DiversegError(f"{self.spec} is neither a dataset folder nor a Hub dataset id (org/name)")
        try:
            return call(HfApi())
        except (HfHubHTTPError, OSError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DiversegError(f"cannot read {self.where}: {reason}") from None


def open_published(description: dict[str, Any]) -> PublishedSource:
    """The images of the published config a selection recorded (:meth:`PublishedDataset.describe`).

    Example:
        >>> open_published({"kind": "published", "spec": "/no/such/folder", "config": "I"})
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/folder is neither a dataset folder nor a Hub dataset id (org/name)
    """
    dataset = PublishedDataset(description["spec"], description.get("revision"))
    files = dataset.files(description["config"])
    options = {k: v for k, v in description.items() if k not in ("kind", "spec")}
    return parquet_config_source(files, description["spec"], description["config"], options)

"""The local side of a push: which files of a dataset folder go up, in which commits, and what is deleted, so
that a Hub repo never advertises rows it does not serve.

Readers of a Hub dataset see what its card (``README.md``) points at: the ``data_files`` patterns of its
YAML ``configs`` (``load_dataset(repo, cfg)``, streaming) and folders its text globs (the WebDataset
snippet). A push therefore splits the files to upload in two (:func:`split_for_readers`):

* **early** files, committed first in bounded batches: new paths that the card now on the Hub cannot
  reach (no pattern of it matches them and their folder holds no file on the Hub yet);
* the **final** commit: everything else (changed files, new shards of configs the Hub card reads, the
  card itself) plus the deletions (:func:`stale_paths`): the shards a config of the new card would
  read but the folder no longer has, and with ``prune`` every other file the folder lacks.

A push killed at any point leaves the card and every file it reads as they were before, or all of them
new. Files that are never uploaded (:func:`is_uploaded`): hidden ones (``.diverseg/`` work files, staging
folders ``.NAME.partial``, ``.git``, temporary files), as ``datasets`` ignores them too.

Example:
    >>> card = "---\\nconfigs:\\n- config_name: I\\n  data_files: data/I/*.parquet\\n---\\n"
    >>> split_for_readers(["data/I/b.parquet", "data/J/a.parquet"], {"data/I/a.parquet", "README.md"}, card)
    (['data/J/a.parquet'], ['data/I/b.parquet'])
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..errors import DiversegError, ParameterError
from ..storage import DatasetDir

#: The dataset card; files the Hub manages itself and that ``prune`` keeps.
CARD = "README.md"
KEEP_ON_PRUNE = frozenset({".gitattributes"})
#: A folder a killed ``publish`` leaves behind (``DatasetDir.stage``).
STAGING_SUFFIX = ".partial"
#: What a card without ``configs`` reads: every file (``datasets`` infers the configs from the layout).
EVERY_FILE = re.compile(".*")


@dataclass(frozen=True)
class LocalFile:
    path_in_repo: str
    path: Path
    size: int

    def sha256(self) -> str:
        """The LFS oid of the file."""
        return self._digest(hashlib.sha256())

    def git_blob_id(self) -> str:
        """The git blob sha1 (``blob <size>\\0`` + content), the id the Hub lists for regular files."""
        return self._digest(hashlib.sha1(b"blob %d\0" % self.size))

    def _digest(self, digest: hashlib._Hash) -> str:
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


def list_local_files(folder: str | os.PathLike) -> list[LocalFile]:
    """The files of a dataset folder to upload, sorted, without hidden ones (``.diverseg/``, staging folders).

    Example:
        >>> list_local_files("diverseg")[0].path_in_repo  # doctest: +SKIP
        'README.md'
    """
    root = Path(folder)
    if not root.is_dir():
        raise DiversegError(f"{folder} is not a folder")
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and is_uploaded(rel.as_posix()):
            out.append(LocalFile(rel.as_posix(), path, path.stat().st_size))
    return out


def plan_commits(files: list[LocalFile], max_files: int, max_bytes: int) -> list[list[LocalFile]]:
    """Split ``files`` (in order) into batches of at most ``max_files`` files and ``max_bytes`` bytes.

    Example:
        >>> f = [LocalFile(str(i), Path(str(i)), 10) for i in range(5)]
        >>> [len(b) for b in plan_commits(f, max_files=2, max_bytes=100)]
        [2, 2, 1]
    """
    if max_files < 1 or max_bytes < 1:
        raise DiversegError("max_files_per_commit and max_bytes_per_commit must be positive")
    batches: list[list[LocalFile]] = []
    current: list[LocalFile] = []
    size = 0
    for f in files:
        if current and (len(current) >= max_files or size + f.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        batches.append(current)
    return batches


def check_repo_id(repo_id: str, param: str = "repo_id") -> str:
    """``repo_id`` if it is a valid Hub repo id (``name`` or ``namespace/name``), else a :class:`ParameterError`.

    Example:
        >>> check_repo_id("my-org/diverseg")
        'my-org/diverseg'
        >>> check_repo_id("my-org//diverseg")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: repo_id must be NAME or NAMESPACE/NAME (letters, digits, '-', '_', \
'.'; at most 96 characters), not 'my-org//diverseg'
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ParameterError(param, "must be NAME or NAMESPACE/NAME (letters, digits, '-', '_', '.'; at most 96 "
                                    f"characters), not {repo_id!r}") from None
    return repo_id


def is_uploaded(path_in_repo: str) -> bool:
    """Whether a file of a dataset folder is pushed: no part of its path is hidden (starts with a dot).

    Example:
        >>> [is_uploaded(p) for p in ["data/I/x.parquet", ".diverseg/configs.json", "data/.I.partial/x.parquet"]]
        [True, False, False]
    """
    return not any(part.startswith(".") for part in path_in_repo.split("/"))


def staging_leftovers(folder: str | os.PathLike) -> list[str]:
    """What a publish into ``folder`` that did not complete left: the marker of each config whose last publish
    did not complete (:meth:`~diverseg_hf.storage.DatasetDir.incomplete_publish`), and staging folders
    (``.NAME.partial``) of earlier versions outside the hidden work folders.

    Example:
        >>> staging_leftovers("/no/such/folder")
        []
    """
    root = Path(folder)
    dataset = DatasetDir(root)
    markers = [dataset.pending_path(name).relative_to(root).as_posix() for name in dataset.incomplete_publish()]
    found = [p.relative_to(root) for p in root.rglob(f".*{STAGING_SUFFIX}") if p.is_dir()]
    return markers + sorted(rel.as_posix() for rel in found
                            if rel.parent == Path(".") or is_uploaded(rel.parent.as_posix()))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A ``data_files`` glob as a regex: ``*`` and ``?`` stay within one folder, ``**`` spans folders.

    Example:
        >>> [bool(glob_regex("data/I/*.parquet").match(p)) for p in ["data/I/a.parquet", "data/I/x/a.parquet"]]
        [True, False]
        >>> bool(glob_regex("data/**/*.parquet").match("data/I/x/a.parquet"))
        True
    """
    out = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern.lstrip("/")):
        if token.startswith("**"):
            out.append("(?:.*/)?" if token.endswith("/") else ".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out) + r"\Z")


def card_patterns(card_text: str | None) -> list[re.Pattern[str]] | None:
    """The patterns of the files the configs of a card read; None without a card; a match-all pattern for a
    card that declares no configs (``datasets`` then infers them from every file).

    Example:
        >>> [p.pattern for p in card_patterns("---\\nconfigs:\\n- config_name: a\\n  data_dir: d\\n---\\n")]
        ['d/.*\\\\Z']
        >>> card_patterns(None) is None, card_patterns("# no YAML")[0].pattern
        (True, '.*')
    """
    if card_text is None:
        return None
    match = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", card_text, re.S)
    try:
        meta = (yaml.safe_load(match.group(1)) if match else None) or {}
    except yaml.YAMLError:
        meta = {}
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not configs or not isinstance(configs, list):
        return [EVERY_FILE]
    globs: list[str] = []
    for config in configs:
        globs += _config_globs(config) if isinstance(config, dict) else ["**"]
    return [glob_regex(g) for g in globs]


def _config_globs(config: dict[str, Any]) -> list[str]:
    """The globs of one YAML config entry (``data_files`` as a string, a list, a split list or a mapping)."""
    if "data_files" not in config:
        return [f"{config['data_dir'].rstrip('/')}/**"] if config.get("data_dir") else ["**"]
    files = config["data_files"]
    entries = files.items() if isinstance(files, dict) else [(None, f) for f in _listed(files)]
    globs = []
    for _, entry in entries:
        paths = entry.get("path", []) if isinstance(entry, dict) else entry
        globs += [str(p) for p in _listed(paths)]
    prefix = f"{config['data_dir'].rstrip('/')}/" if config.get("data_dir") else ""
    return [prefix + g for g in globs]


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _matches(path: str, patterns: Iterable[re.Pattern[str]] | None) -> bool:
    return any(p.match(path) for p in patterns or ())


def split_for_readers(todo: Iterable[str], remote: set[str], live_card: str | None) -> tuple[list[str], list[str]]:
    """Split the paths to upload into (early, final); see the module docstring.

    ``remote`` holds the paths on the Hub branch now; ``live_card`` is the text of its card (None if none).
    """
    patterns = card_patterns(live_card)
    remote_dirs = {posixpath.dirname(p) for p in remote}
    early, final = [], []
    for path in todo:
        seen = (path == CARD or path in remote or posixpath.dirname(path) in remote_dirs
                or _matches(path, patterns))
        (final if seen else early).append(path)
    return early, final


def stale_paths(remote: Iterable[str], local: set[str], new_card: str | None, prune: bool) -> list[str]:
    """Remote paths to delete in the final commit: those the folder does not have that a config of ``new_card``
    names in its ``data_files`` or that lie in a subfolder the folder has files in (a re-published config's
    old generation: ``wds/NAME/`` is named by no YAML pattern where the card declares Parquet) (always),
    and with ``prune`` every other one the folder lacks (``.gitattributes`` kept). A card without
    ``configs`` deletes nothing by itself.

    Example:
        >>> card = "---\\nconfigs:\\n- config_name: I\\n  data_files: data/I/*.parquet\\n---\\n"
        >>> stale_paths(["data/I/old.parquet", "notes.txt", ".gitattributes"], set(), card, prune=False)
        ['data/I/old.parquet']
    """
    patterns = [p for p in card_patterns(new_card) or () if p is not EVERY_FILE]
    local_dirs = {posixpath.dirname(p) for p in local} - {""}
    return sorted(p for p in remote if p not in local and p not in KEEP_ON_PRUNE
                  and (prune or _matches(p, patterns) or posixpath.dirname(p) in local_dirs))

"""The only module that talks to the Hugging Face Hub: push a dataset folder, idempotently and resumably.

``push_folder`` creates the dataset repo if missing, uploads the data files in several commits of bounded
file count and size, and the card ``README.md`` last, so the repo never advertises files it lacks. Files whose
content is already on the Hub (same LFS sha256 or git blob id) are skipped, so a second push of an unchanged
folder uploads nothing and makes no commit, and a push killed midway uploads only what is missing when re-run.
Transient failures (429, 5xx, network) are retried with exponential backoff, each retry logged as one
warning line (huggingface_hub's own two-line retry messages are folded into the same format); 401/403/404
become one-line ``DiversegError`` messages that never contain the token. A repo id without a namespace is
the token owner's (as the Hub does when creating it). Gating (``gated``) is a setting of the whole repo,
never of one config. The progress bar counts files (uploaded and already on the Hub) and honours
``HF_HUB_DISABLE_PROGRESS_BARS``.

The endpoint, token and transfer backend are huggingface_hub's own: ``HF_ENDPOINT``, ``HF_TOKEN`` or the login
cache (``hf auth login``), and xet when ``hf_xet`` is installed.

Example:
    >>> from diverseg_hf.hub import push_folder
    >>> result = push_folder("diverseg", "my-org/diverseg", private=True)  # doctest: +SKIP
    >>> result.commits, len(result.uploaded), len(result.skipped)  # doctest: +SKIP
    (['3f2c…', '9ab1…'], 14, 0)
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import sleep
from typing import Literal, TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .errors import DiversegError
from .hub_logging import one_line_retries

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The Hub recommends fewer than 100 files per commit.
MAX_FILES_PER_COMMIT = 50
#: Bytes of files per commit (a file larger than this gets a commit of its own).
MAX_BYTES_PER_COMMIT = 2 * 1024**3
#: Local folders that are never uploaded (pipeline state, git, caches).
SKIPPED_DIRS = frozenset({".diverseg", ".git", ".cache"})
#: The dataset card, uploaded last.
CARD = "README.md"
#: HTTP statuses worth retrying, attempts in all, and the backoff (seconds) before the first retry.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
RETRY_ATTEMPTS = 6
RETRY_FIRST_WAIT = 2.0
RETRY_MAX_WAIT = 60.0
#: Longest wait honoured from a 429's ``Retry-After`` (the Hub's commit quota is hourly).
RETRY_AFTER_CAP = 900.0


@dataclass
class PushResult:
    """What a push did: the commits made, the files uploaded, those already on the Hub, those pruned."""

    repo_id: str
    revision: str
    commits: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


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
    """The files of a dataset folder to upload, sorted, without ``.diverseg/``, ``.git/`` and ``.cache/``.

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
        if path.is_file() and not SKIPPED_DIRS.intersection(rel.parts[:-1]):
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


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
    token: str | None = None,
    gated: Literal["auto", "manual"] | None = None,
    max_files_per_commit: int = MAX_FILES_PER_COMMIT,
    max_bytes_per_commit: int = MAX_BYTES_PER_COMMIT,
    prune: bool = False,
    endpoint: str | None = None,
) -> PushResult:
    """Upload a dataset folder to the Hub dataset repo ``repo_id``; see the module docstring.

    ``revision`` is an existing branch (default ``main``); ``private`` applies when the repo is created;
    ``gated`` ("auto" or "manual") gates the repo; ``prune`` deletes, in the last commit, the files of the
    branch the folder does not have (``.gitattributes`` kept), so that re-sharded data leaves no stale shards
    behind; ``endpoint`` defaults to ``HF_ENDPOINT``.

    Example:
        >>> push_folder("diverseg", "my-org/diverseg", gated="manual").uploaded[-1]  # doctest: +SKIP
        'README.md'
    """
    files = list_local_files(folder)
    if not files:
        raise DiversegError(f"{folder} has no files to push")
    if gated not in (None, "auto", "manual"):
        raise DiversegError(f"gated must be 'auto' or 'manual', not {gated!r}")
    token = token or get_token()
    if not token:
        raise DiversegError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    card = [f for f in files if f.path_in_repo == CARD]
    batches = plan_commits([f for f in files if f.path_in_repo != CARD], max_files_per_commit, max_bytes_per_commit)
    if card or prune:
        batches.append(card)
    keep = {f.path_in_repo for f in files} | {".gitattributes"} if prune else None
    summary = message or f"Upload {Path(folder).name} with diverseg"
    result = PushResult(repo_id, revision or "main")
    try:
        with one_line_retries(), logging_redirect_tqdm():
            result.repo_id = repo_id = _retry(lambda: _qualified(api, repo_id))
            _retry(lambda: _ensure_repo(api, repo_id, private))
            if gated:
                _retry(lambda: api.update_repo_settings(repo_id, repo_type="dataset", gated=gated))
            _push_batches(api, result, batches, summary, keep)
    except HfHubHTTPError as err:
        raise DiversegError(_explain(err, repo_id, result.revision)) from None
    except _transport_errors() as err:
        raise DiversegError(f"cannot reach the Hub at {api.endpoint}: {type(err).__name__}") from None
    logger.info("pushed %s: %d commits, %d files uploaded, %d already there, %d deleted", repo_id,
                len(result.commits), len(result.uploaded), len(result.skipped), len(result.deleted))
    return result


def _push_batches(api: HfApi, result: PushResult, batches: list[list[LocalFile]], summary: str,
                  keep: set[str] | None) -> None:
    """Commit the batches in order (``keep`` prunes in the last); the bar counts files, not commits."""
    with tqdm(total=sum(map(len, batches)), desc=f"push {result.repo_id}", unit="file") as bar:
        for i, batch in enumerate(batches, 1):
            title = f"{summary} (part {i}/{len(batches)})" if len(batches) > 1 else summary
            last_keep = keep if i == len(batches) else None
            _retry(lambda b=batch, t=title, k=last_keep: _push_batch(api, result, b, t, k))
            bar.set_postfix(uploaded=len(result.uploaded), on_hub=len(result.skipped), commits=len(result.commits),
                            refresh=False)
            bar.update(len(batch))


def _qualified(api: HfApi, repo_id: str) -> str:
    """``repo_id`` with the token owner's namespace when it has none (the Hub creates it there).

    Example:
        >>> _qualified(None, "my-org/diverseg")  # a namespace: no request
        'my-org/diverseg'
    """
    if "/" in repo_id:
        return repo_id
    namespace = api.whoami()["name"]
    logger.info("repo id %r has no namespace: using %s/%s", repo_id, namespace, repo_id)
    return f"{namespace}/{repo_id}"


def _ensure_repo(api: HfApi, repo_id: str, private: bool) -> None:
    """Create the dataset repo unless it exists (checked first: creating needs rights that pushing may not)."""
    try:
        api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError as err:
        if err.response is not None and err.response.status_code != 404:
            raise
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)


def _push_batch(api: HfApi, result: PushResult, batch: list[LocalFile], title: str, keep: set[str] | None) -> None:
    """Commit the files of ``batch`` the Hub does not already hold (and, with ``keep``, delete remote files not
    in it); record what was done in ``result``.

    The remote state is read again on every attempt, so a retried batch whose commit did land is not repeated.
    """
    repo_id, branch = result.repo_id, result.revision
    head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
    paths = [f.path_in_repo for f in batch]
    infos = api.get_paths_info(repo_id, paths, repo_type="dataset", revision=head) if paths else []
    remote = {e.path: e for e in infos}
    todo = [f for f in batch if not _same_content(f, remote.get(f.path_in_repo))]
    stale = [] if keep is None else sorted(
        e.path for e in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True)
        if hasattr(e, "blob_id") and e.path not in keep)
    ops: list[CommitOperationAdd | CommitOperationDelete] = [
        CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.path)) for f in todo]
    ops += [CommitOperationDelete(path_in_repo=path) for path in stale]
    if ops:
        info = api.create_commit(repo_id, ops, commit_message=title, repo_type="dataset", revision=branch,
                                 parent_commit=head)
        result.commits.append(info.oid)
    result.uploaded += [f.path_in_repo for f in todo]
    result.skipped += [f.path_in_repo for f in batch if f not in todo]
    result.deleted += stale


def _same_content(local: LocalFile, remote: object) -> bool:
    """True if the remote entry (a ``RepoFile`` or None) holds exactly the local file's bytes."""
    if remote is None or not hasattr(remote, "blob_id") or remote.size != local.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == local.sha256()
    return remote.blob_id == local.git_blob_id()


def _retry(call: Callable[[], T]) -> T:
    """Run ``call``, retrying on 429/5xx, network errors and 412 (the branch moved under a commit: the retried
    batch re-reads the remote state) with exponential backoff."""
    wait = RETRY_FIRST_WAIT
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call()
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if (status not in RETRY_STATUSES and status != 412) or attempt == RETRY_ATTEMPTS:
                raise
            reason = f"HTTP {status}"
            retry_after = err.response.headers.get("Retry-After", "") if err.response is not None else ""
            if retry_after.isdigit():
                wait = max(wait, min(float(retry_after), RETRY_AFTER_CAP))
        except _transport_errors() as err:
            if attempt == RETRY_ATTEMPTS:
                raise
            reason = type(err).__name__
        logger.warning("Hub request failed (%s); retry %d/%d in %.0fs", reason, attempt, RETRY_ATTEMPTS - 1, wait)
        sleep(wait)
        wait = min(wait * 2, RETRY_MAX_WAIT)
    raise AssertionError("unreachable")


def _transport_errors() -> tuple[type[Exception], ...]:
    """Network failures of the HTTP client huggingface_hub uses (httpx2, httpx or requests)."""
    errors: list[type[Exception]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _explain(err: HfHubHTTPError, repo_id: str, branch: str) -> str:
    """A one-line message for a Hub refusal, naming the repo but never the token."""
    status = err.response.status_code if err.response is not None else None
    where = f"datasets/{repo_id}"
    if isinstance(err, RevisionNotFoundError):
        return f"{where} has no branch {branch!r}: create it first (huggingface_hub's `hf repo branch create`)"
    if status == 401:
        return f"the Hub refused the token for {where} (401): set a valid HF_TOKEN or run `hf auth login`"
    if status == 403:
        return f"the token has no write access to {where} (403): use a token with write permission"
    if isinstance(err, RepositoryNotFoundError) or status == 404:
        return f"{where} was not found on the Hub (404): check the repo id and that the token can see it"
    server = (err.server_message or "").splitlines()[0] if err.server_message else ""
    return f"the Hub refused the push to {where} (HTTP {status}){': ' + server if server else ''}"


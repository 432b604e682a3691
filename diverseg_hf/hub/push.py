"""The only module that writes to the Hugging Face Hub: push a dataset folder, idempotently and resumably.

``push_folder`` creates the dataset repo if missing and uploads the folder so that the repo never advertises
rows it does not serve (see :mod:`diverseg_hf.hub.plan`): new files that the card now on the Hub cannot
reach go first, in commits of bounded file count and size; then one commit carries everything readers of
the card see (changed files, the shards of every changed config, the deletions, the card), so that a push
killed at any point leaves the old dataset or the new one, never a mix. Hidden files (``.diverseg/`` work
files, ``.NAME.partial`` staging folders) are never uploaded, and a folder whose last publish did not
complete is refused. Files whose content is already on the Hub (same LFS sha256 or git blob id) are
skipped, so a second push of an unchanged folder uploads nothing and makes no commit, and a push killed
midway uploads only what is missing when re-run (LFS objects uploaded before the kill are not sent again).
Transient failures (429, 5xx, network) are retried with exponential backoff, each retry logged as one
warning line (huggingface_hub's own two-line retry messages are folded into the same format); 401/403/404
become one-line ``DiversegError`` messages. No token reaches any message or log line
(:func:`diverseg_hf.errors.redact`), not even one a server echoes back. A repo id without a namespace is the
token owner's (as the Hub does when creating it). Gating (``gated``) is a setting of the whole repo, never of
one config. The progress bar counts files (uploaded and already on the Hub) and honours
``HF_HUB_DISABLE_PROGRESS_BARS``.

:func:`push` is the public push (Python, ``diverseg push`` and every ``--push-to-hub``): ``push_folder`` with the
card rendered for the repo id and the gating the folder's licences ask for (a config under ImageNet terms, I or
IP, gates a repo that is not gated yet, approval automatic; a repo already gated keeps its setting).

The endpoint, token and transfer backend are huggingface_hub's own: ``HF_ENDPOINT``, ``HF_TOKEN`` or the login
cache (``hf auth login``), and xet when ``hf_xet`` is installed.

Example:
    >>> from diverseg_hf.hub.push import push
    >>> result = push("diverseg", "my-org/diverseg", private=True)  # doctest: +SKIP
    >>> result.commits, len(result.uploaded), len(result.skipped)  # doctest: +SKIP
    (['3f2c…', '9ab1…'], 14, 0)
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import sleep
from typing import Literal, TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..cards.render import render_card
from ..errors import DiversegError, redact, redacted_logging
from ..storage import DatasetDir
from .plan import (
    CARD,
    LocalFile,
    check_repo_id,
    list_local_files,
    plan_commits,
    split_for_readers,
    staging_leftovers,
    stale_paths,
)
from .retry_log import one_line_retries

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The Hub recommends fewer than 100 files per commit.
MAX_FILES_PER_COMMIT = 50
#: Bytes of files per commit (a file larger than this gets a commit of its own).
MAX_BYTES_PER_COMMIT = 2 * 1024**3
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


def push(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    message: str | None = None,
    token: str | None = None,
    gated: Literal["auto", "manual"] | None = None,
    prune: bool = False,
    max_files_per_commit: int = MAX_FILES_PER_COMMIT,
    endpoint: str | None = None,
) -> PushResult:
    """Push the dataset folder ``folder`` to the Hub dataset repo ``repo_id`` as ``diverseg push`` does.

    The card uploaded is rendered for the repo id the push resolves (a bare ``REPO_ID`` is the token owner's;
    the local card is left as it is). A folder with a config whose licence asks for gating (ImageNet terms:
    I, IP) is never made public and ungated: without ``gated`` a repo not gated yet is gated ``"auto"`` (one
    warning line); ``gated="manual"`` gates it for approval by hand. The other arguments are
    :func:`push_folder`'s.

    Example:
        >>> push("diverseg", "my-org/diverseg", gated="manual").repo_id  # doctest: +SKIP
        'my-org/diverseg'
    """
    configs = DatasetDir(folder).configs()
    with tempfile.TemporaryDirectory() as tmp:
        return push_folder(folder, repo_id, private=private, revision=revision, message=message, token=token,
                           gated=gated, max_files_per_commit=max_files_per_commit, prune=prune, endpoint=endpoint,
                           card=lambda repo: render_card(tmp, configs, repo=repo) if configs else None,
                           needs_gating=[c["name"] for c in configs if c.get("gated")])


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
    card: Callable[[str], str | os.PathLike | None] | None = None,
    needs_gating: list[str] | None = None,
) -> PushResult:
    """Upload a dataset folder to the Hub dataset repo ``repo_id``; see the module docstring.

    ``revision`` is an existing branch (default ``main``); ``private`` applies when the repo is created;
    ``gated`` ("auto" or "manual") gates the repo. The last commit deletes the files a config of the card
    reads that the folder no longer has (re-sharded configs leave no stale shards behind); ``prune`` also
    deletes every other file of the branch the folder does not have (``.gitattributes`` kept). ``card``,
    called with the repo id, returns the path of a card to upload instead of the folder's ``README.md``
    (None: the folder's). ``needs_gating`` names configs whose terms require gating: without ``gated``, a repo
    that is not gated yet is then gated "auto". ``endpoint`` defaults to ``HF_ENDPOINT``.

    Example:
        >>> push_folder("diverseg", "my-org/diverseg", gated="manual").uploaded[-1]  # doctest: +SKIP
        'README.md'
    """
    check_repo_id(repo_id)
    files = _pushable_files(folder)
    if gated not in (None, "auto", "manual"):
        raise DiversegError(f"gated must be 'auto' or 'manual', not {gated!r}")
    plan_commits([], max_files_per_commit, max_bytes_per_commit)  # checks the limits before any request
    token = token or get_token()
    if not token:
        raise DiversegError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    result = PushResult(repo_id, revision or "main")
    summary = message or f"Upload {Path(folder).name} with diverseg"
    try:
        with redacted_logging("huggingface_hub"), one_line_retries(), logging_redirect_tqdm():
            result.repo_id = repo_id = _retry(lambda: _qualified(api, repo_id))
            _retry(lambda: _ensure_repo(api, repo_id, private))
            _retry(lambda: _gate(api, repo_id, gated, needs_gating or []))
            files = _with_card(files, card(repo_id) if card else None)
            batches, stale, result.skipped = _retry(lambda: _plan(api, result, files, prune, max_files_per_commit,
                                                                  max_bytes_per_commit))
            _push_batches(api, result, batches, summary, stale)
    except (HfHubHTTPError, RuntimeError, *_transport_errors()) as err:
        failure = _failure(err, api, repo_id, result.revision)
        if failure is None:
            raise
    else:
        failure = None
    if failure is not None:  # raised here, outside the handler, so that no exception with the token is chained
        raise DiversegError(redact(failure, [token]))
    logger.info("pushed %s: %d commits, %d files uploaded, %d already there, %d deleted", repo_id,
                len(result.commits), len(result.uploaded), len(result.skipped), len(result.deleted))
    return result


def _failure(err: Exception, api: HfApi, repo_id: str, branch: str) -> str | None:
    """The one-line message for a failed push (None for an error that is not the Hub's or the network's)."""
    if isinstance(err, HfHubHTTPError):
        return _explain(err, repo_id, branch)
    if isinstance(err, RuntimeError) and isinstance(err.__cause__, HfHubHTTPError):  # a failed LFS upload
        return f"{_explain(err.__cause__, repo_id, branch)} ({err})"
    if isinstance(err, _transport_errors()):
        return f"cannot reach the Hub at {api.endpoint}: {type(err).__name__}"
    return None


def _gate(api: HfApi, repo_id: str, gated: str | None, needs_gating: list[str]) -> None:
    """Gate the repo as asked; when configs ``needs_gating`` require it, gate "auto" a repo not gated yet."""
    if not gated and needs_gating and not api.repo_info(repo_id, repo_type="dataset").gated:
        logger.warning("configs %s are under terms that require gated access: gating datasets/%s (approval "
                       "automatic; --gated manual to approve requests by hand)", ", ".join(needs_gating), repo_id)
        gated = "auto"
    if gated:
        api.update_repo_settings(repo_id, repo_type="dataset", gated=gated)


def _pushable_files(folder: str | os.PathLike) -> list[LocalFile]:
    """The files to push; an error for an empty folder or one whose last publish did not complete."""
    leftovers = staging_leftovers(folder)
    if leftovers:
        raise DiversegError(f"the last publish into {folder} did not complete ({leftovers[0]} is left): "
                            "publish again, then push")
    files = list_local_files(folder)
    if not files:
        raise DiversegError(f"{folder} has no files to push")
    return files


def _with_card(files: list[LocalFile], card: str | os.PathLike | None) -> list[LocalFile]:
    """``files`` with the card replaced by the file ``card`` (unchanged if None)."""
    if card is None:
        return files
    path = Path(card)
    return [f for f in files if f.path_in_repo != CARD] + [LocalFile(CARD, path, path.stat().st_size)]


def _plan(api: HfApi, result: PushResult, files: list[LocalFile], prune: bool, max_files: int,
          max_bytes: int) -> tuple[list[list[LocalFile]], Callable[[list[str]], list[str]], list[str]]:
    """The commits to make (early batches, then the final one, see :mod:`diverseg_hf.hub.plan`; none when
    nothing changed), the function that lists, from the remote paths at the final commit, those to delete in
    it, and the files already on the Hub (left out of the commits).
    """
    head = api.repo_info(result.repo_id, repo_type="dataset", revision=result.revision).sha
    remote = {e.path: e for e in api.list_repo_tree(result.repo_id, repo_type="dataset", revision=head,
                                                    recursive=True) if hasattr(e, "blob_id")}
    todo = [f for f in files if not _same_content(f, remote.get(f.path_in_repo))]
    live_card = _remote_card(api, result, head) if todo and CARD in remote else None
    early, _ = split_for_readers([f.path_in_repo for f in todo], set(remote), live_card)
    batches = plan_commits([f for f in todo if f.path_in_repo in early], max_files, max_bytes)
    batches.append([f for f in todo if f.path_in_repo not in early])
    local = {f.path_in_repo for f in files}
    card_file = next((f.path for f in files if f.path_in_repo == CARD), None)
    new_card = card_file.read_text(encoding="utf-8", errors="replace") if card_file else None

    def stale(paths: list[str]) -> list[str]:
        return stale_paths(paths, local, new_card, prune)

    if not batches[-1] and not stale(list(remote)):
        batches.pop()  # nothing for the final commit to change (early commits only add paths the folder has)
    return batches, stale, [f.path_in_repo for f in files if f not in todo]


def _remote_card(api: HfApi, result: PushResult, head: str) -> str:
    """The text of the card on the Hub at commit ``head``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = api.hf_hub_download(result.repo_id, CARD, repo_type="dataset", revision=head, local_dir=tmp)
        return Path(path).read_text(encoding="utf-8", errors="replace")


def _ensure_repo(api: HfApi, repo_id: str, private: bool) -> None:
    """Create the dataset repo unless it exists (checked first: creating needs rights that pushing may not)."""
    try:
        api.repo_info(repo_id, repo_type="dataset")
    except RepositoryNotFoundError as err:
        if err.response is not None and err.response.status_code != 404:
            raise
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)


def _push_batches(api: HfApi, result: PushResult, batches: list[list[LocalFile]], summary: str,
                  stale: Callable[[list[str]], list[str]]) -> None:
    """Commit the batches in order; the last one also deletes what ``stale`` lists. The bar counts files
    (those already on the Hub included), not commits."""
    with tqdm(total=len(result.skipped) + sum(map(len, batches)), desc=f"push {result.repo_id}", unit="file") as bar:
        _count(bar, result, len(result.skipped))
        for i, batch in enumerate(batches, 1):
            title = f"{summary} (part {i}/{len(batches)})" if len(batches) > 1 else summary
            last = stale if i == len(batches) else None
            _retry(lambda b=batch, t=title, s=last: _push_batch(api, result, b, t, s))
            _count(bar, result, len(batch))


def _count(bar: tqdm, result: PushResult, files: int) -> None:
    """Advance the push bar by ``files`` files and show what was done so far."""
    bar.set_postfix(uploaded=len(result.uploaded), on_hub=len(result.skipped), commits=len(result.commits),
                    refresh=False)
    bar.update(files)


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


def _push_batch(api: HfApi, result: PushResult, batch: list[LocalFile], title: str,
                stale: Callable[[list[str]], list[str]] | None) -> None:
    """Commit the files of ``batch`` the Hub does not already hold (and, with ``stale``, delete the remote
    files it lists); record what was done in ``result``.

    The remote state is read again on every attempt, so a retried batch whose commit did land is not repeated.
    """
    repo_id, branch = result.repo_id, result.revision
    head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
    paths = [f.path_in_repo for f in batch]
    infos = api.get_paths_info(repo_id, paths, repo_type="dataset", revision=head) if paths else []
    remote = {e.path: e for e in infos}
    todo = [f for f in batch if not _same_content(f, remote.get(f.path_in_repo))]
    deleted = [] if stale is None else stale(
        [e.path for e in api.list_repo_tree(repo_id, repo_type="dataset", revision=head, recursive=True)
         if hasattr(e, "blob_id")])
    ops: list[CommitOperationAdd | CommitOperationDelete] = [
        CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.path)) for f in todo]
    ops += [CommitOperationDelete(path_in_repo=path) for path in deleted]
    if ops:
        info = api.create_commit(repo_id, ops, commit_message=title, repo_type="dataset", revision=branch,
                                 parent_commit=head)
        result.commits.append(info.oid)
    result.uploaded += [f.path_in_repo for f in todo]
    result.skipped += [f.path_in_repo for f in batch if f not in todo]
    result.deleted += deleted


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


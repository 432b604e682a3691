"""diverseg_hf.hub.push.push_folder and ``diverseg push`` against the local Hub server (tests/hub_server.py)."""

from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_hub import (
    READ_TOKEN,
    WRITE_TOKEN,
    client_env,
    image_bytes,
    write_card,
    write_parquet_config,
    write_tar_config,
)

from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError
from diverseg_hf.hub import push as hub_module
from diverseg_hf.hub.push import LocalFile, plan_commits, push_folder

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/subset"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A dataset folder: two Parquet configs, one WebDataset config, a card, and pipeline state to skip."""
    root = tmp_path / "ds"
    write_parquet_config(root, "A", image_bytes(1, 3))
    write_parquet_config(root, "B", image_bytes(2, 2))
    write_tar_config(root, "W", image_bytes(3, 2))
    write_card(root, {"A": "data/A/*.parquet", "B": "data/B/*.parquet", "W": "wds/W/*.tar"})
    (root / ".diverseg").mkdir()
    (root / ".diverseg" / "state.json").write_text("{}")
    return root


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".diverseg" not in p.parts}


def remote_data(hub, revision: str = "main") -> dict[str, bytes]:
    return {p: d for p, d in hub.files(REPO, revision).items() if p != ".gitattributes"}


def added_per_commit(hub) -> list[dict[str, bytes]]:
    """Files each commit added or changed, oldest first (the repo's initial commit excluded)."""
    commits = hub.commits(REPO)[::-1]
    return [{p: b.data for p, b in new.files.items() if old.files.get(p) != b}
            for old, new in itertools.pairwise(commits)]


def test_plan_commits_bounds_files_and_bytes() -> None:
    files = [LocalFile(f"f{i}", Path(f"f{i}"), size) for i, size in enumerate([5, 5, 5, 30, 1, 1, 1])]
    batches = plan_commits(files, max_files=3, max_bytes=12)
    assert [[f.path_in_repo for f in b] for b in batches] == [["f0", "f1"], ["f2"], ["f3"], ["f4", "f5", "f6"]]
    with pytest.raises(DiversegError):
        plan_commits(files, max_files=0, max_bytes=1)


def test_push_uploads_exact_bytes_in_bounded_commits_card_last(hub_env, folder: Path) -> None:
    result = push_folder(folder, REPO, private=True, max_files_per_commit=2, max_bytes_per_commit=10**9)
    expected = local_files(folder)
    assert remote_data(hub_env) == expected
    assert ".diverseg/state.json" not in hub_env.files(REPO)
    assert hub_env.repos[("dataset", REPO)].private is True
    added = added_per_commit(hub_env)
    assert len(added) == len(result.commits) == 3  # 3 data files in 2 commits, then the card
    assert all(len(a) <= 2 for a in added)
    assert list(added[-1]) == ["README.md"]
    assert sorted(result.uploaded) == sorted(expected) and result.skipped == []
    # Binary shards went through LFS, the card as a regular file.
    repo_files = hub_env.repos[("dataset", REPO)].resolve("main").files
    assert all(repo_files[p].lfs for p in expected if p != "README.md") and not repo_files["README.md"].lfs


def test_commits_bounded_by_bytes(hub_env, folder: Path) -> None:
    sizes = {p: len(d) for p, d in local_files(folder).items()}
    limit = max(sizes.values()) + 1
    push_folder(folder, REPO, max_bytes_per_commit=limit)
    for added in added_per_commit(hub_env):
        assert len(added) == 1 or sum(len(d) for d in added.values()) <= limit


def test_second_push_uploads_nothing_and_changed_file_only(hub_env, folder: Path) -> None:
    push_folder(folder, REPO)
    n_commits = len(hub_env.commits(REPO))
    hub_env.log.clear()
    again = push_folder(folder, REPO)
    assert again.commits == [] and again.uploaded == [] and sorted(again.skipped) == sorted(local_files(folder))
    assert len(hub_env.commits(REPO)) == n_commits
    assert not hub_env.requests("PUT") and not hub_env.requests(contains="/commit/")
    assert not hub_env.requests(contains="/preupload/")

    write_parquet_config(folder, "B", image_bytes(9, 2))
    (folder / "README.md").write_text((folder / "README.md").read_text() + "More.\n")
    hub_env.log.clear()
    third = push_folder(folder, REPO)
    assert sorted(third.uploaded) == ["README.md", "data/B/train-00000-of-00001.parquet"]
    assert len(hub_env.requests("PUT", "/lfs-upload/")) == 1
    assert remote_data(hub_env) == local_files(folder)


def test_retries_transient_failures(hub_env, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "RETRY_FIRST_WAIT", 0.01)
    hub_env.fail("POST", r"^/api/repos/create$", 500)
    hub_env.fail("POST", r"/paths-info/", 429)
    hub_env.fail("POST", r"/commit/main$", 503, times=2)
    result = push_folder(folder, REPO, max_files_per_commit=2)
    assert remote_data(hub_env) == local_files(folder)
    assert len(result.commits) == len(added_per_commit(hub_env)) == 3  # no duplicate commit from a retry
    statuses = [r.status for r in hub_env.requests("POST", "/commit/main")]
    assert statuses[:2] == [503, 503] and statuses[2:] == [200, 200, 200]


def test_reply_lost_after_commit_landed_is_not_committed_twice(hub_env, folder, monkeypatch) -> None:
    monkeypatch.setattr(hub_module, "RETRY_FIRST_WAIT", 0.01)
    hub_env.fail("POST", r"/commit/main$", 500, after=True)  # the first commit lands, its reply is lost
    result = push_folder(folder, REPO, max_files_per_commit=2)
    assert remote_data(hub_env) == local_files(folder)
    assert len(added_per_commit(hub_env)) == 3 and all(added_per_commit(hub_env))  # no empty or repeated commit
    assert len(result.commits) == 2  # the commit whose reply was lost is not known to the client


def test_retry_after_is_honoured(hub_env, folder, monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(hub_module, "sleep", waits.append)
    monkeypatch.setattr(hub_module, "RETRY_FIRST_WAIT", 0.01)
    hub_env.fail("POST", r"/commit/main$", 429, headers={"Retry-After": "7"})
    push_folder(folder, REPO)
    assert waits == [7.0]


def test_stale_shards_of_a_config_go_in_the_card_commit_prune_deletes_the_rest(hub_env, folder) -> None:
    (folder / "notes.txt").write_text("notes")
    push_folder(folder, REPO)
    shards = folder / "data" / "B"
    (shards / "train-00000-of-00001.parquet").rename(shards / "train-00000-of-00002.parquet")
    write_parquet_config(folder, "B", image_bytes(8, 1)).rename(shards / "train-00001-of-00002.parquet")
    (folder / "notes.txt").unlink()
    n_commits = len(hub_env.commits(REPO))
    kept = push_folder(folder, REPO, max_files_per_commit=1)
    # The card reads data/B/*.parquet: the old shard would be served beside the new ones, so it goes, in the
    # same commit as the new shards; notes.txt is read by no config and stays without prune.
    assert kept.deleted == ["data/B/train-00000-of-00001.parquet"] and len(kept.commits) == 1
    assert len(hub_env.commits(REPO)) == n_commits + 1
    assert "notes.txt" in hub_env.files(REPO)
    pruned = push_folder(folder, REPO, prune=True)
    assert pruned.deleted == ["notes.txt"] and pruned.uploaded == []
    assert remote_data(hub_env) == local_files(folder)
    assert ".gitattributes" in hub_env.files(REPO)


def test_token_from_login_cache(hub_env, folder, monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN")
    Path(huggingface_hub.constants.HF_TOKEN_PATH).parent.mkdir(parents=True, exist_ok=True)
    Path(huggingface_hub.constants.HF_TOKEN_PATH).write_text(WRITE_TOKEN)
    assert push_folder(folder, REPO).uploaded


def test_retries_give_up_with_one_line_error(hub_env, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "RETRY_FIRST_WAIT", 0.01)
    hub_env.fail("POST", r"/commit/main$", 502, times=100)
    with pytest.raises(DiversegError, match=r"HTTP 502") as info:
        push_folder(folder, REPO)
    assert "\n" not in str(info.value)
    assert len(hub_env.requests("POST", "/commit/main")) == hub_module.RETRY_ATTEMPTS


def test_gated_repo_setting(hub_env, folder: Path) -> None:
    push_folder(folder, REPO, gated="manual")
    assert hub_env.repos[("dataset", REPO)].gated == "manual"
    with pytest.raises(DiversegError, match="gated"):
        push_folder(folder, REPO, gated="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "revision", "expected"),
    [
        (None, None, "no Hugging Face token"),
        ("hf_not_a_valid_token", None, r"refused the token .*\(401\)"),
        (READ_TOKEN, None, r"no write access .*\(403\)"),
        (WRITE_TOKEN, "no-such-branch", r"has no branch 'no-such-branch'"),
    ],
)
def test_auth_and_missing_revision_errors(hub_env, folder, monkeypatch, capsys, token, revision, expected) -> None:
    push_folder(folder, REPO)  # the repo exists; the failing push below has a change to write
    (folder / "README.md").write_text((folder / "README.md").read_text() + "Changed.\n")
    if token is None:
        monkeypatch.delenv("HF_TOKEN")
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    argv = ["push", str(folder), REPO] + (["--revision", revision] if revision else [])
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("diverseg push: error:"), err  # one line, no traceback
    assert re.search(expected, errors[0]), err
    for secret in (WRITE_TOKEN, READ_TOKEN, "hf_not_a_valid_token"):
        assert secret not in out + err
    assert not any(WRITE_TOKEN.encode() in p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_missing_repo_for_read_only_token(hub_env, folder, monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", READ_TOKEN)
    with pytest.raises(DiversegError, match=r"\(403\)"):
        push_folder(folder, "tester/never-created")
    assert ("dataset", "tester/never-created") not in hub_env.repos


def test_cli_push_prints_summary(hub_env, folder, capsys) -> None:
    assert main(["push", str(folder), REPO, "--message", "First cut", "--max-files-per-commit", "10"]) == 0
    assert "4 files uploaded in 2 commits, 0 already on the Hub" in capsys.readouterr().err
    assert [c.title for c in hub_env.commits(REPO)][:2] == ["First cut (part 2/2)", "First cut (part 1/2)"]


@pytest.mark.slow
def test_killed_push_resumes_uploading_only_what_is_missing(hub, folder: Path, tmp_path: Path) -> None:
    held = hub.hold("POST", r"/commit/main$", skip=1)  # the second commit never lands
    env = client_env(hub.url, tmp_path / "hf_home", WRITE_TOKEN)
    log = tmp_path / "push.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "diverseg_hf", "push", str(folder), REPO,
                                 "--max-files-per-commit", "1"], env=env, stdout=sink, stderr=sink)
        try:
            assert held.arrived.wait(120), log.read_text()
        finally:
            proc.kill()
            proc.wait()
            held.release()
    assert len(remote_data(hub)) == 1  # killed after its first commit
    put_before = {r.path.rsplit("/", 1)[1] for r in hub.requests("PUT", "/lfs-upload/")}

    hub.log.clear()
    proc = subprocess.run([sys.executable, "-m", "diverseg_hf", "push", str(folder), REPO,
                           "--max-files-per-commit", "1"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    expected = local_files(folder)
    assert remote_data(hub) == expected
    put_after = {r.path.rsplit("/", 1)[1] for r in hub.requests("PUT", "/lfs-upload/")}
    lfs_oids = {hashlib.sha256(d).hexdigest() for p, d in expected.items() if p != "README.md"}
    assert put_before.isdisjoint(put_after) and put_before | put_after == lfs_oids
    assert f"{len(expected) - 1} files uploaded" in proc.stderr
    assert "1 already on the Hub" in proc.stderr


# --- gating, namespaces, logs and progress ----------------------------------------------------------------


@pytest.mark.parametrize(("repo_id", "gated"), [(REPO, "manual"), ("subset", "auto")], ids=["namespaced", "bare"])
def test_cli_gated_push_gates_the_repo(hub_env, folder, capsys, repo_id, gated) -> None:
    assert main(["push", str(folder), repo_id, "--gated", gated]) == 0, capsys.readouterr().err
    assert f"-> datasets/{REPO}@main" in capsys.readouterr().err  # a bare id is the token owner's
    assert set(hub_env.repos) == {("dataset", REPO)}
    assert hub_env.repos[("dataset", REPO)].gated == gated
    assert remote_data(hub_env) == local_files(folder)
    assert [r.status for r in hub_env.requests("PUT", "/settings")] == [200]


def test_push_help_says_gating_is_per_repo(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["push", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "property of the whole repo, not of a config" in help_text


def run_push(hub, folder: Path, tmp_path: Path, **env_changes: str | None) -> str:
    """``diverseg push`` in a subprocess (its own logging set-up, as a user runs it); returns its stderr."""
    env = client_env(hub.url, tmp_path / "hf_home", WRITE_TOKEN)
    env.pop("TQDM_DISABLE")
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run([sys.executable, "-m", "diverseg_hf", "push", str(folder), REPO], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_one_line_per_retried_request_and_progress_bars(hub, folder: Path, tmp_path: Path) -> None:
    hub.fail("PUT", r"/lfs-upload/", 503, times=2)  # retried inside huggingface_hub
    hub.fail("POST", r"/commit/main$", 503)  # retried by diverseg_hf.hub.push
    err = run_push(hub, folder, tmp_path)  # HF_HUB_DISABLE_PROGRESS_BARS=1 (client_env)
    retries = [line for line in err.splitlines() if "retry" in line.lower() or "thrown while" in line]
    assert len(retries) == 3, err
    assert all(line.startswith("Hub request failed (HTTP 503") for line in retries), err
    assert sum("PUT /lfs-upload/" in line for line in retries) == 2 and "ticket=" not in err
    assert "push tester/subset" not in err and "%|" not in err  # no bar at all

    err = run_push(hub, folder, tmp_path, HF_HUB_DISABLE_PROGRESS_BARS=None)  # unchanged: nothing to commit
    bars = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("push tester/subset")]
    assert bars and "4/4" in bars[-1] and "commits=0" in bars[-1] and "on_hub=4" in bars[-1], err
    assert "commit/s" not in err and "commit]" not in err
    assert "4 already on the Hub" in err


def test_huggingface_hub_retry_messages_are_folded_into_one_line(caplog) -> None:
    import logging

    from diverseg_hf.hub.retry_log import one_line_retries

    http = logging.getLogger("huggingface_hub.utils._http")
    with caplog.at_level(logging.WARNING), one_line_retries():
        http.warning("HTTP Error 502 thrown while requesting PUT https://hub.example/lfs-upload/abc?ticket=s3cret")
        http.warning("Retrying in 1s [Retry 1/5].")
        http.warning("'ConnectError(boom)' thrown while requesting POST https://hub.example/api/x")
        http.warning("Rate limited. Waiting 7s before retry [Retry 2/5].")
        http.warning("something else")
    assert [r.getMessage() for r in caplog.records] == [
        "Hub request failed (HTTP 502, PUT /lfs-upload/abc); retry 1/5 in 1s",
        "Hub request failed (ConnectError(boom), POST /api/x); retry 2/5 in 7s",
        "something else",
    ]
    assert not http.filters  # removed again after the push

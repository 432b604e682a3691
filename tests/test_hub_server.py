"""The local Hub server answers huggingface_hub's calls as the Hub does (REFERENCE.md section 6).

These talk to it in-process through ``HfApi(endpoint=...)`` and raw HTTP; the round trips through
``datasets`` are in test_hub_roundtrip.py.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest_hub import READ_TOKEN, WRITE_TOKEN, client_env, run_client
from hub_server import git_blob_sha1
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

REPO = "tester/proto"
SHARD = bytes(range(256)) * 40  # binary: goes to LFS
TEXT = b"hello hub\n"


@pytest.fixture
def api(hub_env) -> HfApi:
    api = HfApi(endpoint=hub_env.url, token=WRITE_TOKEN)
    api.create_repo(REPO, repo_type="dataset")
    api.create_commit(REPO, [CommitOperationAdd("data/x/shard.bin", SHARD), CommitOperationAdd("notes.txt", TEXT)],
                      commit_message="add files", repo_type="dataset")
    return api


def test_tree_paths_info_refs_commits(api: HfApi) -> None:
    tree = {e.path: e for e in api.list_repo_tree(REPO, repo_type="dataset", recursive=True, expand=True)}
    assert set(tree) == {".gitattributes", "data", "data/x", "data/x/shard.bin", "notes.txt"}
    shard, notes = tree["data/x/shard.bin"], tree["notes.txt"]
    assert shard.lfs.sha256 == hashlib.sha256(SHARD).hexdigest() and shard.size == len(SHARD)
    assert notes.lfs is None and notes.blob_id == git_blob_sha1(TEXT)
    assert notes.last_commit.title == "add files"
    top = [e.path for e in api.list_repo_tree(REPO, repo_type="dataset")]
    assert top == ["data", ".gitattributes", "notes.txt"]
    info = api.get_paths_info(REPO, ["notes.txt", "data", "missing.txt"], repo_type="dataset")
    assert [e.path for e in info] == ["notes.txt", "data"]
    refs = api.list_repo_refs(REPO, repo_type="dataset")
    head = api.dataset_info(REPO).sha
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", head)]
    assert [c.title for c in api.list_repo_commits(REPO, repo_type="dataset")] == ["add files", "initial commit"]


def test_download_headers_and_ranges(api: HfApi, hub_env, tmp_path: Path) -> None:
    path = hf_hub_download(REPO, "data/x/shard.bin", repo_type="dataset", endpoint=hub_env.url,
                           cache_dir=tmp_path / "cache", token=WRITE_TOKEN)
    assert Path(path).read_bytes() == SHARD
    url = f"{hub_env.url}/datasets/{REPO}/resolve/main/data/x/shard.bin"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as r:
        assert r.headers["X-Repo-Commit"] == api.dataset_info(REPO).sha
        assert r.headers["X-Linked-Etag"].strip('"') == hashlib.sha256(SHARD).hexdigest()
        assert int(r.headers["X-Linked-Size"]) == len(SHARD)
    for spec, expected in (("bytes=10-19", SHARD[10:20]), ("bytes=10200-", SHARD[10200:]), ("bytes=-5", SHARD[-5:])):
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": spec})) as r:
            assert r.status == 206 and r.read() == expected
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={len(SHARD)}-"}))
    assert err.value.code == 416


def test_errors_as_the_client_classifies_them(api: HfApi, hub_env) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("tester/missing")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(REPO, revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "nope.txt", repo_type="dataset", endpoint=hub_env.url, token=WRITE_TOKEN)
    api.update_repo_settings(REPO, repo_type="dataset", private=True)
    anonymous = HfApi(endpoint=hub_env.url, token=False)
    with pytest.raises(RepositoryNotFoundError) as err:
        anonymous.dataset_info(REPO)
    assert err.value.response.status_code == 401
    reader = HfApi(endpoint=hub_env.url, token=READ_TOKEN)
    assert reader.dataset_info(REPO).private is True
    with pytest.raises(HfHubHTTPError) as err:
        reader.create_commit(REPO, [CommitOperationAdd("a.txt", b"a")], commit_message="no", repo_type="dataset")
    assert err.value.response.status_code == 403


def test_parent_commit_mismatch_is_refused(api: HfApi) -> None:
    old = api.list_repo_commits(REPO, repo_type="dataset")[-1].commit_id
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(REPO, [CommitOperationAdd("b.txt", b"b")], commit_message="stale", repo_type="dataset",
                          parent_commit=old)
    assert err.value.response.status_code == 412


@pytest.mark.slow
def test_runs_as_a_subprocess(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("hub_server.py")), "--port", "0",
                               "--token", f"{WRITE_TOKEN}:write"], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        code = """
from huggingface_hub import HfApi
api = HfApi()
print(json.dumps(api.create_repo("me/sub", repo_type="dataset").repo_id))
"""
        assert run_client(code, client_env(url, tmp_path / "home", WRITE_TOKEN)) == "me/sub"
    finally:
        server.terminate()
        server.wait()


def test_whoami_and_bare_repo_ids_land_in_the_users_namespace(hub_env) -> None:
    api = HfApi(endpoint=hub_env.url, token=WRITE_TOKEN)
    assert api.whoami()["name"] == "tester"
    assert api.create_repo("bare", repo_type="dataset").repo_id == "tester/bare"
    assert ("dataset", "tester/bare") in hub_env.repos
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=hub_env.url, token="hf_unknown").whoami()


def test_settings_route_gates_the_repo_and_refuses_bad_values(hub_env) -> None:
    api = HfApi(endpoint=hub_env.url, token=WRITE_TOKEN)
    api.create_repo("tester/gated", repo_type="dataset")
    api.update_repo_settings("tester/gated", repo_type="dataset", gated="manual")
    assert hub_env.repos[("dataset", "tester/gated")].gated == "manual"
    assert api.repo_info("tester/gated", repo_type="dataset").gated == "manual"
    api.update_repo_settings("tester/gated", repo_type="dataset", gated=False)
    assert hub_env.repos[("dataset", "tester/gated")].gated is False
    request = urllib.request.Request(f"{hub_env.url}/api/datasets/tester/gated/settings", data=b'{"gated": "yes"}',
                                     method="PUT", headers={"Authorization": f"Bearer {WRITE_TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request)
    assert info.value.code == 400
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=hub_env.url, token=READ_TOKEN).update_repo_settings("tester/gated", repo_type="dataset",
                                                                          gated="auto")

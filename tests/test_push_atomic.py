"""An update push killed at any point (kill -9 after each commit, or during the LFS uploads) leaves a Hub repo
whose card agrees with what ``load_dataset`` and streaming yield: the old dataset entirely or the new one.

The old version (v1) has config ``mine`` in one shard; the new one (v2) re-publishes ``mine`` from another
selection in more shards (so the old shard must go) and adds a config ``extra``. v1 is pushed to several
repos of the local Hub, then v2 is pushed to each with ``--max-files-per-commit 1`` and killed (SIGKILL)
once the k-th commit is held by the server; a client subprocess then reads every repo as users do.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_hub import WRITE_TOKEN, client_env, run_client
from pipeline_helpers import good_images, write_files

from diverseg_hf.cli import main
from diverseg_hf.errors import DiversegError
from diverseg_hf.hub.plan import card_patterns, split_for_readers, stale_paths
from diverseg_hf.hub.push import push_folder
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.select import select

pytest_plugins = ["conftest_hub"]  # the hub / hub_env fixtures

#: Reads a dataset (a local folder or a Hub repo) as its card describes it: for every split of every config
#: in the card's ``dataset_info``, the advertised count, the keys load_dataset and streaming yield, and for
#: image configs the keys of the WebDataset tars the card's snippet reads.
READ = """
import tarfile, yaml
from huggingface_hub import HfFileSystem

def card(path, remote):
    fs = HfFileSystem(skip_instance_cache=True)
    text = fs.read_text(f"datasets/{path}/README.md") if remote else open(f"{path}/README.md").read()
    return yaml.safe_load(text.split("---")[1]), text

def tar_keys(path, remote, cfg):
    fs = HfFileSystem(skip_instance_cache=True)
    if remote:
        files = [fs.read_bytes(f) for f in sorted(fs.glob(f"datasets/{path}/wds/{cfg}/*.tar"))]
    else:
        import glob
        files = [open(f, "rb").read() for f in sorted(glob.glob(f"{path}/wds/{cfg}/*.tar"))]
    import io
    keys = []
    for data in files:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            keys += sorted({m.name.split(".")[0] for m in tar.getmembers() if m.isfile()})
    return sorted(keys)

def state(path, remote):
    meta, text = card(path, remote)
    out = {"card_names": text.count(f'load_dataset("{path}"')}
    for info in meta["dataset_info"]:
        cfg = info["config_name"]
        for split in info["splits"]:
            name = split["name"]
            ds = datasets.load_dataset(path, cfg, split=name).select_columns(["key"])
            stream = datasets.load_dataset(path, cfg, split=name, streaming=True).select_columns(["key"])
            entry = {"advertised": split["num_examples"], "rows": sorted(r["key"] for r in ds),
                     "stream": sorted(r["key"] for r in stream)}
            if cfg != "scores":
                entry["wds"] = tar_keys(path, remote, cfg)
            out[f"{cfg}/{name}"] = entry
    return out

print(json.dumps({name: state(path, remote) for name, (path, remote) in TARGETS.items()}))
"""


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> tuple[Path, Path]:
    """(v1, v2) dataset folders, see the module docstring."""
    root = tmp_path_factory.mktemp("versions")
    write_files(root / "photos", good_images(10))
    v1, v2 = root / "v1", root / "v2"
    assert main(["curate", str(root / "photos"), "--out", str(v1), "--name", "mine", "--scorers", "blockiness",
                 "--max-blockiness", "1000", "--format", "parquet,webdataset"]) == 0
    shutil.copytree(v1, v2)
    select(v2 / ".diverseg" / "mine" / "scores", root / "selection", max_blockiness=100)
    publish(root / "selection", v2, "mine", formats=("parquet", "webdataset"), shard_size=9000, progress=False)
    publish(root / "selection", v2, "extra", formats=("parquet", "webdataset"), progress=False)
    old, new = sorted((v1 / "data" / "mine").iterdir()), sorted((v2 / "data" / "mine").iterdir())
    assert len(old) == 1 and len(new) > 1 and not {p.name for p in old} & {p.name for p in new}
    return v1, v2


def push_cmd(folder: Path, repo: str) -> list[str]:
    return [sys.executable, "-m", "diverseg_hf", "push", str(folder), repo, "--max-files-per-commit", "1"]


def killed_push(hub, folder: Path, repo: str, env: dict[str, str], rule, log: Path) -> None:
    """Run ``diverseg push`` in a subprocess and SIGKILL it once the server holds the request ``rule`` matches."""
    with open(log, "w") as sink:
        proc = subprocess.Popen(push_cmd(folder, repo), env=env, stdout=sink, stderr=sink)
        try:
            assert rule.arrived.wait(120), log.read_text()
        finally:
            proc.kill()
            proc.wait()
            rule.release()


def lfs_puts(hub) -> set[str]:
    return {r.path.rsplit("/", 1)[1] for r in hub.requests("PUT", "/lfs-upload/") if r.status == 200}


@pytest.mark.slow
def test_update_push_killed_anywhere_leaves_old_or_new_dataset(hub_env, versions, tmp_path: Path) -> None:
    v1, v2 = versions
    env = client_env(hub_env.url, tmp_path / "hf_home", WRITE_TOKEN)
    early = 3  # data/extra, wds/extra and data/scores/extra are new folders the v1 card cannot reach
    repos = [f"tester/killed-after-{k}" for k in range(early + 1)] + ["tester/killed-in-lfs"]
    for repo in repos:
        assert main(["push", str(v1), repo]) == 0

    # Killed while uploading the LFS objects of the final commit (after the early commits' uploads).
    before = lfs_puts(hub_env)
    held = hub_env.hold("PUT", r"^/lfs-upload/", skip=early + 1)
    killed_push(hub_env, v2, repos[-1], env, held, tmp_path / "lfs.log")
    sent_before_kill = lfs_puts(hub_env) - before
    # Killed once commit k+1 reached the server (k commits landed), for every k.
    for k, repo in enumerate(repos[:-1]):
        held = hub_env.hold("POST", rf"^/api/datasets/{repo}/commit/main$", skip=k)
        landed = len(hub_env.commits(repo))
        killed_push(hub_env, v2, repo, env, held, tmp_path / f"kill{k}.log")
        assert len(hub_env.commits(repo)) == landed + k
    killed = {repo: hub_env.files(repo) for repo in repos}

    # Re-run the push killed in its uploads: it completes, sending no LFS object twice.
    hub_env.log.clear()
    proc = subprocess.run(push_cmd(v2, repos[-1]), env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert sent_before_kill and not sent_before_kill & lfs_puts(hub_env)

    targets = {"v1": (str(v1), False), "v2": (str(v2), False), "done": (repos[-1], True)}
    targets.update({repo: (repo, True) for repo in repos[:-1]})
    got = run_client(f"TARGETS = {targets!r}\n" + READ, env, timeout=600)
    for name, state in got.items():
        card_names = state.pop("card_names")
        for split, entry in state.items():
            assert entry["advertised"] == len(entry["rows"]), (name, split)
            assert entry["rows"] == entry["stream"] == entry.get("wds", entry["rows"]), (name, split)
        if name not in ("v1", "v2"):
            assert card_names > 0, name  # the pushed card names the repo it was pushed to
    assert got["v1"] != got["v2"]
    for repo in repos[:-1]:
        assert got[repo] == got["v1"], repo  # the final commit never landed: the old dataset, whole
    assert got["done"] == got["v2"]
    assert all(".diverseg" not in p and ".partial" not in p for files in killed.values() for p in files)


def test_push_refuses_an_incomplete_publish_and_never_uploads_hidden_files(hub_env, versions, tmp_path) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(versions[1], folder)
    staging = folder / "data" / ".mine.partial"
    staging.mkdir()
    (staging / "train-00000-of-00001.parquet").write_bytes(b"half written")
    (folder / "wds" / "mine" / ".train-00000.tar.3f2a.tmp").write_bytes(b"temporary")
    with pytest.raises(DiversegError, match=r"last publish into .* did not complete \(data/\.mine\.partial is left"):
        push_folder(folder, "tester/hidden")
    assert hub_env.log == []  # refused before any request

    shutil.rmtree(staging)
    work_staging = folder / ".diverseg" / "mine" / ".units.partial"  # inside the work files: not a publish's
    work_staging.mkdir()
    (work_staging / "x.parquet").write_bytes(b"work in progress")
    push_folder(folder, "tester/hidden")
    remote = set(hub_env.files("tester/hidden")) - {".gitattributes"}
    local = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert remote == {p for p in local if not any(part.startswith(".") for part in p.split("/"))}
    assert any(p.startswith(".diverseg/") for p in local) and any(p.endswith(".tmp") for p in local)


def test_pushed_card_names_the_repo_and_the_local_card_is_left_alone(hub_env, versions, tmp_path) -> None:
    folder = tmp_path / "ds"
    shutil.copytree(versions[0], folder)
    local_card = (folder / "README.md").read_bytes()
    assert main(["push", str(folder), "tester/named"]) == 0
    remote_card = hub_env.files("tester/named")["README.md"].decode()
    assert 'load_dataset("tester/named"' in remote_card and str(folder) not in remote_card
    assert (folder / "README.md").read_bytes() == local_card
    hub_env.log.clear()
    assert main(["push", str(folder), "tester/named"]) == 0  # the rendered card is what is on the Hub: no commit
    assert not hub_env.requests(contains="/commit/")


def test_final_commit_carries_every_change_readers_see(hub_env, versions) -> None:
    v1, v2 = versions
    push_folder(v1, "tester/split")
    result = push_folder(v2, "tester/split", max_files_per_commit=1)
    commits = hub_env.commits("tester/split")[::-1]
    added = [{p for p, b in new.files.items() if old.files.get(p) != b} for old, new in itertools.pairwise(commits)]
    removed = [set(old.files) - set(new.files) for old, new in itertools.pairwise(commits)]
    update = added[-len(result.commits):]
    assert [len(a) for a in update[:-1]] == [1, 1, 1]
    assert all(p.split("/")[-2] == "extra" for a in update[:-1] for p in a)
    final = update[-1]
    assert "README.md" in final and {p for p in final if p.startswith("data/mine/")} == {
        f"data/mine/{p.name}" for p in (v2 / "data" / "mine").iterdir()}
    gone = {p.relative_to(v1).as_posix() for p in v1.rglob("*") if p.is_file() and ".diverseg" not in p.parts
            and not (v2 / p.relative_to(v1)).exists()}  # mine's old generation: its shards and scores
    assert gone and removed[-1] == gone and not any(removed[:-1])


CARD_FORMS = """---
configs:
- config_name: listed
  data_files:
  - split: train
    path: [data/a/*.parquet, data/b/x-*.parquet]
  - split: test
    path: data/t/**/*.parquet
- config_name: mapping
  data_files: {train: m/train.parquet}
- config_name: plain
  data_files: p/*.tar
- config_name: dir
  data_dir: d
---
"""


@pytest.mark.parametrize(
    ("path", "read"),
    [("data/a/0.parquet", True), ("data/a/sub/0.parquet", False), ("data/b/x-1.parquet", True),
     ("data/b/y-1.parquet", False), ("data/t/0.parquet", True), ("data/t/u/v/0.parquet", True),
     ("m/train.parquet", True), ("m/test.parquet", False), ("p/0.tar", True), ("d/any/thing.bin", True),
     ("assets/x.png", False)],
)
def test_card_patterns_cover_every_data_files_form(path: str, read: bool) -> None:
    assert any(p.match(path) for p in card_patterns(CARD_FORMS)) == read
    early, final = split_for_readers([path], {"README.md"}, CARD_FORMS)
    assert (final if read else early) == [path]
    assert stale_paths([path], set(), CARD_FORMS, prune=False) == ([path] if read else [])


def test_split_keeps_changes_and_known_folders_for_the_final_commit() -> None:
    remote = {"README.md", "wds/mine/train-00000.tar", "data/mine/train-00000-of-00001.parquet"}
    todo = ["wds/mine/train-00001.tar", "data/mine/train-00000-of-00001.parquet", "wds/new/train-00000.tar",
            "README.md", "LICENSE"]
    early, final = split_for_readers(todo, remote, CARD_FORMS)
    assert early == ["wds/new/train-00000.tar"]  # a new folder no pattern reaches
    assert split_for_readers(["x/y.bin"], {".gitattributes"}, None) == (["x/y.bin"], [])  # no card on the Hub
    assert split_for_readers(["x/y.bin"], {"README.md"}, "# no configs") == ([], ["x/y.bin"])  # reads every file
    assert final == todo[:2] + todo[3:]

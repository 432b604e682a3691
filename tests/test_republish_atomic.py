"""Re-publishing a config is atomic from the reader's side, and a killed publish resumes shard by shard.

A publish is killed with SIGKILL after each of its file operations in turn (every rename and delete:
each shard, the registry, the card, the sweep of the old generation, the marker). At every such
moment ``load_dataset`` (and streaming, and the tars the card names, and the registry's readers) must
give the old config or the new one entirely, the card's row count must agree, and the next publish
must finish the job without leftovers. The CLI is also killed for real (``kill -9`` of its process
group, with ``--workers 2``).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard
from pipeline_helpers import good_images, write_files

from diverseg_hf.errors import DiversegError
from diverseg_hf.files import TEMP_GLOB
from diverseg_hf.hub.push import push_folder
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.sources import Source, Unit, open_source
from diverseg_hf.storage import DatasetDir, iter_parquet_rows, iter_tar_samples, load_selection

SHARD = 16_000  # a few images per shard
OPTIONS = {"formats": ["parquet", "webdataset"], "shard_size": SHARD, "progress": False}


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    write_files(root / "src", good_images(18))
    score(str(root / "src"), root / "scores", unit_size=4, progress=False)
    select(root / "scores", root / "old", max_blockiness=1000)
    select(root / "scores", root / "new", max_blockiness=25)
    publish(root / "old", root / "base", "mine", **OPTIONS)
    keys = {which: load_selection(root / which)[0].column("key").to_pylist() for which in ("old", "new")}
    assert keys["old"] != keys["new"] and keys["new"]
    return root, keys


def copy_folder(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)
    return dst


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".diverseg" not in p.parts}


def killed_publish(n_ops: int, selection: Path, out: Path, **options) -> bool:
    """Publish in a forked child that SIGKILLs itself after its ``n_ops``-th rename or delete; True if killed."""
    pid = os.fork()
    if pid == 0:  # the child: count file operations, die on the n-th
        count = [0]

        def counted(fn):
            def wrapper(*args, **kwargs):
                result = fn(*args, **kwargs)
                count[0] += 1
                if count[0] >= n_ops:
                    os.kill(os.getpid(), signal.SIGKILL)
                return result
            return wrapper

        os.replace, os.rename, os.unlink = counted(os.replace), counted(os.rename), counted(os.unlink)
        try:
            publish(selection, out, "mine", **options)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == 0
    return os.WIFSIGNALED(status)


def reader_views(folder: Path, cache: Path) -> dict[str, list[str]]:
    """The keys every reader sees, and what the card says."""
    card = DatasetCard.load(folder / "README.md")
    info = {i["config_name"]: i for i in card.data.to_dict()["dataset_info"]}
    ds = datasets.load_dataset(str(folder), "mine", split="train", cache_dir=str(cache))
    stream = datasets.load_dataset(str(folder), "mine", split="train", streaming=True)
    scores = datasets.load_dataset(str(folder), "scores", split="mine", cache_dir=str(cache))
    wds_pattern = re.search(r'"[^"]*/(wds/mine/train-\*-\w+\.tar)"', card.text).group(1)
    tar_keys = [s.key for p in sorted(folder.glob(wds_pattern)) for s in iter_tar_samples(p, read=False)]
    registry = DatasetDir(folder)
    return {
        "card rows": [str(info["mine"]["splits"][0]["num_examples"])],
        "card scores rows": [str(info["scores"]["splits"][0]["num_examples"])],
        "load": ds["key"][:],
        "streaming": [row["key"] for row in stream],
        "scores rows": [str(scores.num_rows)],
        "tars the card names": tar_keys,
        "registry parquet": [r["key"] for p in registry.parquet_shards("mine") for r in iter_parquet_rows(p, ["key"])],
        "registry tars": [s.key for p in registry.tar_shards("mine") for s in iter_tar_samples(p, read=False)],
    }


def assert_old_or_new(views: dict[str, list[str]], keys: dict[str, list[str]], score_rows: int) -> str:
    which = "old" if views["load"] == keys["old"] else "new"
    assert views["load"] == keys[which], "load_dataset gives neither the old config nor the new one"
    assert views["streaming"] == keys[which] and views["tars the card names"] == keys[which]
    assert views["card rows"] == [str(len(keys[which]))], "the card disagrees with the shards"
    assert views["scores rows"] == views["card scores rows"] == [str(score_rows)]
    for name in ("registry parquet", "registry tars"):  # the registry may be one step ahead of the card
        assert views[name] in (keys["old"], keys["new"]), name
    return which


@pytest.mark.slow
def test_republish_killed_after_every_file_operation(case, tmp_path):
    root, keys = case
    score_rows = len(list((root / "src").rglob("*.*")))
    seen = []
    n = 1
    while True:
        folder = copy_folder(root / "base", tmp_path / f"k{n}")
        if not killed_publish(n, root / "new", folder, **OPTIONS):
            break
        which = assert_old_or_new(reader_views(folder, tmp_path / "cache"), keys, score_rows)
        seen.append(which)
        pending = DatasetDir(folder).incomplete_publish()
        assert pending == ["mine"] or (pending == [] and which == "new")  # killed after its last step
        if n % 4 == 1:  # the next run finishes the job and leaves nothing behind
            publish(root / "new", folder, "mine", **OPTIONS)
            assert DatasetDir(folder).incomplete_publish() == []
            assert not [p for p in folder.rglob("*") if p.match(TEMP_GLOB)]
            assert assert_old_or_new(reader_views(folder, tmp_path / "cache"), keys, score_rows) == "new"
            gen = DatasetDir(folder).generation("mine")
            assert all(p.name.endswith((f"-{gen}.parquet", f"-{gen}.tar"))
                       for d in DatasetDir(folder).config_dirs("mine") for p in d.iterdir())
        n += 1
    assert n > 12 and seen[0] == "old" and seen[-1] == "new"  # the kills covered the whole publish


@pytest.mark.slow
def test_killed_publish_resumes_keeping_finished_shards(case, tmp_path):
    root, _ = case
    (tmp_path / "reference").mkdir()
    (tmp_path / "killed").mkdir()
    reference = copy_folder(root / "base", tmp_path / "reference" / "ds")  # same name: same card
    publish(root / "new", reference, "mine", **OPTIONS)
    folder = copy_folder(root / "base", tmp_path / "killed" / "ds")
    assert killed_publish(4, root / "new", folder, **OPTIONS)  # the marker, then 3 shard files
    with pytest.raises(DiversegError, match=r"did not complete \(\.diverseg/publish-pending/mine\.json is left"):
        push_folder(folder, "tester/never-reached")  # refused before any request
    gen = DatasetDir(reference).generation("mine")
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for d in DatasetDir(folder).config_dirs("mine")
                for p in d.glob(f"train-*-{gen}.*")}
    assert len(finished) == 3
    publish(root / "new", folder, "mine", **OPTIONS)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in finished} == finished  # not written again
    assert digest(folder) == digest(reference)


@dataclass(frozen=True)
class LoggedUnit(Unit):
    """A unit that notes each read of it in a log file (shared by worker processes)."""

    inner: Unit | None = None
    log: str = ""

    def records(self, keys=None):
        with open(self.log, "a") as fh:
            fh.write(f"{self.id}\n")
        yield from self.inner.records(keys)


def test_workers_read_each_unit_once_and_write_the_same_bytes(case, tmp_path):
    root, _ = case
    src = open_source(str(root / "src"), unit_size=4)
    log = tmp_path / "reads.log"
    logged = Source(src.spec, [LoggedUnit(u.id, u.size, inner=u, log=str(log)) for u in src.units()], src.options)
    one = publish(root / "old", tmp_path / "one" / "ds", "mine", **OPTIONS)
    two = publish(root / "old", tmp_path / "two" / "ds", "mine", source=logged, workers=2, **OPTIONS)
    reads = log.read_text().split()
    assert len(reads) == len(set(reads)) == len(src.units())  # every unit read, none twice
    assert len(one.files) > 4 and len(reads) > 2 and two.files
    assert digest(tmp_path / "one" / "ds") == digest(tmp_path / "two" / "ds")


@pytest.mark.slow
def test_cli_killed_with_workers_is_old_or_new_and_resumes(case, tmp_path):
    root, keys = case
    folder = copy_folder(root / "base", tmp_path / "cli")
    old_files = {p.name for d in DatasetDir(folder).config_dirs("mine") for p in d.iterdir()}
    argv = [sys.executable, "-m", "diverseg_hf", "publish", str(root / "new"), "--out", str(folder),
            "--name", "mine", "--format", "parquet,webdataset", "--shard-size", "1", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    data = DatasetDir(folder).parquet_dir("mine")
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(p.name not in old_files and not p.name.startswith(".") for p in data.iterdir()):
            os.killpg(proc.pid, signal.SIGKILL)  # the publish and its workers
            break
        time.sleep(0.001)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the publish ended before it could be killed"
    assert DatasetDir(folder).incomplete_publish() == ["mine"]
    score_rows = len(list((root / "src").rglob("*.*")))
    assert assert_old_or_new(reader_views(folder, tmp_path / "cache"), keys, score_rows) == "old"
    assert subprocess.run(argv, env=env, stderr=subprocess.DEVNULL).returncode == 0
    assert DatasetDir(folder).incomplete_publish() == []
    assert assert_old_or_new(reader_views(folder, tmp_path / "cache"), keys, score_rows) == "new"


def test_leftovers_of_killed_runs_are_swept(case, tmp_path):
    root, keys = case
    folder = copy_folder(root / "base", tmp_path / "ds")
    leftovers = [folder / "data" / ".mine.partial" / "train-00000-of-00001.parquet",  # earlier versions' staging
                 folder / "wds" / "mine" / ".train-00000-0123456789.tar.5f2a9c01d0e1.tmp",  # a writer's temp file
                 folder / ".README.md.5f2a9c01d0e1.tmp",
                 folder / "data" / "mine" / "train-00000-of-00001-0123456789.parquet"]  # another generation
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"left by a killed run")
    publish(root / "new", folder, "mine", **OPTIONS)
    assert not [p for p in leftovers if p.exists()] and not (folder / "data" / ".mine.partial").exists()
    score_rows = len(list((root / "src").rglob("*.*")))
    assert assert_old_or_new(reader_views(folder, tmp_path / "cache"), keys, score_rows) == "new"

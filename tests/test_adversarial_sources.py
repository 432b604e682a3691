"""Adversarial sources, generated here: every entry gets one row, keys stay unique, damaged tars never abort.

Classes: colliding file names, dangling symlinks, symlink loops (file and directory), FIFOs, sockets,
devices, unreadable files, hidden files, truncated and corrupt tars (cut at every block), hostile tar
member names (absolute, ``..``, ``.png``), samples with two images or none, links inside tars, duplicate
keys in tars and Parquet key columns; then score -> select -> publish on them, which must never fail on
keys that score accepted.

Unreadable files: the suite runs as root here, where ``chmod 000`` does not stop a read. Then the read
happens with the effective user switched to ``nobody`` (``os.seteuid``, restored right after) in a
world-readable temporary folder, so the kernel itself refuses it; as any other user ``chmod 000`` is
enough.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import stat
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pipeline_helpers import good_images

from diverseg_hf.keys import decode_key
from diverseg_hf.publish.from_selection import publish
from diverseg_hf.score import score
from diverseg_hf.select import select
from diverseg_hf.sources import open_source
from diverseg_hf.storage import DatasetDir, ScoreTable, iter_parquet_rows, iter_tar_samples, load_selection


def records(source):
    return [r for unit in source.units() for r in unit.records()]


@contextlib.contextmanager
def no_blocking(seconds: int = 60):
    """Fail instead of hanging forever if something opens a FIFO (a guard, not a timing assertion)."""
    def boom(*_):
        raise AssertionError("blocked: a FIFO was opened for reading")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def images(n: int, seed: int = 0) -> list[bytes]:
    return list(good_images(n, seed).values())


# ----------------------------------------------------------------------------- folders


def hostile_folder(root: Path) -> dict[str, str | None]:
    """A folder with every kind of entry; returns relative path -> expected error prefix (None = image)."""
    pics = images(6)
    expected: dict[str, str | None] = {}
    root.mkdir(parents=True, exist_ok=True)
    for name, data in (("a.png", pics[0]), ("a.jpg", pics[1]), ("a.png.jpg", pics[2]), ("A.PNG", pics[3]),
                       ("sub/b.tif.png", pics[4]), ("dir.png/inner.jpg", pics[5])):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        expected[name] = None
    os.symlink(root / "gone.png", root / "dangling.png")
    expected["dangling.png"] = "missing: dangling symlink"
    os.symlink("loop.png", root / "loop.png")
    expected["loop.png"] = "unreadable: symlink loop"
    os.symlink("a.png", root / "alias.jpg")  # a link to a good file is read through
    expected["alias.jpg"] = None
    os.mkfifo(root / "fifo.png")
    expected["fifo.png"] = "unsupported: a FIFO"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock.webp"))
    expected["sock.webp"] = "unsupported: a socket"
    with contextlib.suppress(PermissionError):  # devices need root
        os.mknod(root / "dev.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        expected["dev.jpg"] = "unsupported: a character device"
    (root / "empty.png").write_bytes(b"")
    expected["empty.png"] = "empty: zero-byte file"
    # left out, and counted: hidden entries, files without an image suffix, a directory link loop
    (root / ".hidden.png").write_bytes(pics[0])
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_bytes(pics[0])
    (root / "notes.txt").write_text("not an image")
    os.symlink("..", root / "sub" / "up")
    return expected


def test_every_folder_entry_gets_one_row_and_nothing_is_opened(tmp_path, caplog):
    expected = hostile_folder(tmp_path / "src")
    with no_blocking():
        src = open_source(str(tmp_path / "src"))
        got = records(src)
    assert sorted(r.origin for r in got) == sorted(expected)
    by_origin = {r.origin: r for r in got}
    for rel, error in expected.items():
        record = by_origin[rel]
        if error is None:
            assert record.error is None and record.data == (tmp_path / "src" / rel).read_bytes(), rel
        elif error.startswith("empty"):
            assert record.error is None and record.data == b""  # the decoder names it
        else:
            assert record.error.startswith(error) and record.data == b"", (rel, record.error)
    keys = [r.key for r in got]
    assert len(set(keys)) == len(keys) and all("." not in k for k in keys)
    assert {by_origin[n].key for n in ("a.png", "a.jpg", "a.png.jpg")} == {"a%40png", "a%40jpg", "a%2Epng"}
    assert decode_key(by_origin["a.png.jpg"].key) == "a.png"
    assert decode_key(by_origin["a.jpg"].key) == "a.jpg"
    assert "hidden" in caplog.text and "no image suffix" in caplog.text and "directory link" in caplog.text
    # stable: the same keys again
    assert [r.key for r in records(open_source(str(tmp_path / "src")))] == keys


def test_folder_score_select_publish_never_fails_on_keys(tmp_path):
    hostile_folder(tmp_path / "src")
    with no_blocking():
        summary = score(str(tmp_path / "src"), tmp_path / "scores", progress=False, unit_size=4)
    table = ScoreTable.open(tmp_path / "scores").read()
    assert summary.rows == table.num_rows
    errors = dict(zip(table.column("origin").to_pylist(), table.column("error").to_pylist()))
    assert errors["fifo.png"].startswith("unsupported") and errors["empty.png"].startswith("empty")
    select(tmp_path / "scores", tmp_path / "sel", max_blockiness=1e9)
    with no_blocking():
        publish(tmp_path / "sel", tmp_path / "ds", "mine", formats=["parquet", "webdataset"], progress=False)
    _check_published(tmp_path, tmp_path / "src")


def _check_published(tmp_path: Path, folder: Path | None = None) -> None:
    """Published keys = selected keys (unique), bytes = the scored bytes, tar names relative and dot-safe."""
    selection, _ = load_selection(tmp_path / "sel")
    want = dict(zip(selection.column("key").to_pylist(), selection.column("sha256").to_pylist()))
    assert len(want) == selection.num_rows > 0
    dataset = DatasetDir(tmp_path / "ds")
    rows = [row for path in dataset.parquet_shards("mine") for row in iter_parquet_rows(path, ["key", "image"])]
    import hashlib

    assert {r["key"]: hashlib.sha256(r["image"]["bytes"]).hexdigest() for r in rows} == want
    if folder is not None:
        origins = dict(zip(selection.column("key").to_pylist(), selection.column("origin").to_pylist()))
        assert all(r["image"]["bytes"] == (folder / origins[r["key"]]).read_bytes() for r in rows)
    for path in dataset.tar_shards("mine"):
        with tarfile.open(path) as tar:
            for name in tar.getnames():
                assert not name.startswith("/") and ".." not in name.split("/") and name.split("/")[-1][0] != "."
        assert {s.key for s in iter_tar_samples(path)} <= set(want)


@contextlib.contextmanager
def as_another_user():
    """Run the block as ``nobody`` when the suite runs as root (restored after), else as it is."""
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(65534)  # the kernel now refuses what mode bits forbid, as it would for any user
    try:
        yield
    finally:
        if as_root:
            os.seteuid(0)


def test_unreadable_file_says_permission_denied(caplog):
    root = Path(tempfile.mkdtemp(prefix="diverseg-perm-"))
    try:
        os.chmod(root, 0o755)
        (root / "ok.png").write_bytes(images(1)[0])
        (root / "locked.png").write_bytes(images(2)[1])
        (root / "closed").mkdir()
        (root / "closed" / "inside.png").write_bytes(images(1)[0])
        os.chmod(root / "ok.png", 0o644)
        os.chmod(root / "locked.png", 0o000)
        os.chmod(root / "closed", 0o000)
        with as_another_user():
            got = {r.origin: r for r in records(open_source(str(root)))}
        assert got["locked.png"].error == "unreadable: permission denied" and got["locked.png"].data == b""
        assert got["ok.png"].error is None and got["ok.png"].data == (root / "ok.png").read_bytes()
        assert set(got) == {"ok.png", "locked.png"}
        assert "1 unlistable directory (permission denied)" in caplog.text
    finally:
        os.chmod(root / "locked.png", 0o644)
        os.chmod(root / "closed", 0o755)
        (root / "closed" / "inside.png").unlink()
        (root / "closed").rmdir()
        for p in root.iterdir():
            p.unlink()
        root.rmdir()


# ----------------------------------------------------------------------------- tars


def write_tar(path: Path, members: list[tuple[str, bytes]], links: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def sample_members(n: int, seed: int) -> list[tuple[str, bytes]]:
    out = []
    for i, data in enumerate(images(n, seed)):
        out += [(f"s{seed}-{i:03d}.png", data), (f"s{seed}-{i:03d}.json", b'{"i": %d}' % i)]
    return out


def test_truncated_tar_cut_anywhere_keeps_complete_samples_and_one_error_row(tmp_path):
    members = sample_members(5, seed=1)
    full = write_tar(tmp_path / "full.tar", members).read_bytes()
    with tarfile.open(tmp_path / "full.tar") as tar:
        ends = {m.name: m.offset_data + m.size for m in tar.getmembers()}
    last_data = max(ends.values())
    marker = -(-last_data // 512) * 512  # where the end-of-archive marker starts
    rng = np.random.default_rng(0)
    cuts = sorted(set(range(0, last_data + 1024, 512)) | set(rng.integers(1, last_data, 20).tolist()))
    for cut in cuts:
        path = tmp_path / "cut.tar"
        path.write_bytes(full[:cut])
        samples = list(iter_tar_samples(path))
        pngs = [name.split(".")[0] for name, _ in members[::2] if ends[name] <= cut]
        complete = [k for k in pngs if ends[f"{k}.json"] <= cut]
        good = [s for s in samples if s.error is None]
        # every complete sample, and at most one more whose image is whole (the cut fell between its members)
        assert [s.key for s in good] == pngs[: len(good)] and len(good) >= len(complete), cut
        bad = [s for s in samples if s.error]
        if cut >= marker + 512:  # every member complete, one zero block of the marker present
            assert not bad and len(good) == len(complete) == 5, cut
            continue
        assert len(bad) == 1 and samples[-1] is bad[0], cut
        assert bad[0].error.split(":")[0] in ("truncated", "corrupt"), bad[0].error
        assert [s.key for s in iter_tar_samples(path, read=False)] == [s.key for s in samples], cut
        for s in good:
            assert s.data == dict(members)[s.name]


def test_corrupt_header_in_the_middle(tmp_path):
    members = sample_members(4, seed=2)
    path = write_tar(tmp_path / "x.tar", members)
    with tarfile.open(path) as tar:
        third = tar.getmembers()[4].offset  # header of the third sample's image
    data = bytearray(path.read_bytes())
    data[third: third + 512] = bytes(range(256)) * 2
    path.write_bytes(bytes(data))
    samples = list(iter_tar_samples(path))
    assert [s.key for s in samples[:-1]] == ["s2-000", "s2-001"] and all(s.error is None for s in samples[:-1])
    assert samples[-1].error.startswith("corrupt") and samples[-1].key == ""


def test_damaged_tars_never_abort_the_source(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    write_tar(root / "a.tar", sample_members(3, seed=3))
    full = write_tar(tmp_path / "b.tar", sample_members(3, seed=4)).read_bytes()
    (root / "b.tar").write_bytes(full[: len(full) // 3])
    (root / "c.tar").write_bytes(b"this is not a tar at all" * 40)
    write_tar(root / "d.tar", sample_members(2, seed=5))
    got = records(open_source(str(root)))
    by_tar: dict[str, list] = {}
    for r in got:
        by_tar.setdefault(r.origin.split(".tar#")[0], []).append(r)
    assert [r.error for r in by_tar["a"]] == [None] * 3 and [r.error for r in by_tar["d"]] == [None] * 2
    assert by_tar["b"][-1].error.startswith("truncated") and all(r.error is None for r in by_tar["b"][:-1])
    assert len(by_tar["c"]) == 1 and by_tar["c"][0].error.startswith("corrupt")
    keys = [r.key for r in got]
    assert len(set(keys)) == len(keys)


def test_hostile_member_names_two_images_no_image_links_and_repeats(tmp_path):
    pics = images(9, seed=6)
    members = [("/abs/evil.png", pics[0]), ("../up.png", pics[1]), ("a/../../b.png", pics[2]), (".png", pics[3]),
               ("./dot.png", pics[4]), ("dir//dbl.png", pics[5]), ("two.png", pics[6]), ("two.jpg", pics[7]),
               ("two.json", b"{}"), ("meta.json", b"{}"), ("meta.txt", b"x"), ("dup.png", pics[8]),
               ("x.json", b"{}"), ("dup.png", pics[0])]
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    write_tar(src_dir / "h.tar", members, links=("link.png",))
    write_tar(src_dir / "i.tar", [("dup.png", pics[1]), ("two.png", pics[2])])
    got = records(open_source(str(src_dir)))
    keys = [r.key for r in got]
    assert keys == ["abs/evil", "%2E%2E/up", "a/%2E%2E/%2E%2E/b", "%3F", "dot", "dir/dbl", "two", "meta", "dup", "x",
                    "dup%232", "link", "dup%233", "two%232"]
    for key in keys:
        assert key and not key.startswith("/") and ".." not in key.split("/") and "." not in key
    by_key = {r.key: r for r in got}
    assert by_key["two"].data == pics[6] and by_key["two"].extra == {"other_images": ["two.jpg"]}
    assert by_key["two"].origin == "h.tar#two.png;ignored=two.jpg"
    assert by_key["meta"].error == "missing: no image member (members: meta.json, meta.txt)"
    assert by_key["link"].error.startswith("unsupported") and by_key["link"].data == b""
    assert by_key["dup"].data == pics[8] and by_key["dup%232"].data == pics[0] and by_key["dup%233"].data == pics[1]
    assert decode_key("dup%233") == "dup"


def test_tar_and_parquet_repeats_survive_score_select_publish(tmp_path):
    pics = images(8, seed=7)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    write_tar(src_dir / "a.tar", [("dup.png", pics[0]), ("x.json", b"{}"), ("dup.png", pics[1]),
                                  ("/abs.png", pics[2]), ("../up.png", pics[3]), (".png", pics[4])])
    write_tar(src_dir / "b.tar", [("dup.png", pics[5]), ("two.png", pics[6]), ("two.jpg", pics[7])])
    score(str(src_dir), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel", max_blockiness=1e9)
    publish(tmp_path / "sel", tmp_path / "ds", "mine", formats=["parquet", "webdataset"], progress=False)
    _check_published(tmp_path)
    keys = set(load_selection(tmp_path / "sel")[0].column("key").to_pylist())
    assert {"dup", "dup%232", "dup%233", "abs", "%2E%2E/up", "%3F"} <= keys


def test_parquet_key_column_repeats(tmp_path):
    pics = images(6, seed=8)
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

    def part(name, keys, data):
        pq.write_table(pa.table({"key": keys, "image": pa.array([{"bytes": d, "path": None} for d in data],
                                                                image_type)}), src_dir / name)

    part("p0.parquet", ["a", "a", "/b", ""], pics[:4])
    part("p1.parquet", ["a", "b.c"], pics[4:])
    got = records(open_source(str(src_dir)))
    assert [r.key for r in got] == ["a", "a%232", "b", "%3F", "a%233", "b%2Ec"]
    assert [r.data for r in got] == pics
    # units read apart give the same keys (a worker reading only the second file)
    second = open_source(str(src_dir)).units()[1]
    assert [r.key for r in second.records()] == ["a%233", "b%2Ec"]
    score(str(src_dir), tmp_path / "scores", progress=False)
    select(tmp_path / "scores", tmp_path / "sel", max_blockiness=1e9)
    publish(tmp_path / "sel", tmp_path / "ds", "mine", formats=["parquet", "webdataset"], progress=False)
    _check_published(tmp_path)

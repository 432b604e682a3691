"""SRPairs: pair content, exactly-once across ranks x workers, epochs, resume, skips, sources."""

from __future__ import annotations

import collections
import hashlib
import json

import datasets
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from image_zoo import textured, zoo_bytes  # noqa: E402
from sr_folder import encode, write_published_folder  # noqa: E402

from diverseg_hf.decode.images import decode_rgb  # noqa: E402
from diverseg_hf.errors import DiversegError  # noqa: E402
from diverseg_hf.sr import SRPairs, imresize  # noqa: E402
from diverseg_hf.sr.pairs import stream_records  # noqa: E402
from diverseg_hf.sr.readers import folder_reader  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

SCALE, PATCH = 4, 16
N_VALID = 15


def key_of(i: int) -> str:
    """Published keys are dot-free and may hold a folder, like ImageNet's ``n01440764/n01440764_18``."""
    return f"n{i % 2}/img{i:02d}"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """18 records in 6 shards: 15 usable images (PNG and JPEG), 2 smaller than the patch, 1 truncated."""
    records = []
    for i in range(N_VALID):
        rgb = textured(17 + i, 16 + 2 * i, seed=i)
        fmt, ext = ("JPEG", "jpg") if i % 3 == 0 else ("PNG", "png")
        records.append((key_of(i), encode(rgb, fmt), ext))
    records.insert(4, ("small_h", encode(textured(12, 40, seed=90)), "png"))
    records.insert(11, ("small_w", encode(textured(40, 15, seed=91)), "png"))
    records.insert(8, ("broken", zoo_bytes()["truncated_jpeg"], "jpg"))
    root = write_published_folder(tmp_path_factory.mktemp("published"), records, config="I", shards=6)
    return root, {k: b for k, b, _ in records}


VALID_KEYS = sorted(key_of(i) for i in range(N_VALID))


def make(published, kind, **kw):
    root, _ = published
    kw.setdefault("scale", SCALE)
    kw.setdefault("patch_size", PATCH)
    if kind == "map":
        ds = datasets.load_dataset(str(root), "I", split="train", cache_dir=str(root / ".cache"))
        return SRPairs(ds, **kw)
    if kind == "streaming":  # a dict of splits: SRPairs takes its train split
        return SRPairs(datasets.load_dataset(str(root), "I", streaming=True), **kw)
    return SRPairs.from_folder(root, "I", format=kind, **kw)


def run(pairs, workers, batch_size=2, max_batches=None):
    """Iterate a DataLoader over pairs, recording consumption; return the examples seen (key, pos, hr)."""
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, num_workers=workers)
    seen = []
    for n, batch in enumerate(loader):
        if max_batches is not None and n >= max_batches:
            break
        pairs.consumed(batch)
        seen.extend(zip(batch["key"], batch["hr"]))
    return seen


def fingerprint(examples):
    return sorted((k, hashlib.sha1(hr.numpy().tobytes()).hexdigest()) for k, hr in examples)


@pytest.mark.parametrize("kind", ["map", "parquet"])
@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_image_exactly_once_per_epoch(published, kind, world, workers):
    keys = []
    for rank in range(world):
        keys += [k for k, _ in run(make(published, kind, rank=rank, world_size=world), workers)]
    assert sorted(keys) == VALID_KEYS


@pytest.mark.parametrize("kind", ["streaming", "webdataset"])
@pytest.mark.parametrize(("world", "workers"), [(2, 2), (1, 3)])
def test_sharded_sources_exactly_once(published, kind, world, workers):
    keys = []
    for rank in range(world):
        keys += [k for k, _ in run(make(published, kind, rank=rank, world_size=world), workers)]
    assert sorted(keys) == VALID_KEYS


def test_shard_wise_when_even_else_example_wise(published):
    root, _ = published
    reader = folder_reader(root, "I")
    shard_of = {k: s for s in range(6) for k, _ in reader.read_shard(s)}
    for n_streams in (1, 2, 3, 4, 5, 6, 7):
        streams = [[k for k, _ in stream_records(reader, 0, 0, g, n_streams)] for g in range(n_streams)]
        assert sorted(k for st in streams for k in st) == sorted(shard_of)
        sizes = [len(st) for st in streams]
        assert max(sizes) - min(sizes) <= 1  # balanced to within one record
        whole = 6 // n_streams  # shards each stream reads whole; the 6 mod n left over are dealt by record
        for st in streams:
            per_shard = collections.Counter(shard_of[k] for k in st)
            assert sum(1 for c in per_shard.values() if c == 3) >= whole
        if 6 % n_streams == 0:
            assert all(len({shard_of[k] for k in st}) == whole for st in streams)


def _dihedral(a):
    for k in range(4):
        r = np.rot90(a, k)
        yield r
        yield r[:, ::-1]


@pytest.mark.parametrize("augment", [False, True])
def test_pair_content(published, augment):
    _, raw = published
    pairs = make(published, "parquet", augment=augment, pairs_per_image=2)
    n = 0
    for ex in pairs:
        hr, lr = ex["hr"], ex["lr"]
        assert hr.dtype == torch.float32 and tuple(hr.shape) == (3, PATCH, PATCH)
        assert tuple(lr.shape) == (3, PATCH // SCALE, PATCH // SCALE)
        hr8 = np.round(hr.numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        np.testing.assert_array_equal(hr.numpy() * 255, np.round(hr.numpy() * 255))  # exact uint8 levels
        np.testing.assert_array_equal(np.round(lr.numpy().transpose(1, 2, 0) * 255), imresize(hr8, 1 / SCALE))
        src = decode_rgb(raw[ex["key"]])
        crops = [
            src[t : t + PATCH, left : left + PATCH]
            for t in range(0, src.shape[0] - PATCH + 1, SCALE)
            for left in range(0, src.shape[1] - PATCH + 1, SCALE)
        ]
        variants = [v for c in crops for v in (_dihedral(c) if augment else [c])]
        assert any((v == hr8).all() for v in variants), ex["key"]
        n += 1
    assert n == 2 * N_VALID


def test_epochs_reshuffle_deterministically(published):
    def order(epoch, seed=0):
        pairs = make(published, "map", seed=seed)
        pairs.set_epoch(epoch)
        return [(ex["key"], ex["hr"].sum().item()) for ex in pairs]

    e0 = order(0)
    assert order(0) == e0
    e1 = order(1)
    assert sorted(k for k, _ in e1) == VALID_KEYS
    assert [k for k, _ in e1] != [k for k, _ in e0]
    assert [k for k, _ in order(0, seed=1)] != [k for k, _ in e0]
    # sharded source: shard order and the shuffle buffer both change with the epoch
    a, b = make(published, "parquet"), make(published, "parquet")
    b.set_epoch(1)
    assert [ex["key"] for ex in a] != [ex["key"] for ex in b]


@pytest.mark.parametrize("kind", ["map", "parquet"])
@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_resume_mid_epoch(published, kind, world, workers):
    full, resumed = [], []
    for rank in range(world):
        full += run(make(published, kind, rank=rank, world_size=world, pairs_per_image=2), workers)
        first = make(published, kind, rank=rank, world_size=world, pairs_per_image=2)
        first.set_epoch(3)
        before = run(first, workers, batch_size=3, max_batches=2)  # odd batches: stops mid-image
        state = json.loads(json.dumps(first.state_dict()))
        second = make(published, kind, rank=rank, world_size=world, pairs_per_image=2)
        second.load_state_dict(state)
        second.set_epoch(3)  # the same epoch keeps the loaded progress
        after = run(second, workers, batch_size=3)
        assert before and after
        resumed += before + after
    counts = collections.Counter(k for k, _ in resumed)
    assert sorted(counts) == VALID_KEYS and set(counts.values()) == {2}
    # epoch 3 draws other crops than epoch 0, but resuming changes none of them
    again = []
    for rank in range(world):
        p = make(published, kind, rank=rank, world_size=world, pairs_per_image=2)
        p.set_epoch(3)
        again += run(p, 0)
    assert fingerprint(resumed) == fingerprint(again)
    assert fingerprint(full) != fingerprint(again)


def test_resume_with_other_layout_is_refused(published):
    pairs = make(published, "map", rank=0, world_size=2)
    run(pairs, 2, max_batches=1)
    state = pairs.state_dict()
    with pytest.raises(DiversegError, match="world_size"):
        make(published, "map", rank=0, world_size=1).load_state_dict(state)
    other = make(published, "map", rank=0, world_size=2)
    other.load_state_dict(state)
    with pytest.raises(DiversegError, match="workers"):
        run(other, 0)


def test_small_and_bad_images_are_skipped_and_counted(tmp_path):
    records = [
        ("tiny", encode(textured(8, 8, seed=1)), "png"),
        ("broken", zoo_bytes()["text_as_png"], "png"),
        ("narrow", encode(textured(30, 10, seed=2)), "png"),
        ("good", encode(textured(20, 20, seed=3)), "png"),
    ]
    root = write_published_folder(tmp_path, records, shards=1)
    for workers in (0, 1):
        pairs = SRPairs.from_folder(root, "I", scale=SCALE, patch_size=PATCH, shuffle_buffer=1)
        assert [k for k, _ in run(pairs, workers)] == ["good"]
        assert pairs.skipped == {"too_small": 2, "bad": 1}


def test_set_epoch_forgets_progress(published):
    pairs = make(published, "map")
    run(pairs, 0, max_batches=2)
    assert pairs.state_dict()["workers"]
    pairs.set_epoch(1)
    assert pairs.state_dict()["workers"] == {} and pairs.state_dict()["epoch"] == 1


def test_rank_from_torch_distributed(published, tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert make(published, "map").rank_and_world_size() == (0, 1)
        assert make(published, "map", rank=1, world_size=3).rank_and_world_size() == (1, 3)
    finally:
        dist.destroy_process_group()


def test_misuse(published):
    root, _ = published
    with pytest.raises(DiversegError, match="multiple of scale"):
        make(published, "map", patch_size=18)
    with pytest.raises(DiversegError, match="both rank and world_size"):
        make(published, "map", rank=0)
    with pytest.raises(DiversegError, match="rank must be"):
        make(published, "map", rank=2, world_size=2)
    with pytest.raises(DiversegError, match="no train-"):
        SRPairs.from_folder(root, "P")
    with pytest.raises(DiversegError, match="'image' is not a column"):
        SRPairs(datasets.Dataset.from_dict({"key": ["a"]}))
    with pytest.raises(DiversegError, match="no 'train' split"):
        SRPairs(datasets.DatasetDict({"test": datasets.Dataset.from_dict({"image": [b""]})}))


@pytest.mark.parametrize("augment", [False, True])
def test_lr_from_image_is_the_div2k_convention(published, augment):
    """LR cut from imresize(modcrop(image)) at the patch's place; equal to LR-from-patch but for 2 LR pixels."""
    _, raw = published
    s = 2  # LR patches of 8x8: an inner 4x4 away from the 2-pixel border
    kw = {"augment": augment, "pairs_per_image": 2, "shuffle_buffer": 1, "scale": s}
    image = list(make(published, "parquet", lr_from="image", output_names=("lq", "gt"), **kw))
    patch = list(make(published, "parquet", **kw))
    assert len(image) == len(patch) == 2 * N_VALID
    differs = 0
    for a, b in zip(image, patch):
        assert set(a) == {"key", "lq", "gt", "pos"} and a["key"] == b["key"]
        assert torch.equal(a["gt"], b["hr"])  # same crop and augmentation
        src = decode_rgb(raw[a["key"]])
        full = imresize(src[: src.shape[0] // s * s, : src.shape[1] // s * s], 1 / s)
        lq = np.round(a["lq"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        n = PATCH // s
        windows = [full[t : t + n, left : left + n] for t in range(full.shape[0] - n + 1)
                   for left in range(full.shape[1] - n + 1)]
        variants = [v for w in windows for v in (_dihedral(w) if augment else [w])]
        assert any((v == lq).all() for v in variants), a["key"]
        inner = (slice(None), slice(2, -2), slice(2, -2))
        assert a["lq"][inner].numel() == 3 * 4 * 4
        gap = (a["lq"][inner] - b["lr"][inner]).abs().max().item() * 255
        # inside the border: equal, but for quarter turns, where "patch" resizes the turned patch rows-first
        # (columns-first for the image) and MATLAB's rounding between the passes moves a level at most
        assert gap < 1e-3 if not augment else gap < 1 + 1e-3
        differs += not torch.equal(a["lq"], b["lr"])
    assert differs > N_VALID  # and on textured images it does


def test_lr_from_and_names_are_checked(published):
    with pytest.raises(DiversegError, match="lr_from"):
        make(published, "map", lr_from="whole")
    with pytest.raises(DiversegError, match="output_names"):
        make(published, "map", output_names=("lq", "pos"))


@pytest.mark.parametrize("lr_from", ["patch", "image"])
def test_uint8_output_is_the_float_output_in_levels(published, lr_from):
    """dtype="uint8" hands over the levels; .float() / 255 gives the float32 output exactly, pair for pair."""
    floats = list(make(published, "parquet", lr_from=lr_from, augment=True))
    levels = list(make(published, "parquet", lr_from=lr_from, augment=True, dtype="uint8"))
    assert [a["key"] for a in floats] == [b["key"] for b in levels] and len(floats) == N_VALID
    for a, b in zip(floats, levels):
        assert b["lr"].dtype == b["hr"].dtype == torch.uint8 and b["hr"].is_contiguous() and b["lr"].is_contiguous()
        assert torch.equal(b["lr"].float().div_(255), a["lr"]) and torch.equal(b["hr"].float().div_(255), a["hr"])
        assert torch.equal(a["pos"], b["pos"])
    with pytest.raises(DiversegError, match="dtype"):
        make(published, "map", dtype="float16")

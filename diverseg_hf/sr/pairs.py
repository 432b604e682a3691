"""``SRPairs``: stream (LR, HR) training patches from a curated subset into a torch DataLoader.

(Longer than the package's usual ~350 lines on purpose: the exactly-once split, the resume contract and
the patch pipeline are one ``IterableDataset``'s state; spread over files, one contract would be too.)

Every image is used exactly once per epoch across all ranks x DataLoader workers, each epoch in a
different deterministic order, and a run can stop and resume mid-epoch without repeating or losing
an image.

How the work is split. The ``S = world_size * num_workers`` *streams* (one per rank x worker;
stream ``rank * num_workers + worker``) share one epoch order, drawn from ``(seed, epoch)``:

* map-style ``datasets.Dataset``: a permutation of all rows; stream ``g`` takes rows ``g::S``;
* sharded sources (streaming ``datasets.IterableDataset``, Parquet or WebDataset folders):
  a permutation of the ``N`` shards. The first ``N - N mod S`` shards are dealt whole (shard-wise:
  stream ``g`` reads shards ``g::S`` of them); the ``N mod S`` remaining shards are read by every
  stream, which keeps their records ``g::S`` (example-wise; exact, at the cost of each stream
  reading those shards' bytes). When ``S`` divides ``N`` this is purely shard-wise, when ``N < S``
  purely example-wise. A deterministic shuffle buffer, seeded by ``(seed, epoch, stream)``, then
  mixes records within the stream.

Streams may differ by one image in length (DDP users: step a fixed number of batches per rank).

Resume contract. Each yielded example carries ``"pos"``: int64 ``[worker, num_workers, cursor,
too_small, bad]``, where ``cursor`` counts the *pair slots* that worker's stream has consumed
(``pairs_per_image`` slots per image, skipped images included) and the last two are its running
skip counts. The main process calls ``pairs.consumed(batch)`` for every batch it trains on; this
records, per worker, the largest cursor seen (idempotent). ``state_dict()`` returns that record
(plus seed, epoch, rank, world size); after ``load_state_dict(state)`` each worker's stream
restarts at its cursor, replaying the deterministic order without decoding the skipped part.
Resume with the same data, seed, world size, number of workers, ``pairs_per_image`` and
``shuffle_buffer`` (all but the data are checked). Random crops and
augmentations are drawn from ``(seed, epoch, key, pair index)``, so they do not depend on the
worker layout or on resuming. ``set_epoch(e)`` with a new ``e`` starts a fresh epoch (clearing the
record); with the current epoch it keeps it, so ``load_state_dict`` then ``set_epoch(saved epoch)``
resumes. Use ``persistent_workers=False`` (the default): workers copy the dataset when an epoch
starts.

(About 400 lines: the sharding, resume and pair logic share one state and are kept together.)

Example:
    >>> import datasets, io, numpy as np
    >>> from PIL import Image
    >>> def png(seed):
    ...     buf = io.BytesIO()
    ...     arr = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    ...     Image.fromarray(arr).save(buf, "PNG")
    ...     return {"bytes": buf.getvalue(), "path": None}
    >>> ds = datasets.Dataset.from_dict(
    ...     {"key": ["a", "b"], "image": [png(0), png(1)]},
    ...     features=datasets.Features({"key": datasets.Value("string"), "image": datasets.Image()}))
    >>> pairs = SRPairs(ds, scale=4, patch_size=32)
    >>> sample = next(iter(pairs))
    >>> tuple(sample["hr"].shape), tuple(sample["lr"].shape)
    ((3, 32, 32), (3, 8, 8))

    A training loop that can stop and resume mid-epoch:

    >>> loader = torch.utils.data.DataLoader(pairs, batch_size=16, num_workers=4)  # doctest: +SKIP
    >>> for epoch in range(start_epoch, epochs):  # doctest: +SKIP
    ...     pairs.set_epoch(epoch)  # after load_state_dict, the saved epoch resumes where it stopped
    ...     for batch in loader:
    ...         train_step(batch["lr"].cuda(), batch["hr"].cuda())
    ...         pairs.consumed(batch)
    ...         if time_to_checkpoint():
    ...             save({"model": ..., "pairs": pairs.state_dict()})
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..decode.containers import PNG_MAGIC
from ..decode.images import decode_rgb, probe, read_bytes
from ..errors import DiversegError, ImageError, require
from ..sources import is_hub_id
from . import partial, patches
from .readers import dataset_reader, folder_reader, hub_reader

torch = require("torch", "sr")

logger = logging.getLogger(__name__)

STATE_VERSION = 1


def _key_seed(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")


def _shuffle_buffer(items: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Deterministic bounded shuffle: hold ``size`` items, emit a random one as each new one arrives."""
    if size <= 1:
        yield from items
        return
    buf: list[Any] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


def stream_records(
    reader: Any, seed: int, epoch: int, stream: int, n_streams: int, shuffle_buffer: int = 256, start: int = 0
) -> Iterator[tuple[str, Any]]:
    """The records of one stream for one epoch, from the ``start``-th on (see the module docstring).

    Example:
        >>> from diverseg_hf.sr.readers import MapReader
        >>> import datasets
        >>> r = MapReader(datasets.Dataset.from_dict({"key": list("abcde"), "image": [b""] * 5}))
        >>> sorted(k for s in range(2) for k, _ in stream_records(r, 0, 0, s, 2))
        ['a', 'b', 'c', 'd', 'e']
    """
    order = np.random.default_rng([seed, epoch]).permutation(reader.num_shards)
    if getattr(reader, "random_access", False):
        return (reader.record(int(i)) for i in order[stream::n_streams][start:])
    whole = reader.num_shards // n_streams * n_streams  # shards dealt whole; the rest example by example
    records = itertools.chain(
        itertools.chain.from_iterable(reader.read_shard(int(s)) for s in order[:whole][stream::n_streams]),
        itertools.islice(
            itertools.chain.from_iterable(reader.read_shard(int(s)) for s in order[whole:]), stream, None, n_streams
        ),
    )
    mixed = _shuffle_buffer(records, shuffle_buffer, np.random.default_rng([seed, epoch, stream, 1]))
    return itertools.islice(mixed, start, None)


class SRPairs(torch.utils.data.IterableDataset):
    """(LR, HR) patches for SR training: ``{"key", "hr", "lr", "pos"}`` per example.

    ``hr`` is a 3xPxP float32 tensor in [0, 1], a random ``patch_size`` crop whose offsets are
    multiples of ``scale``, flipped/rotated at random (8 dihedral variants) when ``augment``.
    ``lr`` is a 3x(P/scale)x(P/scale) float32 tensor in [0, 1], MATLAB bicubic with uint8 rounding
    (as SR LR files are), made one of two ways:

    * ``lr_from="patch"`` (default): ``imresize(hr, 1/scale)`` of the (augmented) HR patch: cheap,
      one resize per patch;
    * ``lr_from="image"``: the DIV2K convention (and what ``diverseg export`` writes): the LR of the
      whole image cropped to a multiple of ``scale`` (``imresize(modcrop(image), 1/scale)``), cut at
      the patch's position (offset / scale) and given the patch's flip/rotation; only the window is
      computed, from the input pixels it reads (:func:`~diverseg_hf.sr.imresize.imresize_window`).

    The two agree except in a border of 2 LR pixels: there the bicubic kernel (4 LR pixels wide)
    reads across the patch edge, which ``"patch"`` fills by mirroring and ``"image"`` with the real
    neighbours. With quarter-turn augmentation inner values may also differ by one level: ``"patch"``
    resizes the turned patch, and MATLAB rounds between its row and column passes.
    ``output_names=("lq", "gt")`` names the outputs as BasicSR's datasets do. Images smaller than the
    patch and undecodable images are skipped and counted (:attr:`skipped`). See
    the module docstring for sharding and resuming.

    Args:
        dataset: ``datasets.Dataset`` or streaming ``datasets.IterableDataset`` (unsplit), with an
            image column (``image_column``) and optionally a key column (``key_column``); or a Hub
            dataset id / local dataset folder (see ``config`` below).
        scale: SR factor; ``patch_size`` must be a multiple of it.
        seed: base seed of the epoch orders, crops and augmentations.
        rank, world_size: this process's place among the training processes; default from
            ``torch.distributed`` when it is initialised, else a single process.
        pairs_per_image: patches drawn from each decoded image.
        shuffle_buffer: records mixed within a stream for sharded sources (1 = shard order only).
        lr_from: ``"patch"`` or ``"image"`` (see above).
        output_names: the keys of the LR and HR outputs, ``("lr", "hr")`` or BasicSR's ``("lq", "gt")``.
        partial_decode: decode a PNG only down to the last row its patches need (the same pixels; see
            :mod:`~diverseg_hf.sr.partial` for what is then not checked); ``lr_from="patch"`` only.
        dtype: ``"float32"`` (levels / 255, in [0, 1]) or ``"uint8"`` (the levels): a quarter of the bytes
            DataLoader workers hand over; ``x.float().div_(255)`` on the GPU gives the float32 output exactly.
        config, split, revision, streaming: where ``dataset`` is a Hub dataset id (``"me/mysubset"``) or a
            local dataset folder: the config (subset) and split to read, the revision (pinned to its
            commit when opened) and whether to stream (default) or download first.
    """

    def __init__(
        self,
        dataset: Any,
        scale: int = 4,
        patch_size: int = 192,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        pairs_per_image: int = 1,
        augment: bool = True,
        *,
        image_column: str = "image",
        key_column: str = "key",
        shuffle_buffer: int = 256,
        lr_from: str = "patch",
        output_names: tuple[str, str] = ("lr", "hr"),
        partial_decode: bool = False,
        dtype: str = "float32",
        config: str | None = None,
        split: str = "train",
        revision: str | None = None,
        streaming: bool = True,
    ):
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise DiversegError(f"scale must be a positive integer, got {scale!r}")
        if patch_size < scale or patch_size % scale:
            raise DiversegError(f"patch_size must be a positive multiple of scale {scale}, got {patch_size}")
        if lr_from not in ("patch", "image"):
            raise DiversegError(f"lr_from must be 'patch' or 'image', got {lr_from!r}")
        if len(output_names) != 2 or len(set(output_names)) != 2 or {"key", "pos"} & set(output_names):
            raise DiversegError(f"output_names must be two distinct names other than key and pos, got {output_names!r}")
        if dtype not in ("float32", "uint8"):
            raise DiversegError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
        if partial_decode and lr_from != "patch":
            raise DiversegError("partial_decode needs lr_from='patch' (the image's LR reads every row)")
        if pairs_per_image < 1:
            raise DiversegError(f"pairs_per_image must be >= 1, got {pairs_per_image}")
        if (rank is None) != (world_size is None):
            raise DiversegError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise DiversegError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if isinstance(dataset, (str, os.PathLike)):  # a Hub id or a local dataset folder, through the Hub streamer
            self.reader = hub_reader(str(dataset), config, split, revision, streaming, image_column, key_column)
        else:
            self.reader = dataset_reader(dataset, image_column, key_column)
        self.scale, self.patch_size, self.seed = int(scale), int(patch_size), int(seed)
        self.pairs_per_image, self.augment, self.shuffle_buffer = pairs_per_image, augment, shuffle_buffer
        self._rank, self._world = rank, world_size
        self.lr_from, self.output_names, self.partial_decode = lr_from, tuple(output_names), partial_decode
        self.dtype = dtype
        self.epoch = 0
        self._start: dict[int, dict[str, int]] = {}  # where each worker's stream begins (from a loaded state)
        self._seen: dict[int, dict[str, int]] = {}  # what the main process has consumed, per worker
        self._ended: dict[int, dict[str, int]] = {}  # streams run to their end in this process (no workers)
        self._num_workers: int | None = None
        patches.warm_up()  # compiled here once, so that forked DataLoader workers inherit the kernels
        partial.warm_up()

    @classmethod
    def from_folder(
        cls, path: str | os.PathLike, config: str, format: str = "parquet", split: str = "train", **kwargs: Any
    ) -> SRPairs:
        """Pairs from a published folder: ``data/<config>/<split>-*.parquet`` or ``wds/<config>/<split>-*.tar``,
        or (``format="basicsr"``) the ``HR/`` images of a ``diverseg export`` folder (with ``lr_from="image"``
        the pairs are exactly the exported ones: the same LR, cut at the patch).

        Example:
            >>> SRPairs.from_folder("/nonexistent", "I", format="webdataset")
            Traceback (most recent call last):
            ...
            diverseg_hf.errors.DiversegError: no train-*.tar shards in /nonexistent/wds/I

        ``path`` may also be a Hub dataset id (``"me/mysubset"``): its config is streamed through the one Hub
        streamer (``revision=`` and ``streaming=`` pass through), as ``SRPairs("me/mysubset", config=...)``.
        """
        if format != "basicsr" and not os.path.exists(path) and is_hub_id(str(path)):
            if format != "parquet":
                raise DiversegError(f"a Hub dataset is read through its configs: use format='parquet', not {format!r}")
            return cls(str(path), config=config, split=split, **kwargs)
        return cls(folder_reader(path, config, format, split), **kwargs)

    # -- layout ---------------------------------------------------------------------------------------
    def rank_and_world_size(self) -> tuple[int, int]:
        """Explicit rank/world_size, else torch.distributed's when initialised, else (0, 1)."""
        if self._world is not None:
            return int(self._rank), int(self._world)
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    # -- epochs and state -----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order to produce; a new epoch forgets the recorded progress."""
        if epoch != self.epoch:
            self._start, self._seen, self._ended, self._num_workers = {}, {}, {}, None
        self.epoch = int(epoch)

    def consumed(self, batch: dict[str, Any]) -> None:
        """Record that the main process has used ``batch`` (a collated batch or one example).

        Keeps, per worker, the example with the largest cursor, so calling it twice is harmless.

        Example:
            >>> loader = torch.utils.data.DataLoader(pairs, batch_size=16, num_workers=4)  # doctest: +SKIP
            >>> for batch in loader:  # doctest: +SKIP
            ...     train_step(batch["lr"], batch["hr"]); pairs.consumed(batch)
        """
        pos = batch["pos"]
        rows = pos.tolist() if hasattr(pos, "tolist") else list(pos)
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        for worker, workers, cursor, too_small, bad in rows:
            if self._num_workers is not None and workers != self._num_workers:
                raise DiversegError(
                    f"batch comes from a loader with {workers} workers but this epoch used {self._num_workers}"
                )
            self._num_workers = workers
            seen = self._seen.get(worker)
            if seen is None or cursor > seen["cursor"]:
                self._seen[worker] = {"cursor": cursor, "too_small": too_small, "bad": bad}

    def state_dict(self) -> dict[str, Any]:
        """What has been consumed this epoch; JSON- and ``torch.save``-friendly."""
        rank, world = self.rank_and_world_size()
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "rank": rank,
            "world_size": world,
            "num_workers": self._num_workers,
            "pairs_per_image": self.pairs_per_image,
            "shuffle_buffer": self.shuffle_buffer,
            "workers": {str(w): dict(v) for w, v in sorted(self._seen.items())},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration starts each stream where it stopped."""
        if state.get("version") != STATE_VERSION:
            raise DiversegError(f"unsupported SRPairs state version {state.get('version')!r}")
        rank, world = self.rank_and_world_size()
        mine = {
            "seed": self.seed,
            "rank": rank,
            "world_size": world,
            "pairs_per_image": self.pairs_per_image,
            "shuffle_buffer": self.shuffle_buffer,
        }
        for name, value in mine.items():
            if state[name] != value:
                raise DiversegError(f"state was saved with {name}={state[name]}, this dataset has {value}")
        self.epoch = int(state["epoch"])
        self._num_workers = state["num_workers"]
        self._start = {int(w): dict(v) for w, v in state["workers"].items()}
        self._seen = {w: dict(v) for w, v in self._start.items()}
        self._ended = {}

    @property
    def skipped(self) -> dict[str, int]:
        """Images skipped this epoch: ``{"too_small": n, "bad": n}``, as recorded by :meth:`consumed`, and
        in full once an iteration without DataLoader workers has run to its end.

        With workers, skips after a worker's last consumed example are not visible here (a worker whose
        stream yields no pair at all logs a warning with its counts).
        """
        records = dict(self._seen)
        for worker, end in self._ended.items():
            if worker not in records or end["cursor"] >= records[worker]["cursor"]:
                records[worker] = end
        return {k: sum(v[k] for v in records.values()) for k in ("too_small", "bad")}

    # -- iteration ------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self._start and self._num_workers not in (None, workers):
            raise DiversegError(f"state was saved with {self._num_workers} workers; resume with the same number")
        rank, world = self.rank_and_world_size()
        stream, n_streams = rank * workers + worker, world * workers
        start = self._start.get(worker, {"cursor": 0, "too_small": 0, "bad": 0})
        counts = {"too_small": start["too_small"], "bad": start["bad"]}
        ppi = self.pairs_per_image
        first_image, first_pair = divmod(start["cursor"], ppi)
        records = stream_records(
            self.reader, self.seed, self.epoch, stream, n_streams, self.shuffle_buffer, first_image
        )
        if info is None:
            self._ended.pop(worker, None)
        end, pairs = start["cursor"], 0
        for index, (key, payload) in enumerate(records, start=first_image):
            end = (index + 1) * ppi
            pair0 = first_pair if index == first_image else 0
            rgb, places = self._decode(key, payload, pair0, counts)
            if rgb is None:
                continue
            lr_source = self._lr_source(rgb) if self.lr_from == "image" else None
            for j, (top, left, turn) in enumerate(places, start=pair0):
                cursor = index * ppi + j + 1
                pos = torch.tensor([worker, workers, cursor, counts["too_small"], counts["bad"]])
                lr, hr = patches.make_pair(rgb, top, left, self.patch_size, self.scale, turn, lr_source,
                                           levels=self.dtype == "uint8")
                pairs += 1
                yield {"key": key, self.output_names[0]: lr, self.output_names[1]: hr, "pos": pos}
        if info is None:  # the whole stream was read here: its skips count even after the last pair
            self._ended[worker] = {"cursor": end, **counts}
        if pairs == 0 and end > start["cursor"]:  # images were read, and every one was skipped
            logger.warning("SRPairs: no pairs from stream %d/%d in epoch %d: %d images smaller than the %d-pixel "
                           "patch, %d undecodable", stream, n_streams, self.epoch, counts["too_small"],
                           self.patch_size, counts["bad"])
        logger.debug("SRPairs epoch %d stream %d/%d done; skipped %s", self.epoch, stream, n_streams, counts)

    def _decode(self, key: str, payload: Any, pair0: int, counts: dict[str, int]) -> tuple[Any, list]:
        """The decoded image (or, with ``partial_decode``, its top rows that the patches need) and the
        (top, left, turn) of pairs ``pair0..``; (None, []) for a skipped image."""
        try:
            if payload is None:
                raise ImageError("missing", "record has no image")
            decoded = self._partial(key, payload, pair0) if self.partial_decode else None
            if decoded is None:
                rgb = decode_rgb(payload)
                decoded = rgb, rgb.shape[:2]
        except ImageError as exc:
            counts["bad"] += 1  # counted in the state (``skipped``); one debug line, not a warning per worker
            logger.debug("SRPairs: skipping %s: %s", key, exc.reason)
            return None, []
        rgb, shape = decoded
        if min(shape) < self.patch_size:
            counts["too_small"] += 1
            return None, []
        return rgb, self._places(shape, key, pair0)

    def _partial(self, key: str, payload: Any, pair0: int) -> tuple[np.ndarray | None, tuple[int, int]] | None:
        """(top rows the patches need, full (height, width)) of a PNG payload (no rows when it is too small
        for a patch), or None to decode it whole."""
        if not isinstance(payload, (bytes, bytearray, memoryview, str, os.PathLike)):
            return None
        data = read_bytes(payload)
        if not data.startswith(PNG_MAGIC):
            return None
        info = probe(data)
        shape = (info.height, info.width)
        if min(shape) < self.patch_size:
            return None, shape
        rows = max(top for top, _, _ in self._places(shape, key, pair0)) + self.patch_size
        cut = partial.png_top_rows(data, rows)
        return None if cut is None else (cut, shape)

    def _places(self, shape: tuple[int, int], key: str, pair0: int) -> list[tuple[int, int, int]]:
        """(top, left, turn) of pairs ``pair0..pairs_per_image-1`` of an image of ``shape``, drawn from
        ``(seed, epoch, key, pair)``."""
        p, s, places = self.patch_size, self.scale, []
        for pair in range(pair0, self.pairs_per_image):
            rng = np.random.default_rng([self.seed, self.epoch, _key_seed(key), pair])
            top = s * int(rng.integers((shape[0] - p) // s + 1))
            left = s * int(rng.integers((shape[1] - p) // s + 1))
            places.append((top, left, int(rng.integers(8)) if self.augment else 0))
        return places

    def _lr_source(self, rgb: np.ndarray) -> np.ndarray:
        """The image cropped to a multiple of the scale (a view), whose LR windows ``lr_from="image"`` cuts."""
        return rgb[: rgb.shape[0] - rgb.shape[0] % self.scale, : rgb.shape[1] - rgb.shape[1] % self.scale]

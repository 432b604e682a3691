"""The Scorer contract: small classes that turn a batch of decoded images into score columns.

A scorer never decodes: the engine decodes each record once with :mod:`diverseg_hf.decode.images`
(RGB uint8, OpenCV semantics), records decode failures itself, and hands the scorer the good
images. The engine also owns device placement (:meth:`Scorer.to`) and batch size.

Engine options (:data:`ENGINE_OPTIONS`: ``score(batch_size=...)``, the CLI's ``--batch-size``...)
reach a scorer's constructor only when its class lists them in ``engine_options``; they are then
recorded with the scorer's options in the score table. A GPU scorer may also name a CPU-side
:meth:`Scorer.preparer` (resize, normalise) that the engine runs on its CPU workers ahead of the model.

Example:
    >>> import numpy as np
    >>> class Mean(Scorer):
    ...     name = "mean"
    ...     columns = {"mean": "float64"}
    ...     def __call__(self, images):
    ...         return {"mean": [float(im.mean()) for im in images], "error": [None] * len(images)}
    >>> Mean()([np.full((2, 2, 3), 3, np.uint8)])["mean"]
    [3.0]
    >>> sorted(Mean.accepted_options()), sorted(type("Gpu", (Mean,), {"uses_gpu": True}).accepted_options())
    ([], ['device', 'dtype'])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

#: The options the engine hands to the scorers that accept them (name -> meaning).
ENGINE_OPTIONS: dict[str, str] = {
    "device": "device of the model (cuda, cuda:1, cpu)",
    "dtype": "dtype of the model (float32, bfloat16)",
    "batch_size": "images per scorer call (the engine's batches, and the model's unless image_batch_size is given)",
    "image_batch_size": "images per forward pass of the image encoder, where it differs from batch_size",
    "points_per_batch": "point prompts per mask-decoder call (SAM)",
    "compile": "torch.compile the model",
}
#: What a GPU scorer that does not set ``engine_options`` accepts: every GPU scorer takes these two.
GPU_ENGINE_OPTIONS: frozenset[str] = frozenset({"device", "dtype"})


class Scorer:
    """Base class of all scorers.

    Class attributes:
        name: registry name (``--scorers NAME``).
        columns: output column name -> Arrow type name (``"float64"``, ``"int32"``...).
        lower_is_better: the columns where a lower value is better (blockiness); the others are better
            higher (counts). Recorded in the score table; ``select``'s theta and ``--keep`` rules follow it.
        uses_gpu: True when the engine should give the scorer a device and large batches.
        default_batch_size: images per call when no batch size is given.
        engine_options: the keyword arguments of :data:`ENGINE_OPTIONS` the constructor takes
            (None: :data:`GPU_ENGINE_OPTIONS` for a GPU scorer, none for a CPU scorer).
        requires: ``(extra, modules)``: the modules the scorer imports beyond the base install and the
            extra that installs them (``pip install "diverseg-hf[EXTRA]"``); checked before any work.

    ``__call__(images)`` takes a list of HxWx3 uint8 RGB arrays (or, with a :meth:`preparer`, the
    prepared items) and returns, for each declared column, a list with one value per image (``None``
    or NaN when undefined), plus ``"error"``: a list of ``None`` or a short reason per image. It may
    raise when a batch fails: the engine (:func:`~diverseg_hf.scoring.run.run_scorer`) retries the
    batch image by image and records what still fails; on out-of-memory errors it first calls
    :meth:`halve_batches`, then halves the images per call.
    """

    name: ClassVar[str] = ""
    columns: ClassVar[dict[str, str]] = {}
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    uses_gpu: ClassVar[bool] = False
    default_batch_size: ClassVar[int] = 32
    engine_options: ClassVar[frozenset[str] | None] = None
    requires: ClassVar[tuple[str, tuple[str, ...]]] = ("", ())

    @classmethod
    def accepted_options(cls) -> frozenset[str]:
        """The engine options the constructor takes (see ``engine_options``)."""
        if cls.engine_options is not None:
            return frozenset(cls.engine_options)
        return GPU_ENGINE_OPTIONS if cls.uses_gpu else frozenset()

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings recorded with every score table; known without loading a model."""
        return {}

    def load(self) -> Scorer:
        """Load the model now (the engine calls it where the scorer will run); models load once, lazily.

        A scorer with weights loads them here, or on its first call, never in its constructor: the
        driver of a run builds scorers only to read their :meth:`settings`.
        """
        return self

    def halve_batches(self) -> bool:
        """Halve the scorer's own batch sizes after an out-of-memory error (the engine then retries the
        call); False when there is nothing left to halve (the default), and the engine halves the images."""
        return False

    def to(self, device: str) -> Scorer:
        """Move to ``device`` ("cpu", "cuda", "cuda:1"...); CPU-only scorers ignore it."""
        return self

    def preparer(self) -> Callable[[np.ndarray], Any] | None:
        """A function that prepares one decoded image on the CPU for ``__call__``, or None (the default).

        When a GPU scorer returns one, the engine applies it to each decoded image on its CPU workers
        while the model runs the previous batch, and ``__call__`` receives the prepared items instead
        of the arrays (one per image, so that an out-of-memory batch can still be halved exactly). It
        must be picklable (a module-level function or a ``functools.partial`` of one); torch tensors it
        returns (alone or in a tuple) are put in pinned memory when CUDA is present, so that the scorer
        can copy them with ``non_blocking=True``. An image it raises for gets a ``prepare: ...`` error.
        """
        return None

    def __call__(self, images: list[Any]) -> dict[str, list]:
        raise NotImplementedError

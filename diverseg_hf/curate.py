"""score + select + publish in one call, intermediate files under ``DATASET_DIR/.diverseg/CONFIG/``.

Re-running resumes scoring (complete units are kept); select and publish are cheap and re-run.

Example:
    >>> curate("/no/such/folder", "/tmp/ds", "mine")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: no such file or folder: /no/such/folder
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .publish import PublishResult, publish
from .score import ScoreSummary, score
from .select import SelectionResult, select
from .sources import Source, open_source
from .storage import DatasetDir


@dataclass
class CurateResult:
    """The three phases' results."""

    scores: ScoreSummary
    selection: SelectionResult
    published: PublishResult


def curate(
    source: str | Source,
    out: str | os.PathLike,
    name: str,
    score_options: dict[str, Any] | None = None,
    select_options: dict[str, Any] | None = None,
    **publish_options: Any,
) -> CurateResult:
    """Curate ``source`` into config ``name`` of the dataset folder ``out``.

    ``score_options``/``select_options``/``publish_options`` are the keyword arguments of
    :func:`~diverseg_hf.score.score`, :func:`~diverseg_hf.select.select` and
    :func:`~diverseg_hf.publish.publish`.
    """
    src = source if isinstance(source, Source) else open_source(source)
    work = DatasetDir(out).work_dir(name)
    progress = publish_options.get("progress", True)
    scores = score(src, work / "scores", progress=progress, **(score_options or {}))
    selection = select(work / "scores", work / "selection", **(select_options or {}))
    published = publish(work / "selection", out, name, source=src, **publish_options)
    return CurateResult(scores, selection, published)

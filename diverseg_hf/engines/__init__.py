"""Engines run :func:`diverseg_hf.scoring.run.score_unit` over units and hand each result to a commit function.

``local`` (this machine: worker processes for CPU scorers, one process per GPU) is the default; a Ray
engine can reuse the same pure per-unit function and :meth:`diverseg_hf.storage.ScoreTable.commit`.
"""

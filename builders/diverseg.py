"""The DiverSeg builder as a file: a re-export of :class:`diverseg_hf.builder.DiverSeg` (needs diverseg-hf).

datasets >= 4 loads no scripts; instantiate the class:

    >>> from diverseg import DiverSeg  # with builders/ on sys.path            # doctest: +SKIP
    >>> builder = DiverSeg(config_name="I", data_dir="diverseg")               # doctest: +SKIP
    >>> builder.download_and_prepare(); ds = builder.as_dataset(split="train") # doctest: +SKIP
"""

from diverseg_hf.builder import DiverSeg, DiverSegConfig

__all__ = ["DiverSeg", "DiverSegConfig"]

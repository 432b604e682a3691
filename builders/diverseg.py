"""The DiverSeg ``datasets`` builder as a file: a re-export of
:class:`diverseg_hf.subsets.builder.DiverSegBuilder` (needs diverseg-hf).

datasets >= 4 loads no scripts; instantiate the class:

    >>> from diverseg import DiverSegBuilder  # with builders/ on sys.path            # doctest: +SKIP
    >>> builder = DiverSegBuilder(config_name="I", data_dir="diverseg")               # doctest: +SKIP
    >>> builder.download_and_prepare(); ds = builder.as_dataset(split="train")        # doctest: +SKIP
"""

from diverseg_hf.subsets.builder import DiverSegBuilder, DiverSegBuilderConfig

__all__ = ["DiverSegBuilder", "DiverSegBuilderConfig"]

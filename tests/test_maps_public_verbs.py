"""The top-level verbs: lazy (``import diverseg_hf`` stays cheap), complete, and never shadowed by their modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

import diverseg_hf


def test_import_is_cheap():
    code = ("import sys, diverseg_hf; heavy = ('torch', 'datasets', 'numba', 'pyarrow', 'transformers', 'PIL');"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", diverseg_hf.__all__)
def test_every_public_name_resolves(name):
    value = getattr(diverseg_hf, name)
    assert value is not None
    assert name in dir(diverseg_hf)


def test_the_verbs_are_the_functions_even_after_their_modules_are_imported():
    import diverseg_hf.curate
    import diverseg_hf.publish.from_selection
    import diverseg_hf.score
    import diverseg_hf.select

    for name in ("score", "select", "curate", "publish", "scorer_map", "score_dataset", "register_scorer",
                 "build", "export", "blockiness", "estimate_quality"):
        verb = getattr(diverseg_hf, name)
        assert callable(verb) and verb.__name__ in (name, f"{name}_basicsr"), name
    assert diverseg_hf.score.__module__ == "diverseg_hf.score"
    assert sys.modules["diverseg_hf.score"].score is diverseg_hf.score
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        diverseg_hf.nope  # noqa: B018

"""The counters' public names: ``diverseg_hf.scoring.SamMaskCounter`` / ``ObjectCounter``, loaded lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "datasets", "segment_anything")


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_importing_the_package_stays_light():
    code = ("import sys, json, diverseg_hf, diverseg_hf.scoring\n"
            "from diverseg_hf.scoring import scorer_names, Scorer\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert json.loads(run_python(code)) == []


@pytest.mark.slow
def test_dir_lists_the_counters():
    import diverseg_hf.scoring as scoring

    assert {"SamMaskCounter", "ObjectCounter"} <= set(dir(scoring)) and "ObjectCounter" in scoring.__all__
    with pytest.raises(AttributeError, match="NoSuchCounter"):
        scoring.NoSuchCounter  # noqa: B018


def test_public_names_are_the_module_classes():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from diverseg_hf.scoring import ObjectCounter, SamMaskCounter
    from diverseg_hf.scoring.detect import ObjectCounter as DetectObjectCounter
    from diverseg_hf.scoring.sam import SamMaskCounter as SamSamMaskCounter

    assert SamMaskCounter is SamSamMaskCounter and ObjectCounter is DetectObjectCounter

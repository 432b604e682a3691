"""Test-wide caches and one collection rule for the whole checkout (tests and the package's doctest modules).

The whole test session (and every subprocess it starts, which inherits the environment) keeps the Hugging
Face and XDG caches in one temporary folder, deleted at exit: ``HF_HOME``, ``HF_DATASETS_CACHE``,
``HF_HUB_CACHE`` and ``XDG_CACHE_HOME`` are set below before anything imports ``datasets`` or
``huggingface_hub`` (both read them at import), so no test writes into ``~/.cache`` and no dataset a test
loads by a generic name (``diverseg``, ``I``) is served stale to a later run.

Without torch, a module that cannot be imported because torch is missing (``import torch`` at the top,
or the package's ``require("torch", ...)``) is reported as skipped instead of stopping the collection:
the test modules that need torch skip themselves with ``pytest.importorskip``, and this covers the rest
(the package modules that need torch, collected for their doctests, and the tests' torch helpers).
With torch installed the rule does nothing.

Example (an environment without torch):
    ``pytest -q`` collects and runs everything else; the torch modules are listed as skipped.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

#: The session's cache folder (see the module docstring); set before anything imports datasets or huggingface_hub.
TEST_CACHE = Path(tempfile.mkdtemp(prefix="diverseg-tests-cache-"))
os.environ.update({"HF_HOME": str(TEST_CACHE / "huggingface"),
                   "HF_DATASETS_CACHE": str(TEST_CACHE / "huggingface" / "datasets"),
                   "HF_HUB_CACHE": str(TEST_CACHE / "huggingface" / "hub"),
                   "XDG_CACHE_HOME": str(TEST_CACHE)})
atexit.register(shutil.rmtree, TEST_CACHE, ignore_errors=True)

TORCH_MISSING = importlib.util.find_spec("torch") is None
#: The two ways an import fails for want of torch: Python's, and the package's one-line error.
_SIGNS = ("No module named 'torch'", "torch is needed here but is not installed")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if TORCH_MISSING and report.failed and any(sign in str(report.longrepr) for sign in _SIGNS):
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, "Skipped: needs torch, which is not installed")
        report.result = []
    return report

"""One collection rule for the whole checkout (tests and the package's doctest modules).

Without torch, a module that cannot be imported because torch is missing (``import torch`` at the top,
or the package's ``require("torch", ...)``) is reported as skipped instead of stopping the collection:
the test modules that need torch skip themselves with ``pytest.importorskip``, and this covers the rest
(the package modules that need torch, collected for their doctests, and the tests' torch helpers).
With torch installed the rule does nothing.

Example (an environment without torch):
    ``pytest -q`` collects and runs everything else; the torch modules are listed as skipped.
"""

from __future__ import annotations

import importlib.util

import pytest

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

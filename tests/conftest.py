"""Test fixtures shared by the test modules (the data paths and helpers are in ``shared_data.py``; the
test-wide caches in the checkout's root ``conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (exact comparisons, fair timings), then restore the count."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def register_scorer():
    """``diverseg_hf.register_scorer`` for one test: the names it registers are forgotten afterwards."""
    from diverseg_hf.scoring import register_scorer as register
    from diverseg_hf.scoring import unregister_scorer

    names: list[str] = []

    def add(name: str, target) -> None:
        register(name, target)
        names.append(name)

    yield add
    for name in names:
        unregister_scorer(name)

"""Tests that train, run the command line in subprocesses or load the built-in world's models:
marked ``slow``, so ``pytest -m "not slow"`` runs only the fast unit tests."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    here = __file__.rsplit("/", 1)[0]
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.slow)

"""Shared fixtures: tiny random generators and CLIPs, built offline in the test session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest

from fixtures import make_tiny_clip, make_tiny_generator


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test reaches a model hub, whatever the caller's environment says."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_generator():
    return make_tiny_generator()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-p8", patch_size=8, image_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir_b(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-p16", patch_size=16, image_size=32, seed=1)

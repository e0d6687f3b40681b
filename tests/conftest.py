"""Shared fixtures: tiny random generators and CLIPs, built offline in the test session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest
import torch

TINY_CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test reaches a model hub, whatever the caller's environment says."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_tiny_generator(seed: int = 0, resolution: int = 32):
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chans = {r: c for r, c in TINY_CHANNELS.items() if r <= resolution}
        G = Generator(GeneratorConfig(resolution, style_dim=32, n_mlp=2, channels=chans))
        # non-zero noise strengths and biases so that every parameter matters
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith(".bias") and p.ndim == 4:
                p.data.normal_(0, 0.1)
    return G


@pytest.fixture
def tiny_generator():
    return make_tiny_generator()


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from nada.guidance.testing import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-p8", patch_size=8, image_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir_b(tmp_path_factory):
    from nada.guidance.testing import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-p16", patch_size=16, image_size=32, seed=1)

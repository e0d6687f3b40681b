"""State-dict keys, order and shapes equal rosinality's stylegan2-pytorch for the six spec configurations."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from nada.generators.stylegan2 import Generator, GeneratorConfig

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "rosinality_state_dict_keys.json"
SPEC = json.loads(SPEC_PATH.read_text())


def _config(name: str) -> GeneratorConfig:
    m = re.fullmatch(r"size(\d+)_style(\d+)_mlp(\d+)_cm(\d+)", name)
    assert m, name
    size, style, mlp, cm = map(int, m.groups())
    return GeneratorConfig(resolution=size, style_dim=style, n_mlp=mlp, channel_multiplier=cm)


def test_spec_has_six_configurations():
    assert len(SPEC) == 6


@pytest.mark.parametrize("name", sorted(SPEC))
def test_state_dict_keys_order_and_shapes(name):
    with torch.device("meta"):  # no memory for the 1024 px weights
        G = Generator(_config(name))
    ours = [[k, list(v.shape)] for k, v in G.state_dict().items()]
    assert ours == SPEC[name]


@pytest.mark.parametrize("name", sorted(SPEC))
def test_num_ws_and_dims(name):
    cfg = _config(name)
    with torch.device("meta"):
        G = Generator(cfg)
    log2 = cfg.resolution.bit_length() - 1
    assert (G.z_dim, G.w_dim, G.resolution) == (cfg.style_dim, cfg.style_dim, cfg.resolution)
    assert G.num_ws == 2 * log2 - 2
    assert "w_avg" not in G.state_dict()  # non-persistent: rosinality checkpoints load strictly

"""The built-in world as a plug-in: its generator name, its two CLIPs and its preset.

Loaded by :mod:`nada.plugins` the first time the core looks a name up; nothing in the core
imports this package.
"""
from __future__ import annotations

from pathlib import Path

from .assets import BUILTIN_CLIPS, GENERATOR_PATH

GENERATOR_NAME = "toy"
PRESET_PATH = Path(__file__).resolve().parent / "preset.yaml"


def load_toy_generator():
    """The built-in world's base generator (64 px, trained on photo-style renders), shipped in the package."""
    from ..generators.checkpoints import read_generator_file

    return read_generator_file(GENERATOR_PATH).eval()


def register(registry) -> None:
    registry.add_generator(GENERATOR_NAME, load_toy_generator)
    for name, path in BUILTIN_CLIPS.items():
        registry.add_clip(name, path)
    registry.add_preset(GENERATOR_NAME, PRESET_PATH)

"""CLIP guidance: models, text and image directions, losses and their configuration.

Names are imported lazily so that reading a config never imports ``transformers``.
"""
from __future__ import annotations

import importlib
from typing import Any

_API = {
    "ClipLoadError": "nada.guidance.errors",
    "GuidanceError": "nada.guidance.errors",
    "ZeroDirectionError": "nada.guidance.errors",
    "ClipModel": "nada.guidance.clip",
    "load_clip": "nada.guidance.clip",
    "CLIP_ALIASES": "nada.guidance.clip",
    "ClipEnsemble": "nada.guidance.ensemble",
    "parse_clip_spec": "nada.guidance.ensemble",
    "GuidanceConfig": "nada.guidance.config",
    "Guidance": "nada.guidance.guidance",
    "DifferentiableAugment": "nada.guidance.augment",
    "IMAGENET_TEMPLATES": "nada.guidance.templates",
    "PART_TEMPLATES": "nada.guidance.templates",
    "compose_prompts": "nada.guidance.templates",
    "select_source_text": "nada.guidance.directions",
    "LearnedLossWeights": "nada.guidance.losses",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'nada.guidance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""The one offline switch: ``NADA_OFFLINE`` (1, true, yes or on) stops every download ``nada``
would start, generator checkpoints and CLIP models alike.

The CLIP loader also respects the Hugging Face variables ``HF_HUB_OFFLINE`` and
``TRANSFORMERS_OFFLINE`` (which that library obeys anyway), so it never tries the hub and then
reports a confusing library error. Both are read at call time, every time.
"""
from __future__ import annotations

import os

__all__ = ["offline", "hub_offline"]

_TRUE = {"1", "true", "yes", "on"}


def _set(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in _TRUE


def offline() -> bool:
    """True when ``NADA_OFFLINE`` forbids any download."""
    return _set("NADA_OFFLINE")


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted: :func:`offline`, or the hub's own switches
    (``huggingface_hub`` reads ``HF_HUB_OFFLINE`` only once, at import, so the variables are read here too)."""
    if offline() or _set("HF_HUB_OFFLINE") or _set("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # huggingface_hub missing or very old: only the variables count
        return False

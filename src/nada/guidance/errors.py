"""Exceptions raised by the guidance layer (kept apart so config code need not import torch)."""
from __future__ import annotations


class GuidanceError(ValueError):
    """Bad guidance input: a configuration, a prompt or data that cannot guide training."""


class ZeroDirectionError(GuidanceError):
    """Source and target give the same CLIP embedding, so there is no direction to follow."""


class ClipLoadError(RuntimeError):
    """A CLIP model could not be loaded; the message says what to download and how."""

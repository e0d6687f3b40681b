"""Exceptions raised by the guidance layer (kept apart so config code need not import torch)."""
from __future__ import annotations

from ..errors import ClipLoadError, GuidanceError

__all__ = ["ClipLoadError", "GuidanceError", "ZeroDirectionError"]


class ZeroDirectionError(GuidanceError):
    """Source and target give the same CLIP embedding, so there is no direction to follow."""

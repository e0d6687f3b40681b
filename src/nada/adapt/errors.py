"""The adaptation engine's error (its own module, so every engine module can raise it without import cycles)."""
from __future__ import annotations

from ..errors import RunError


class AdaptError(RunError):
    """A run that cannot start or cannot go on; the message says why and what to do."""


def resolve_device(device: str):
    """``"auto"`` -> CUDA when available, else CPU; anything else as named (CUDA checked to exist)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdaptError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev

"""Exceptions raised while finding, downloading and reading generator checkpoints (defined in :mod:`nada.errors`)."""
from __future__ import annotations

from ..errors import CheckpointError, UnsafePickleError

__all__ = ["CheckpointError", "UnsafePickleError"]

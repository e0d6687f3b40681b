"""Writing files so that a crash never leaves a half-written one (the public face of ``nada._io``).

``atomic_path(path)`` yields a temporary path beside ``path`` and renames it over ``path`` only
when the block succeeds (after ``fsync``, with the permissions the umask gives);
``atomic_write_text`` / ``atomic_write_bytes`` write a whole file that way.
"""
from __future__ import annotations

from ._io import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]

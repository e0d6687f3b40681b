"""Exceptions raised while finding, downloading and reading generator checkpoints."""
from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint could not be found, fetched or understood.

    The message is always a single line (path or name, what was expected, what was found)
    so the command line can print it as is.
    """


class UnsafePickleError(CheckpointError):
    """A pickle asked for a global outside the allow-list; nothing from it was run."""

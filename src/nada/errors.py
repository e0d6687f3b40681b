"""The root of every error ``nada`` raises for bad input: the command line catches
:class:`NadaError` and prints its message, always one line, without a traceback.

Each part of the package raises a subclass of one of these; ``except nada.NadaError``
catches them all.
"""
from __future__ import annotations


class NadaError(Exception):
    """Bad input or a run that cannot go on; the message is one line saying what and why."""


class ConfigError(NadaError, ValueError):
    """An option or config file with a wrong type, range or combination."""


class CheckpointError(NadaError):
    """A checkpoint could not be found, fetched or understood (path, what was expected, what was found)."""


class UnsafePickleError(CheckpointError):
    """A file asked to run code or to build unsafe data; nothing from it was run."""


class ClipLoadError(NadaError, RuntimeError):
    """A CLIP model could not be loaded; the message says what to download and how."""


class GuidanceError(NadaError, ValueError):
    """Bad guidance input: a configuration, a prompt or data that cannot guide training."""


class RunError(NadaError, RuntimeError):
    """A run that cannot start or cannot go on (output folder, resume state, disk, memory)."""


class OutputError(NadaError, OSError):
    """An output path that cannot be written; carries the errno of the underlying OSError
    (:class:`nada._io.OutputError` is the one raised, with a one-line message)."""

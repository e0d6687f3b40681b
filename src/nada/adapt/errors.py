"""The adaptation engine's error (its own module, so every engine module can raise it without import cycles)."""
from __future__ import annotations

from ..errors import RunError


class AdaptError(RunError):
    """A run that cannot start or cannot go on; the message says why and what to do."""


def resolve_device(device):
    """``"auto"`` -> CUDA when available, else CPU (:func:`nada.devices.resolve_device`), as an :class:`AdaptError`."""
    from ..devices import resolve_device as resolve
    from ..errors import ConfigError

    try:
        return resolve(device)
    except ConfigError as e:
        raise AdaptError(str(e)) from None

"""The adaptation engine. ``nada.adapt`` is this package *and* the function users call.

Importing a submodule (``nada.adapt.config``) rebinds the attribute ``adapt`` of the
``nada`` package to this module, which would shadow :func:`nada.adapt.engine.adapt`. So
the module itself is callable: ``nada.adapt("photo", "sketch", out="run/")`` always works.
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .engine import adapt

        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

"""The adaptation engine. ``nada.adapt`` is this package *and* the function users call.

Importing a submodule (``nada.adapt.config``) rebinds the attribute ``adapt`` of the
``nada`` package to this module, which would shadow :func:`nada.adapt.api.adapt`. So
the module itself is callable: ``nada.adapt("photo", "sketch", out="run/")`` always works.
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .api import adapt

        return adapt(*args, **kwargs)


# the engine's pieces, imported lazily (``from nada.adapt import Trainer``): name -> submodule
_EXPORTS = {
    "Adapter": "engine", "AdaptResult": "engine", "AdaptError": "errors", "resolve_device": "errors",
    "Trainer": "trainer", "StepResult": "trainer", "Callback": "trainer",
    "Parameterisation": "parameterisation", "FineTune": "parameterisation", "StepContext": "parameterisation",
    "HookParameterisation": "parameterisation", "Combined": "parameterisation",
    "hooks_installed": "parameterisation",
    "Checkpointer": "checkpoint", "RunDir": "rundir",
}


def __getattr__(name: str) -> Any:  # `from nada.adapt import make_config`, imported lazily
    if name in ("adapt", "make_config"):
        from . import api

        return getattr(api, name)
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _CallablePackage

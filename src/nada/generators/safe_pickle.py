"""A restricted unpickler: the only way ``nada`` ever reads pickled data.

A pickle is a program; every global it names is imported and may be called. This unpickler
resolves a global only when it is on a short allow-list of data constructors (tensor and
storage rebuilding, dtypes, ``OrderedDict``, ``argparse.Namespace``, numpy arrays and scalars)
or maps it to an inert stand-in defined here:

* ``torch_utils.persistence._reconstruct_persistent_obj`` (NVIDIA's pickled modules, which
  normally ``exec`` the source code stored in the file) -> :class:`PersistentObject`, which
  keeps the class name and the instance state and never looks at the source;
* ``dnnlib.util.EasyDict`` -> :class:`EasyDictStub`, a plain ``dict`` subclass;
* ``dnnlib.tflib.network.Network`` (TensorFlow StyleGAN2 pickles) -> :class:`TFNetworkStub`,
  which keeps the pickled state (variables as numpy arrays, sub-networks).

Any other global raises :class:`UnsafePickleError` while the pickle is being read, before
the global is imported or called, so nothing from a hostile file runs.

This module doubles as the ``pickle_module`` for :func:`torch.load`, which subclasses our
``Unpickler`` for the pickle inside ``torch.save`` files: see :func:`torch_load`.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import collections
import io
import os
import pickle
import sys
from typing import Any, BinaryIO

import numpy as np
import torch

from .errors import UnsafePickleError

__all__ = [
    "PersistentObject",
    "EasyDictStub",
    "TFNetworkStub",
    "Unpickler",
    "UnsafePickleError",
    "load",
    "loads",
    "torch_load",
]


# ----------------------------------------------------------------------------- stand-ins


class PersistentObject:
    """An object pickled by NVIDIA's ``torch_utils.persistence``, without its code.

    ``state`` is the instance ``__dict__`` as pickled: for a ``torch.nn.Module`` it holds the
    ``_parameters``, ``_buffers`` and ``_modules`` dicts (children are PersistentObjects too),
    ``_init_kwargs`` and plain attributes such as ``conv_clamp``.
    """

    __slots__ = ("class_name", "version", "state")

    def __init__(self, class_name: str, version: Any, state: dict[str, Any]):
        self.class_name = class_name
        self.version = version
        self.state = state

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name!r})"


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    # The real function execs meta["module_src"]; we read only names and state.
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("malformed torch_utils.persistence record")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("torch_utils.persistence record has a non-dict state")
    return PersistentObject(str(meta.get("class_name")), meta.get("version"), dict(state))


class EasyDictStub(dict):
    """``dnnlib.util.EasyDict`` read back as a plain dict (attribute access is not needed)."""


class TFNetworkStub:
    """``dnnlib.tflib.network.Network`` (TensorFlow StyleGAN2) read back as its pickled state.

    The state holds ``name``, ``static_kwargs``, ``components`` (name -> TFNetworkStub) and
    ``variables``, a list of ``(relative variable name, numpy array)``.
    """

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("malformed TensorFlow network state")
        self.state = dict(state)

    def __repr__(self) -> str:
        return f"TFNetworkStub({self.state.get('name')!r})"


# ----------------------------------------------------------------------------- guarded constructors


def _load_from_bytes(data: bytes) -> Any:
    # torch pickles each storage as a nested torch.save blob; read it with the same restrictions
    # (the real torch.storage._load_from_bytes would use an unrestricted torch.load).
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage record is not bytes")
    return torch_load(io.BytesIO(bytes(data)))


_NP_RECONSTRUCT = np.zeros(1).__reduce__()[0]
_NP_SCALAR = np.float32(0).__reduce__()[0]


def _np_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # Only plain arrays: a subtype could be any class the pickle names.
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing to rebuild a numpy array of type {subtype!r}")
    return _NP_RECONSTRUCT(subtype, shape, dtype)


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"refusing to rebuild a numpy scalar of dtype {dtype!r}")
    return _NP_SCALAR(dtype, data)


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"); allow nothing else.
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin-1")


# ----------------------------------------------------------------------------- allow-list

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _codecs_encode,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("dnnlib", "EasyDict"): EasyDictStub,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
}

# Tensor rebuilders: they only assemble tensors from storages, sizes and strides.
# (Not _rebuild_parameter_with_state: it setattr()s arbitrary names taken from the file.)
for _name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
              "_rebuild_device_tensor_from_numpy"):
    if hasattr(torch._utils, _name):
        _ALLOWED[("torch._utils", _name)] = getattr(torch._utils, _name)

# numpy dtype classes (numpy >= 1.25 pickles dtypes as numpy.dtypes.Float32DType etc.)
if hasattr(np, "dtypes"):
    for _name in dir(np.dtypes):
        _cls = getattr(np.dtypes, _name)
        if isinstance(_cls, type) and issubclass(_cls, np.dtype) and _name != "ObjectDType":
            _ALLOWED[("numpy.dtypes", _name)] = _cls


def _torch_global(name: str) -> Any:
    """torch dtypes (``torch.float32``) and storage classes (``torch.FloatStorage``), else None."""
    value = getattr(torch, name, None)
    if isinstance(value, torch.dtype):
        return value
    if name.endswith("Storage") and isinstance(value, type) and (
        issubclass(value, (torch.storage.TypedStorage, torch.UntypedStorage))
    ):
        return value
    return None


def resolve_global(module: str, name: str) -> Any:
    """The object a pickle may use for ``module.name``; raises UnsafePickleError for anything else."""
    key = (module, name)
    if key in _ALLOWED:
        return _ALLOWED[key]
    if module == "torch":
        value = _torch_global(name)
        if value is not None:
            return value
    # NVIDIA's helper packages are vendored under other package names in many forks.
    if name == "_reconstruct_persistent_obj" and (module == "torch_utils.persistence" or module.endswith(".torch_utils.persistence")):
        return _reconstruct_persistent_obj
    if name == "EasyDict" and (module.endswith("dnnlib.util") or module.endswith("dnnlib")):
        return EasyDictStub
    raise UnsafePickleError(
        f"refusing to unpickle: it asks for {module}.{name}, which is not on the allow-list "
        "(tensors, OrderedDict, argparse.Namespace, NVIDIA persistence records, numpy arrays); "
        "nothing from the file was run"
    )


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals through :func:`resolve_global` only."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        # Protocol 0-2 pickles written by Python 3 spell globals with Python 2 names
        # (__builtin__.set, commands.Popen); pickle's own find_class translates them, so must we.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        return resolve_global(module, name)


def load(file: BinaryIO, **kwargs: Any) -> Any:
    """Restricted ``pickle.load`` (same signature, so torch can use this module as ``pickle_module``)."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    return load(io.BytesIO(data), **kwargs)


def torch_load(file: str | os.PathLike | BinaryIO, map_location: Any = "cpu") -> Any:
    """``torch.load`` of a zip or legacy ``torch.save`` file through the restricted unpickler.

    torch's own unpickler wrapper subclasses ``Unpickler`` above and only adds storage handling,
    so every global in the file still goes through :func:`resolve_global`.
    """
    return torch.load(file, map_location=map_location, pickle_module=sys.modules[__name__], weights_only=False)

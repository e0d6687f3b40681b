"""A restricted unpickler: the only way ``nada`` ever reads pickled data.

A pickle is a program; every global it names is imported and may be called. This module
reads one in two passes:

1. :func:`check_pickle` walks the opcodes without building anything. It bounds the number of
   operations, the nesting depth of what would be built (a tuple nested a million deep crashes
   the interpreter when it is hashed) and every declared length against the bytes that are
   really there (a length of 2**40 must not become an allocation).
2. :class:`Unpickler` builds the objects, resolving a global only when it is on a short
   allow-list of data constructors or maps to an inert stand-in defined here:

* ``torch_utils.persistence._reconstruct_persistent_obj`` (NVIDIA's pickled modules, which
  normally ``exec`` the source code stored in the file) -> :class:`PersistentObject`, which
  keeps the class name and the instance state and never looks at the source;
* ``dnnlib.util.EasyDict`` -> :class:`EasyDictStub`, a plain ``dict`` subclass;
* ``dnnlib.tflib.network.Network`` (TensorFlow StyleGAN2 pickles) -> :class:`TFNetworkStub`;
* numpy dtypes, arrays and scalars -> validated stand-ins that become real numpy objects only
  for plain numeric dtypes, after checking every field of their state (numpy's own
  ``__setstate__`` trusts its input and crashes on forged states);
* tensors -> rebuilt by :mod:`nada.generators.safe_torch` from storages it read itself, with
  every size, stride and offset checked (no stride-0 or overlapping views).

Any other global raises :class:`UnsafePickleError` while the pickle is being read, before the
global is imported or called, so nothing from a hostile file runs.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import codecs
import collections
import io
import math
import pickle
import pickletools
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

from .errors import UnsafePickleError

__all__ = [
    "PersistentObject",
    "EasyDictStub",
    "TFNetworkStub",
    "ScriptObject",
    "Unpickler",
    "UnsafePickleError",
    "PickleLimits",
    "check_pickle",
    "load",
    "loads",
]

# What a checkpoint pickle can reasonably need. A StyleGAN2 or CLIP pickle nests about 30 deep
# and has well under a million operations (NVIDIA's 1024-px pickles: tens of thousands).
MAX_DEPTH = 200
MAX_OPS = 1_000_000


class PickleLimits:
    """Bounds applied while reading one pickle (see :func:`check_pickle`)."""

    def __init__(self, max_depth: int = MAX_DEPTH, max_ops: int = MAX_OPS):
        self.max_depth = max_depth
        self.max_ops = max_ops


# ----------------------------------------------------------------------------- pass 1: opcodes

_MUTATORS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}


class _BoundedReader:
    """A read-only view of ``size`` bytes of a stream: ``read(n)`` never asks for more than is left,
    so a forged length cannot become an allocation."""

    def __init__(self, stream: BinaryIO, size: int):
        self.stream = stream
        self.start = stream.tell()
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.stream.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self.stream.readline(self.left)
        self.left -= len(line)
        return line

    def tell(self) -> int:
        return self.stream.tell() - self.start


def check_pickle(stream: BinaryIO, size: int, limits: PickleLimits | None = None) -> int:
    """Walk one pickle's opcodes from the stream's position without building anything.

    Raises :class:`UnsafePickleError` when the pickle nests deeper than ``limits.max_depth``,
    has more than ``limits.max_ops`` operations, or declares data longer than the ``size``
    bytes available. Returns the pickle's length in bytes; the stream is left where it was.
    """
    limits = limits or PickleLimits()
    start = stream.tell()
    reader = _BoundedReader(stream, size)
    depth: list[int] = []  # nesting depth of each stack item (a mark is -1)
    marks: list[int] = []
    memo: dict[Any, int] = {}
    n_ops = 0
    try:
        for op, arg, _pos in pickletools.genops(reader):
            n_ops += 1
            if n_ops > limits.max_ops:
                raise UnsafePickleError(f"refusing to unpickle: more than {limits.max_ops:,} operations")
            name = op.name
            if name == "FRAME" and arg > reader.left:  # the C unpickler reads a whole frame at once
                raise UnsafePickleError(f"refusing to unpickle: a frame of {arg} bytes where {reader.left} remain")
            if name == "MARK":
                marks.append(len(depth))
                continue
            if name in _PUTS:
                # the C unpickler grows its memo table to the index: a forged 10**9 would allocate gigabytes
                if not isinstance(arg, int) or not 0 <= arg <= n_ops:
                    raise UnsafePickleError(f"refusing to unpickle: memo index {arg} out of sequence")
                memo[arg] = depth[-1] if depth else 0
                continue
            if name == "MEMOIZE":
                memo[len(memo)] = depth[-1] if depth else 0
                continue
            if name in _GETS:
                if arg not in memo:
                    raise UnsafePickleError(f"refusing to unpickle: memo index {arg} read before it was written")
                depth.append(memo[arg])
                continue
            if name == "DUP":
                depth.append(depth[-1] if depth else 0)
                continue
            before = op.stack_before
            popped: list[int] = []
            if any(s.name == "mark" for s in before):
                if not marks:
                    raise UnsafePickleError("refusing to unpickle: malformed pickle (no mark)")
                m = marks.pop()
                popped = depth[m:]
                del depth[m:]
                below = [s for s in before if s.name not in ("mark", "stackslice")]
                # OBJ takes its class after the mark; APPENDS/SETITEMS/ADDITEMS have the container below it
                n_below = 0 if name == "OBJ" else len(below)
            else:
                n_below = len(before)
            below_items = [depth.pop() if depth else 0 for _ in range(n_below)][::-1]
            if name in _MUTATORS:
                container, children = (below_items[0] if below_items else 0), below_items[1:] + popped
                result = max([container] + [c + 1 for c in children])
            else:
                result = max(below_items + popped, default=-1) + 1
            if result > limits.max_depth:
                raise UnsafePickleError(f"refusing to unpickle: data nested more than {limits.max_depth} levels deep")
            depth.extend([result] * len(op.stack_after))
            if name == "STOP":
                break
    except UnsafePickleError:
        raise
    except Exception as e:  # genops: unknown opcode, truncated argument, length beyond the data
        raise pickle.UnpicklingError(f"malformed or truncated pickle ({' '.join(str(e).split())[:120]})") from None
    finally:
        length = stream.tell() - start
        stream.seek(start)
    return length


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


class ScriptObject:
    """An object of a TorchScript archive (``__torch__.<qualified name>``), as its pickled state.

    Only built when the caller allowed TorchScript archives (to read their tensors); the code
    records of the archive are never read. ``state`` is what ``BUILD`` gave it: for a module,
    a dict of its attributes (tensors, submodules, plain values).
    """

    qualname = "?"

    def __init__(self, *args: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"ScriptObject({self.qualname!r})"


_SCRIPT_CLASSES: dict[str, type] = {}


def _script_class(qualname: str) -> type:
    if qualname not in _SCRIPT_CLASSES:
        _SCRIPT_CLASSES[qualname] = type("ScriptObject", (ScriptObject,), {"qualname": qualname, "__slots__": ()})
    return _SCRIPT_CLASSES[qualname]


def _identity(value: Any, *_: Any) -> Any:
    return value


# ----------------------------------------------------------------------------- numpy, validated

_NUMERIC_KINDS = "biufc"


class _DTypeStub:
    """``numpy.dtype(spec, align, copy)`` plus its ``BUILD`` state, checked before numpy sees it."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True):
        if not isinstance(spec, str):
            raise UnsafePickleError(f"refusing a numpy dtype spelled {type(spec).__name__}")
        try:
            base = np.dtype(spec)
        except TypeError:
            raise UnsafePickleError(f"refusing numpy dtype {spec!r}") from None
        if base.kind not in _NUMERIC_KINDS or base.fields is not None or base.subdtype is not None:
            raise UnsafePickleError(f"refusing numpy dtype {spec!r}: only plain numeric dtypes are read")
        self.dtype = base

    def __setstate__(self, state: Any) -> None:
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags) for a plain dtype
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise UnsafePickleError("refusing a numpy dtype with a malformed state")
        order = state[1]
        if order not in ("<", ">", "|", "=") or any(v is not None for v in state[2:5]):
            raise UnsafePickleError("refusing a numpy dtype with a forged state")
        if state[5] not in (-1, self.dtype.itemsize) or state[6] not in (-1, self.dtype.alignment):
            raise UnsafePickleError("refusing a numpy dtype with a forged size or alignment")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _real_dtype(value: Any) -> np.dtype:
    if not isinstance(value, _DTypeStub):
        raise UnsafePickleError(f"refusing numpy data with dtype {type(value).__name__}")
    return value.dtype


class _ArrayStub:
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` plus its ``BUILD`` state, checked."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5 or state[0] != 1:
            raise UnsafePickleError("refusing a numpy array with a malformed state")
        _, shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, _real_dtype(dtype), shape, "F" if fortran else "C")


def _array_from_bytes(raw: Any, dtype: np.dtype, shape: Any, order: str) -> np.ndarray:
    if isinstance(raw, str):  # protocol 2 spells bytes as latin-1 text
        raw = raw.encode("latin-1")
    if not isinstance(raw, (bytes, bytearray)):
        raise UnsafePickleError(f"refusing a numpy array whose data is a {type(raw).__name__}")
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise UnsafePickleError(f"refusing a numpy array of shape {shape!r}")
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise UnsafePickleError(f"refusing a numpy array of shape {shape} whose data has {len(raw)} bytes")
    return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order=order).copy(order="C")


class _NdarrayName:
    """What ``numpy.ndarray`` resolves to: a name for ``_reconstruct`` to check, never callable
    (``ndarray(shape)`` would allocate whatever shape the file asks for)."""

    def __init__(self, *args: Any) -> None:
        raise UnsafePickleError("refusing to call numpy.ndarray from a pickle")


def _np_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> _ArrayStub:
    # Only plain arrays: a subtype could be any class the pickle names.
    if subtype is not _NdarrayName:
        raise UnsafePickleError(f"refusing to rebuild a numpy array of type {subtype!r}")
    return _ArrayStub()


def _np_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # numpy's protocol-5 route: numpy.core.numeric._frombuffer(bytes, dtype, shape, order)
    return _array_from_bytes(buf, _real_dtype(dtype), shape, "F" if order == "F" else "C")


def _np_scalar(dtype: Any, data: Any = None) -> Any:
    dt = _real_dtype(dtype)
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise UnsafePickleError(f"refusing a numpy scalar of dtype {dt} with {type(data).__name__} data")
    return np.frombuffer(data, dtype=dt)[0]


NOT_A_STAND_IN = object()


def replace_stand_ins(obj: Any, replace: Callable[[Any], Any], _depth: int = 0) -> Any:
    """Walk an unpickled object and put ``replace(x)`` wherever it is not :data:`NOT_A_STAND_IN`.

    Containers (dicts, lists, plain tuples, namespaces and the stand-ins' states) are walked in
    place; nesting is bounded as in :func:`check_pickle`.
    """
    if _depth > MAX_DEPTH + 10:
        raise UnsafePickleError("refusing to unpickle: data nested too deep")
    value = replace(obj)
    if value is not NOT_A_STAND_IN:
        return value
    d = _depth + 1
    if isinstance(obj, dict):
        for k in list(obj):
            obj[k] = replace_stand_ins(obj[k], replace, d)
    elif isinstance(obj, list):
        obj[:] = [replace_stand_ins(v, replace, d) for v in obj]
    elif type(obj) is tuple:
        return tuple(replace_stand_ins(v, replace, d) for v in obj)
    elif isinstance(obj, (PersistentObject, TFNetworkStub, ScriptObject)):
        obj.state = replace_stand_ins(obj.state, replace, d)
    elif isinstance(obj, argparse.Namespace):
        for k, v in vars(obj).items():
            setattr(obj, k, replace_stand_ins(v, replace, d))
    return obj


def _numpy_value(obj: Any) -> Any:
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise UnsafePickleError("refusing a numpy array that was never given its data")
        return obj.array
    if isinstance(obj, _DTypeStub):
        return obj.dtype
    return NOT_A_STAND_IN


def finalize(obj: Any) -> Any:
    """Replace the numpy stand-ins in an unpickled object by real numpy arrays and dtypes."""
    return replace_stand_ins(obj, _numpy_value)


# ----------------------------------------------------------------------------- other guarded constructors


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"); allow nothing else.
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin-1")


def _bytearray(*args: Any) -> bytearray:
    # bytearray(n) allocates n bytes: only copies of data already in the file are allowed.
    if not args:
        return bytearray()
    if isinstance(args[0], (bytes, bytearray)) and len(args) == 1:
        return bytearray(args[0])
    if isinstance(args[0], str) and len(args) == 2 and str(args[1]).lower().replace("_", "-") in ("latin1", "latin-1"):
        return bytearray(args[0], "latin-1")
    raise UnsafePickleError(f"refusing bytearray({', '.join(type(a).__name__ for a in args)}): only copies of bytes are read")


# ----------------------------------------------------------------------------- allow-list

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("argparse", "Namespace"): argparse.Namespace,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): _bytearray,
    ("_codecs", "encode"): _codecs_encode,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): _DTypeStub,
    ("numpy", "ndarray"): _NdarrayName,
    ("dnnlib.util", "EasyDict"): EasyDictStub,
    ("dnnlib", "EasyDict"): EasyDictStub,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _np_reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _np_scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _np_frombuffer

# TorchScript archives wrap typed lists in these; they return their first argument unchanged.
_SCRIPT_HELPERS = ("build_intlist", "build_floatlist", "build_boollist", "build_doublelist",
                   "build_tensorlist", "build_complexlist", "restore_type_tag")


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


def resolve_global(module: str, name: str, extra: dict[tuple[str, str], Any] | None = None,
                   allow_script: bool = False) -> Any:
    """The object a pickle may use for ``module.name``; raises UnsafePickleError for anything else.

    ``extra`` adds entries for one read (the tensor rebuilders of :mod:`safe_torch`).
    """
    key = (module, name)
    if extra and key in extra:
        return extra[key]
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
    if allow_script:
        if module == "__torch__" or module.startswith("__torch__."):
            return _script_class(f"{module}.{name}")
        if module == "torch.jit._pickle" and name in _SCRIPT_HELPERS:
            return _identity
    raise UnsafePickleError(
        f"refusing to unpickle: it asks for {module}.{name}, which is not on the allow-list "
        "(tensors, OrderedDict, argparse.Namespace, NVIDIA persistence records, numpy arrays); "
        "nothing from the file was run"
    )


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves globals through :func:`resolve_global` only.

    ``extra`` adds allowed globals for this read; ``persistent_load`` resolves persistent ids
    (torch storages); ``allow_script`` admits TorchScript objects as :class:`ScriptObject`.
    Use :func:`load` rather than this class directly: it runs :func:`check_pickle` first.
    """

    def __init__(self, file: BinaryIO, *, extra: dict[tuple[str, str], Any] | None = None,
                 persistent_load: Callable[[Any], Any] | None = None, allow_script: bool = False, **kwargs: Any):
        super().__init__(file, **kwargs)
        self._extra = extra
        self._allow_script = allow_script
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        # Protocol 0-2 pickles written by Python 3 spell globals with Python 2 names
        # (__builtin__.set, commands.Popen); pickle's own find_class translates them, so must we.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        return resolve_global(module, name, self._extra, self._allow_script)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D401 - pickle API
        if self._persistent is None:
            raise UnsafePickleError("refusing to unpickle: a persistent id outside a torch file")
        return self._persistent(pid)


def load(file: BinaryIO, size: int | None = None, *, limits: PickleLimits | None = None, **kwargs: Any) -> Any:
    """Restricted ``pickle.load`` of one pickle at the stream's position (checked first).

    ``size`` is how many bytes the pickle may span (default: to the end of the stream); the
    stream ends up just after the pickle. Keyword arguments go to :class:`Unpickler`.
    """
    if size is None:
        here = file.tell()
        size = file.seek(0, io.SEEK_END) - here
        file.seek(here)
    length = check_pickle(file, size, limits)
    start = file.tell()
    obj = Unpickler(file, **kwargs).load()
    if file.tell() != start + length:
        file.seek(start + length)
    return finalize(obj)


def loads(data: bytes, **kwargs: Any) -> Any:
    return load(io.BytesIO(data), **kwargs)

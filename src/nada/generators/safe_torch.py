"""Reading ``torch.save`` files without ``torch.load``: no code runs, and nothing is allocated
that the file does not hold.

``torch.load`` hands TorchScript archives to ``torch.jit.load`` (which runs their code),
trusts the sizes and strides it finds, and changes behaviour with
``TORCH_FORCE_WEIGHTS_ONLY_LOAD``. This module reads the two ``torch.save`` layouts itself:

* zip (torch >= 1.6): ``<root>/data.pkl`` plus one stored record ``<root>/data/<key>`` per
  storage. A zip that carries code (``code/`` records, ``constants.pkl``, ``.py`` files) is a
  TorchScript archive: refused, or, when the caller asks for it (``allow_script=True``, to read
  the weights of OpenAI's CLIP files), read for its tensors only; the code is never opened.
* legacy (torch < 1.6, and the storage blobs inside NVIDIA's pickles): a sequence of pickles
  followed by each storage's element count and bytes.

Every pickle goes through :mod:`nada.generators.safe_pickle` (opcode pre-check, allow-list).
A storage is allocated only after its declared size has been matched against the bytes
present; a tensor is built only from a storage, offset, size and stride that address memory
inside that storage without stride-0 expansion or overlap.
"""
from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from . import safe_pickle
from .errors import CheckpointError, UnsafePickleError
from .safe_pickle import ScriptObject

__all__ = ["read_torch_file", "read_torch_bytes", "read_pickle_file", "read_pickle_bytes", "read_state_dict", "is_torchscript_zip", "TORCH_LEGACY_MAGIC"]

# torch.save's legacy (non-zip) files start with a protocol-2 pickle of this number.
_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + _MAGIC_NUMBER.to_bytes(10, "little")
_PROTOCOL_VERSION = 1001

MAX_DATA_PKL = 256 * 2**20  # the structure of any checkpoint is far smaller than this
MAX_DIMS = 16


# ============================================================================ tensors from storages


def _check_view(storage_numel: int, offset: Any, size: Any, stride: Any) -> None:
    """Refuse views that leave the storage, repeat elements (stride 0) or overlap."""
    if not isinstance(offset, int) or offset < 0:
        raise UnsafePickleError(f"refusing a tensor with storage offset {offset!r}")
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) or len(size) > MAX_DIMS:
        raise UnsafePickleError(f"refusing a tensor with size {size!r} and stride {stride!r}")
    if not all(isinstance(v, int) and v >= 0 for v in size + stride):
        raise UnsafePickleError(f"refusing a tensor with size {size} and stride {stride}")
    numel = math.prod(size)
    if numel == 0:
        return
    dims = sorted((st, sz) for st, sz in zip(stride, size) if sz > 1)
    span = 0  # highest element offset reached by the dimensions seen so far
    for st, sz in dims:
        if st <= span:  # stride 0, or a dimension that steps back into elements already used
            raise UnsafePickleError(f"refusing a tensor view with size {size} and stride {stride}: it repeats or overlaps elements")
        span += (sz - 1) * st
    if offset + span >= storage_numel:
        raise UnsafePickleError(
            f"refusing a tensor of size {size} at offset {offset}: it reaches past its storage of {storage_numel} elements")


class _Storage:
    """The bytes of one storage read from the file, with the dtype its tensors see them as."""

    __slots__ = ("untyped", "dtype", "numel")

    def __init__(self, data: bytes | bytearray, dtype: torch.dtype):
        self.untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if len(data) else torch.UntypedStorage(0)
        self.dtype = dtype
        self.numel = len(data) // _element_size(dtype)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    # torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
    if not isinstance(storage, _Storage):
        raise UnsafePickleError(f"refusing a tensor built on a {type(storage).__name__}, not a storage read from the file")
    size, stride = tuple(size), tuple(stride)
    _check_view(storage.numel, offset, size, stride)
    if rest and not isinstance(rest[0], bool):
        raise UnsafePickleError("refusing a tensor with a malformed requires_grad flag")
    if len(rest) > 1 and rest[1] not in (None,) and not (isinstance(rest[1], dict) and not rest[1]):
        raise UnsafePickleError("refusing a tensor that carries backward hooks")
    t = torch.empty((0,), dtype=storage.dtype)
    return t.set_(storage.untyped, offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, hooks: Any = None) -> torch.Tensor:
    # Parameters come back as plain tensors: nothing downstream needs the Parameter class.
    if not isinstance(data, (torch.Tensor, _PendingTensor)):
        raise UnsafePickleError(f"refusing a parameter built from a {type(data).__name__}")
    if hooks and not (isinstance(hooks, dict) and not hooks):
        raise UnsafePickleError("refusing a parameter that carries backward hooks")
    return data


def _load_from_bytes(data: Any) -> Any:
    # torch pickles each storage as a nested torch.save blob (torch.storage._load_from_bytes);
    # it re-enters this reader, never torch.load, and may only hold a storage.
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("refusing a storage record that is not bytes")
    obj = read_torch_bytes(bytes(data), allow_script=False)
    if not isinstance(obj, _Storage):
        raise UnsafePickleError(f"refusing a storage record that decodes to a {type(obj).__name__}")
    return obj


_TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
}


def _storage_dtype(storage_type: Any) -> torch.dtype:
    if storage_type is torch.UntypedStorage:
        return torch.uint8
    if isinstance(storage_type, torch.dtype):  # newer zip files may name the dtype directly
        return storage_type
    with warnings.catch_warnings():  # the typed storage classes are deprecated, but files name them
        warnings.simplefilter("ignore")
        dtype = getattr(storage_type, "dtype", None) if isinstance(storage_type, type) else None
    if not isinstance(dtype, torch.dtype):
        raise UnsafePickleError(f"refusing a storage of type {storage_type!r}")
    return dtype


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# ============================================================================ zip layout

_CODE_MARKERS = ("code/", "constants.pkl", ".py", ".debug_pkl")


def _zip_root(archive: zipfile.ZipFile) -> str:
    names = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(names) != 1:
        found = "no data.pkl" if not names else f"{len(names)} data.pkl records"
        raise CheckpointError(f"expected a torch.save zip archive (one <name>/data.pkl record); found {found}")
    return names[0][: -len("data.pkl")]


def is_torchscript_zip(archive: zipfile.ZipFile) -> bool:
    """True when the zip carries code records (a TorchScript archive, or anything else with code)."""
    return any(any(m in name for m in _CODE_MARKERS) for name in archive.namelist())


def _read_record(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"expected a record {name} in the torch zip; found none") from None
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise CheckpointError(f"expected uncompressed records as torch.save writes them; found {name} compressed")
    if info.file_size > limit:
        raise CheckpointError(f"expected record {name} of at most {limit} bytes; found {info.file_size}")
    return archive.read(info)  # checks the record's CRC-32


def _read_zip(stream: BinaryIO, total: int, allow_script: bool) -> Any:
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise CheckpointError(f"expected a complete zip archive; found a damaged one ({e})") from None
    with archive:
        if len(archive.infolist()) > 1_000_000:
            raise CheckpointError("expected a torch.save zip archive; found one with over a million records")
        script = is_torchscript_zip(archive)
        if script and not allow_script:
            raise UnsafePickleError(
                "refusing a TorchScript archive: it carries code, and nada never runs code from a file "
                "(expected plain weights: a torch.save state dict, an NVIDIA .pkl or a .safetensors file)")
        root = _zip_root(archive)
        if root + "byteorder" in archive.namelist():
            order = _read_record(archive, root + "byteorder", 16)
            if order != b"little":
                raise CheckpointError(f"expected little-endian data; found byteorder {order!r}")
        storages: dict[str, _Storage] = {}

        def persistent_load(pid: Any) -> Any:
            if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
                raise UnsafePickleError(f"refusing a persistent id {str(pid)[:60]!r}")
            _, storage_type, key, _location, numel = pid
            dtype = _storage_dtype(storage_type)
            if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
                raise UnsafePickleError("refusing a malformed storage reference")
            if key not in storages:
                nbytes = numel * _element_size(dtype)
                data = _read_record(archive, f"{root}data/{key}", total)
                if len(data) != nbytes:
                    raise CheckpointError(f"expected {nbytes} bytes for storage {key} ({numel} x {dtype}); found {len(data)}")
                storages[key] = _Storage(data, dtype)
            elif storages[key].dtype != dtype:
                raise UnsafePickleError(f"refusing storage {key} read as two different dtypes")
            return storages[key]

        pkl = _read_record(archive, root + "data.pkl", min(total, MAX_DATA_PKL))
        return safe_pickle.loads(pkl, extra=_TENSOR_GLOBALS, persistent_load=persistent_load, allow_script=script)


# ============================================================================ legacy layout


def _read_legacy(stream: BinaryIO, total: int) -> Any:
    def next_pickle(**kwargs: Any) -> Any:
        return safe_pickle.load(stream, total - stream.tell(), **kwargs)

    if next_pickle() != _MAGIC_NUMBER:
        raise CheckpointError("expected a legacy torch.save file; found a wrong magic number")
    if next_pickle() != _PROTOCOL_VERSION:
        raise CheckpointError("expected legacy torch.save protocol 1001; found another")
    sys_info = next_pickle()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise CheckpointError("expected little-endian legacy torch.save data; found other system info")

    declared: dict[str, tuple[torch.dtype, int]] = {}
    storages: dict[str, _Storage] = {}

    def persistent_load(pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] not in ("storage", b"storage"):
            raise UnsafePickleError(f"refusing a persistent id {str(pid)[:60]!r} (modules saved with their source are not read)")
        _, storage_type, key, _location, numel, view = pid
        dtype = _storage_dtype(storage_type)
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0 or numel * _element_size(dtype) > total:
            raise UnsafePickleError("refusing a malformed storage reference")
        if key in declared and declared[key] != (dtype, numel):
            raise UnsafePickleError(f"refusing storage {key} declared twice differently")
        declared[key] = (dtype, numel)
        if view is not None:
            raise UnsafePickleError("refusing a storage view (written only by torch before 1.0)")
        return _Pending(key)

    obj = next_pickle(extra={**_TENSOR_GLOBALS, ("torch._utils", "_rebuild_tensor"): _pending_tensor,
                             ("torch._utils", "_rebuild_tensor_v2"): _pending_tensor},  # bytes come later
                      persistent_load=persistent_load)
    keys = next_pickle()
    if not isinstance(keys, list) or set(keys) != set(declared) or len(keys) != len(declared):
        raise CheckpointError("expected the list of stored storages after the data; found another list")
    for key in keys:
        dtype, numel = declared[key]
        head = stream.read(8)
        if len(head) != 8 or struct.unpack("<q", head)[0] != numel:
            raise CheckpointError(f"expected storage {key} with {numel} elements; found another count or the end of the file")
        nbytes = numel * _element_size(dtype)
        data = stream.read(nbytes)
        if len(data) != nbytes:
            raise CheckpointError(f"expected {nbytes} bytes for storage {key}; found the end of the file")
        storages[key] = _Storage(data, dtype)
    return _resolve_pending(obj, storages)


class _Pending:
    """A storage whose bytes come after the pickle (legacy layout)."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key


class _PendingTensor:
    __slots__ = ("key", "args")

    def __init__(self, key: str, args: tuple):
        self.key, self.args = key, args


def _pending_tensor(storage: Any, *args: Any) -> Any:
    if isinstance(storage, _Pending):
        return _PendingTensor(storage.key, args)
    return _rebuild_tensor(storage, *args)


def _resolve_pending(obj: Any, storages: dict[str, _Storage]) -> Any:
    """Replace storages and tensors that waited for their bytes (legacy layout)."""
    def value(x: Any) -> Any:
        if isinstance(x, _PendingTensor):
            return _rebuild_tensor(storages[x.key], *x.args)
        if isinstance(x, _Pending):
            return storages[x.key]
        return safe_pickle.NOT_A_STAND_IN

    return safe_pickle.replace_stand_ins(obj, value)


# ============================================================================ entry points


def read_torch_bytes(data: bytes, allow_script: bool = False) -> Any:
    """:func:`read_torch_file` for bytes in memory."""
    return _read_stream(io.BytesIO(data), len(data), allow_script)


def _read_stream(stream: BinaryIO, total: int, allow_script: bool) -> Any:
    head = stream.read(4)
    stream.seek(0)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return _read_zip(stream, total, allow_script)
    if head == TORCH_LEGACY_MAGIC[:4]:
        return _read_legacy(stream, total)
    raise CheckpointError(f"expected a torch.save file (zip or legacy); found data starting with {head.hex(' ')}")


def read_torch_file(path: str | os.PathLike, allow_script: bool = False) -> Any:
    """The object a ``torch.save`` file holds, read without ``torch.load`` and without running code.

    Tensors come back as plain CPU tensors (parameters too). ``allow_script=True`` reads
    TorchScript archives as trees of :class:`~nada.generators.safe_pickle.ScriptObject`
    (see :func:`read_state_dict`); otherwise they are refused. Raises
    :class:`~nada.generators.errors.UnsafePickleError` for anything that asks to run code or
    would rebuild unsafe data, and :class:`~nada.generators.errors.CheckpointError` for damaged
    or foreign files (one-line messages, without the path: callers add it).
    """
    path = Path(path)
    total = path.stat().st_size
    with open(path, "rb") as f:
        return _read_stream(f, total, allow_script)


def read_pickle_file(path: str | os.PathLike) -> Any:
    """A plain pickle (NVIDIA's ``.pkl``) through the restricted unpickler; tensors in it are rebuilt
    by this module (their storages are nested ``torch.save`` blobs, read by :func:`read_torch_bytes`)."""
    with open(path, "rb") as f:
        return safe_pickle.load(f, extra=_TENSOR_GLOBALS)


def read_pickle_bytes(data: bytes) -> Any:
    """:func:`read_pickle_file` for bytes in memory."""
    return safe_pickle.loads(data, extra=_TENSOR_GLOBALS)


def read_state_dict(path: str | os.PathLike, *, allow_script: bool = False) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` from a ``torch.save`` state dict or (``allow_script``) a TorchScript archive.

    A TorchScript module tree is flattened to dotted names the way ``state_dict()`` names
    them; plain non-tensor attributes (``training``, ints) are left out, tensor attributes that
    are neither parameters nor buffers in eager code (OpenAI CLIP's ``attn_mask``) are kept.
    A dict with a ``state_dict`` entry is unwrapped. Errors as in :func:`read_torch_file`, with
    the path in front.
    """
    try:
        obj = read_torch_file(path, allow_script=allow_script)
        if isinstance(obj, ScriptObject):
            return _flatten_script(obj)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            return dict(obj)
        raise CheckpointError(f"expected a state dict (names to tensors); found {_summarize(obj)}")
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # truncated/corrupted data surfaces as many exception types
        raise CheckpointError(f"{path}: expected a complete torch.save file; found a damaged one ({type(e).__name__}: {str(e)[:120]})") from None


def _flatten_script(root: ScriptObject) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}

    def walk(obj: ScriptObject, prefix: str, depth: int) -> None:
        if depth > 64:
            raise CheckpointError("expected a TorchScript module tree; found one nested more than 64 deep")
        state = obj.state
        if not isinstance(state, dict):
            return  # objects with a custom __getstate__ hold no module weights
        for name, value in state.items():
            if not isinstance(name, str):
                continue
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
            elif isinstance(value, ScriptObject):
                walk(value, f"{prefix}{name}.", depth + 1)

    walk(root, "", 0)
    if not out:
        raise CheckpointError(f"expected a TorchScript module with weights; found {root.qualname} with none")
    return out


def _summarize(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:6]]
        return f"a dict with keys [{', '.join(keys)}{', ...' if len(obj) > 6 else ''}]"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


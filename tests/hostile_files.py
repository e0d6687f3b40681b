"""Hostile and malformed generator checkpoints, built in memory (none is committed as a file).

Each entry of :data:`ATTACKS` is ``(name, make, expected)``: ``make(marker)`` returns the file's
bytes (``marker`` is a path the file's payload would create if any of its code ran) and
``expected`` a piece of the one-line refusal. Used by ``tests/test_hostile_files.py`` and by
``benchmarks/hostile_inputs.py`` (which measures time and memory per file).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

_np_multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray


class CallsGlobal:
    """Pickles as ``func(*args)``: the classic way to make unpickling run code."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


class Reduces:
    """Pickles as ``func(*args)`` followed by ``BUILD state``."""

    def __init__(self, func, args, state):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args, self.state)


def tiny_state_dict(seed: int = 0) -> dict:
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(seed)
    return Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4})).state_dict()


def torch_bytes(obj, zip_format: bool = True) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


class _Writes(torch.nn.Module):
    """A module whose scripted code, if a loader compiled and ran it, would write ``marker``."""

    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


def torchscript_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_Writes(str(marker))), buf)
    return buf.getvalue()


def pickle_with_storage_blob(blob: bytes) -> bytes:
    return pickle.dumps({"G_ema": CallsGlobal(torch.storage._load_from_bytes, blob)}, protocol=4)


def _rebuild_v2_pickle(size: tuple, stride: tuple, offset: int, storage_numel: int) -> bytes:
    """A legacy-layout torch.save file whose one tensor is any view of a small storage (torch itself
    would refuse to build some of these, so the rebuild call is written directly)."""
    import collections
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.zeros(storage_numel).storage()
    view = CallsGlobal(torch._utils._rebuild_tensor_v2, storage, offset, size, stride, False, collections.OrderedDict())
    return torch_bytes({"g_ema": {"style.1.weight": view}}, zip_format=False)


def forged_numpy_scalar() -> bytes:
    # numpy.dtype('f8') with a state claiming a 1 MB element: numpy trusts it and reads past the data
    dtype = Reduces(np.dtype, ("f8", False, True), (3, "<", None, None, None, 1 << 20, 1, 0))
    return pickle.dumps({"x": CallsGlobal(_np_multiarray.scalar, dtype, b"\0" * 8)}, protocol=4)


def forged_numpy_array() -> bytes:
    dtype = Reduces(np.dtype, ("f4", False, True), (3, "<", None, None, None, -1, -1, 0))
    arr = Reduces(_np_multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (1 << 28,), dtype, False, b"\0" * 16))
    return pickle.dumps({"x": arr}, protocol=4)


def object_numpy_array() -> bytes:
    return pickle.dumps({"x": np.array([1, "a"], dtype=object)}, protocol=4)


def deep_tuple_key(depth: int = 1_000_000) -> bytes:
    # {((((...)))): 1}: hashing the key recurses once per level in C
    return b"\x80\x04}" + b")" + b"\x85" * depth + b"K\x01s."


def deep_list(depth: int = 100_000) -> bytes:
    return b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."


def many_operations(n: int = 3_000_000) -> bytes:
    return b"\x80\x04" + b"N0" * n + b"N."


def huge_memo_index() -> bytes:
    # LONG_BINPUT 1e9: the C unpickler grows its memo table to that index (gigabytes, zeroed)
    return b"\x80\x04N" + b"r" + struct.pack("<I", 1_000_000_000) + b"."


def huge_frame() -> bytes:
    return b"\x80\x04\x95" + struct.pack("<Q", 1 << 36) + b"N."


def huge_declared_bytes() -> bytes:
    # BINBYTES8 claiming 2**40 bytes, then nothing
    return b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc"


def bytearray_bomb() -> bytes:
    return pickle.dumps({"g_ema": CallsGlobal(bytearray, 1 << 30)}, protocol=4)


def zip_bomb_data_pkl(inflated: int = 512 << 20) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * inflated)
    return buf.getvalue()


def zip_lying_sizes() -> bytes:
    """A stored data.pkl whose headers claim 512 MiB."""
    data = bytearray(torch_bytes({"g_ema": tiny_state_dict()}))
    # patch the central directory's uncompressed and compressed sizes of data.pkl
    entry = data.find(b"PK\x01\x02")
    while entry >= 0:
        name_len = struct.unpack_from("<H", data, entry + 28)[0]
        name = bytes(data[entry + 46: entry + 46 + name_len])
        if name.endswith(b"data.pkl"):
            struct.pack_into("<II", data, entry + 20, 512 << 20, 512 << 20)
        entry = data.find(b"PK\x01\x02", entry + 4)
    return bytes(data)


def storage_shorter_than_declared() -> bytes:
    good = torch_bytes({"g_ema": {"style.1.weight": torch.zeros(1000)}})
    src = zipfile.ZipFile(io.BytesIO(good))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data/0"):
                data = data[:8]
            z.writestr(info.filename, data)
    return buf.getvalue()


def safetensors_with_config(config: dict) -> bytes:
    from safetensors.torch import save

    meta = {"format": "nada.stylegan2", "format_version": "1", "config": json.dumps(config)}
    return save({"w_avg": torch.zeros(4)}, metadata=meta)


def safetensors_nan(what: str) -> bytes:
    from safetensors.torch import save

    from nada.generators.stylegan2 import GeneratorConfig

    sd = {k: v.contiguous() for k, v in tiny_state_dict().items()}
    w_avg = torch.zeros(8)
    if what == "w_avg":
        w_avg[0] = float("inf")
    else:
        sd["conv1.activate.bias"] = sd["conv1.activate.bias"].clone()
        sd["conv1.activate.bias"][1] = float("nan")
    cfg = GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4}).to_dict()
    meta = {"format": "nada.stylegan2", "format_version": "1", "config": json.dumps(cfg)}
    return save({**sd, "w_avg": w_avg}, metadata=meta)


def legacy_nan_latent_avg() -> bytes:
    return torch_bytes({"g_ema": tiny_state_dict(), "latent_avg": torch.full((8,), float("nan"))}, zip_format=False)


def nan_lr_mlp_args() -> bytes:
    import argparse

    return torch_bytes({"g_ema": tiny_state_dict(), "args": argparse.Namespace(lr_mlp=float("nan"))})


BIG = {"resolution": 1024, "style_dim": 2048, "n_mlp": 8}

ATTACKS: list[tuple[str, Callable[[Path], bytes], str]] = [
    ("os.system in a pickle", lambda m: pickle.dumps({"g_ema": CallsGlobal(os.system, f"touch {m}")}), "posix.system"),
    ("TorchScript archive", torchscript_bytes, "TorchScript archive"),
    ("TorchScript archive as a nested storage blob", lambda m: pickle_with_storage_blob(torchscript_bytes(m)), "TorchScript archive"),
    ("os.system in a nested storage blob",
     lambda m: pickle_with_storage_blob(torch_bytes(CallsGlobal(os.system, f"touch {m}"), zip_format=False)), "system"),
    ("numpy scalar with a forged dtype state", lambda m: forged_numpy_scalar(), "forged"),
    ("numpy array whose shape exceeds its data", lambda m: forged_numpy_array(), "whose data has 16 bytes"),
    ("numpy object array", lambda m: object_numpy_array(), "refusing numpy dtype 'O8'"),
    ("dict key: a tuple nested a million deep", lambda m: deep_tuple_key(), "nested more than"),
    ("list nested 100 000 deep", lambda m: deep_list(), "nested more than"),
    ("3 million pickle operations", lambda m: many_operations(), "operations"),
    ("memo index of a billion (LONG_BINPUT)", lambda m: huge_memo_index(), "memo index"),
    ("FRAME declaring 2**36 bytes", lambda m: huge_frame(), "frame of"),
    ("BINBYTES8 declaring 2**40 bytes", lambda m: huge_declared_bytes(), "truncated"),
    ("bytearray(2**30) from a pickle", lambda m: bytearray_bomb(), "only copies of bytes"),
    ("torch zip whose data.pkl inflates to 512 MiB", lambda m: zip_bomb_data_pkl(), "compressed"),
    ("torch zip whose headers claim a 512 MiB data.pkl", lambda m: zip_lying_sizes(), "expected"),
    ("storage record shorter than declared", lambda m: storage_shorter_than_declared(), "expected 4000 bytes"),
    ("stride-0 view expanded to 10^8 elements", lambda m: _rebuild_v2_pickle((10**8,), (0,), 0, 1), "repeats or overlaps"),
    ("overlapping 1000x1000 view of 1001 elements", lambda m: _rebuild_v2_pickle((1000, 1000), (1, 1), 0, 1001), "repeats or overlaps"),
    ("view reaching past its storage", lambda m: _rebuild_v2_pickle((10,), (1,), 5, 10), "reaches past its storage"),
    ("safetensors config: 2048-wide 1024 px generator", lambda m: safetensors_with_config(BIG), "missing"),
    ("safetensors config: 100 000 mapping layers", lambda m: safetensors_with_config({"resolution": 64, "n_mlp": 100_000}), "n_mlp"),
    ("safetensors config: 8000-tap blur kernel", lambda m: safetensors_with_config({"resolution": 64, "blur_kernel": [1] * 8000}), "blur_kernel"),
    ("safetensors config: nested JSON", lambda m: safetensors_with_config({"resolution": 64, "channels": json.loads("[" * 50 + "]" * 50)}), "channels"),
    ("safetensors config: NaN lr_mlp", lambda m: safetensors_with_config({"resolution": 64, "lr_mlp": float("nan")}), "lr_mlp"),
    ("safetensors: NaN in a weight", lambda m: safetensors_nan("weight"), "conv1.activate.bias"),
    ("safetensors: inf in w_avg", lambda m: safetensors_nan("w_avg"), "mean latent"),
    ("rosinality .pt: NaN latent_avg", lambda m: legacy_nan_latent_avg(), "mean latent"),
    ("rosinality .pt: NaN lr_mlp in args", lambda m: nan_lr_mlp_args(), "lr_mlp"),
]

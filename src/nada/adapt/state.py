"""Full training state of an adaptation run, written atomically so a killed run resumes exactly.

Holds what :meth:`nada.adapt.trainer.Trainer.state_dict` gives (the parameterisation's entries --
for fine-tuning the trained generator's synthesis weights; the frozen twin is reloaded from the
config --, optimiser moments, the current layer choice, every random-number state, the
step, the metrics so far, and the run's config.

File format (``state.safetensors``): every tensor of the nested state is stored under its
path (``optimizer/state/3/exp_avg``); the metadata holds

* ``skeleton`` -- the nested structure as JSON, tensors replaced by ``{"__tensor__": name}``,
  tuples by ``{"__tuple__": [...]}`` and dicts with non-string keys (optimiser state is keyed
  by int) by ``{"__dict__": [[key, value], ...]}``; JSON writes Python floats exactly;
* ``config`` -- the run's :class:`AdaptConfig` as JSON, so a state is never resumed by
  another run;
* ``tensors_sha256`` / ``skeleton_sha256`` -- checksums verified on load, so a flipped bit
  is an error, not a different run;
* ``step`` -- the number of finished steps, for messages.

Loading never unpickles anything (no ``torch.load``), whatever ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``
says. The pickled ``state.pt`` of older versions is recognised and refused in one line.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path, tensors_sha256
from ..errors import RunError

STATE_FILE = "state.safetensors"
OLD_STATE_FILE = "state.pt"  # nada <= 0.x: a pickle, no longer read
STATE_FORMAT = "nada-adapt-state"
STATE_VERSION = 2

# Options that do not change what a step computes: a resumed run may change them.
RESUMABLE_CHANGES = frozenset({"device", "save_every", "sample_every", "n_samples", "sample_truncation",
                               "export_rosinality", "auto_layer_chunk"})

_TAGS = ("__tensor__", "__tuple__", "__dict__")


class StateError(RunError, ValueError):
    """A state file that cannot be resumed; the message is one line."""


# ----------------------------------------------------------------------------- (un)flattening


def flatten(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(JSON-able skeleton, {path: tensor}) of a nested state of dicts, lists, tuples, tensors and scalars."""
    tensors: dict[str, torch.Tensor] = {}
    storages: set[tuple[int, int]] = set()

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, torch.Tensor):
            name = "/".join(path) or "tensor"
            while name in tensors:
                name += "'"
            t = node.detach().to("cpu").contiguous()
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if t.numel() and key in storages:  # safetensors refuses shared storage
                t = t.clone()
            storages.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
            tensors[name] = t
            return {"__tensor__": name}
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, tuple):
            return {"__tuple__": [walk(v, path + (str(i),)) for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, path + (str(i),)) for i, v in enumerate(node)]
        if isinstance(node, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in node):
                return {k: walk(v, path + (k,)) for k, v in node.items()}
            for k in node:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"training state: cannot store a dict key of type {type(k).__name__}")
            return {"__dict__": [[k, walk(v, path + (str(k),))] for k, v in node.items()]}
        raise TypeError(f"training state: cannot store a {type(node).__name__} at {'/'.join(path)}")

    return walk(obj, ()), tensors


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, dict):
            if len(node) == 1 and next(iter(node)) in _TAGS:
                tag, value = next(iter(node.items()))
                if tag == "__tensor__":
                    return tensors[value]
                if tag == "__tuple__":
                    return tuple(walk(v) for v in value)
                return {k: walk(v) for k, v in value}
            return {k: walk(v) for k, v in node.items()}
        return node

    return walk(skeleton)


# ----------------------------------------------------------------------------- saving


def _config_json(config: Any) -> str:
    return json.dumps(config.to_dict() if hasattr(config, "to_dict") else config, sort_keys=True)


def write_state(path: Path, state: dict[str, Any], config: Any) -> None:
    """Write ``state`` (a nested dict with an int ``"step"``, e.g. :meth:`Trainer.state_dict`) atomically."""
    from safetensors.torch import save_file

    import nada

    skeleton, tensors = flatten(state)
    skeleton_text = json.dumps(skeleton)
    config_text = _config_json(config)
    meta = {
        "format": STATE_FORMAT,
        "format_version": str(STATE_VERSION),
        "nada_version": nada.__version__,
        "step": str(state["step"]),
        "config": config_text,
        "skeleton": skeleton_text,
        "tensors_sha256": tensors_sha256(tensors),
        "skeleton_sha256": _text_sha256(skeleton_text, config_text),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _text_sha256(*texts: str) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- reading


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def older_state_message(path: Path) -> str:
    return (f"{path} was written by an older nada (a pickled training state), which this version does not read; "
            f"start the run again with --overwrite")


def read_header(path: str | Path) -> dict[str, str]:
    """The metadata of a state file, checked to be ours and of this version (reads the header only)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise StateError(f"cannot read training state {path}: {e.strerror or e}") from None
    if path.name == OLD_STATE_FILE or head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise StateError(older_state_message(path))
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:  # safetensors' own error types for damaged headers
        raise StateError(f"{path}: expected a nada training state; found an unreadable or damaged file ({_first_line(e)})") from None
    if meta.get("format") != STATE_FORMAT:
        raise StateError(f"{path}: expected a nada training state; found a safetensors file of another kind"
                         f"{' (' + meta['format'] + ')' if meta.get('format') else ''}")
    if meta.get("format_version") != str(STATE_VERSION):
        raise StateError(f"{path}: expected a training state of format version {STATE_VERSION}; found version "
                         f"{meta.get('format_version')!r} (written by nada {meta.get('nada_version', '?')})")
    for key in ("config", "skeleton", "tensors_sha256", "skeleton_sha256"):
        if key not in meta:
            raise StateError(f"{path}: expected a complete nada training state; its metadata lacks {key!r}")
    if _text_sha256(meta["skeleton"], meta["config"]) != meta["skeleton_sha256"]:
        raise StateError(f"{path}: the training state is corrupted (its metadata checksum does not match); "
                         f"it cannot be resumed")
    return meta


def read_state(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(nested state with CPU tensors, metadata) of a state file, every checksum verified."""
    from safetensors import safe_open

    path = Path(path)
    meta = read_header(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise StateError(f"{path}: expected a complete nada training state; found a damaged one ({_first_line(e)})") from None
    if tensors_sha256(tensors) != meta["tensors_sha256"]:
        raise StateError(f"{path}: the training state is corrupted (its tensors do not match their checksum); "
                         f"it cannot be resumed")
    try:
        state = unflatten(json.loads(meta["skeleton"]), tensors)
    except (ValueError, KeyError, TypeError) as e:
        raise StateError(f"{path}: expected a nada training state; found a malformed structure ({_first_line(e)})") from None
    if not isinstance(state, dict):
        raise StateError(f"{path}: expected a nada training state; found a malformed structure")
    return state, meta


def _flat_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return repr(v)
    return json.dumps(v)


def config_difference(saved: dict[str, Any], current: dict[str, Any], limit: int = 4) -> tuple[str, str] | None:
    """("lr=0.003, iters=300", "lr=0.002, iters=50") for the options that matter and differ; None if none."""
    a = _flat_config(json.loads(json.dumps(saved)))
    b = _flat_config(json.loads(json.dumps(current)))
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in RESUMABLE_CHANGES and k != "guidance.seed" and a.get(k) != b.get(k)]
    if not keys:
        return None
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    shown = keys[:limit]
    left = ", ".join(f"{k}={_show(a[k]) if k in a else '(unset)'}" for k in shown) + more
    right = ", ".join(f"{k}={_show(b[k]) if k in b else '(unset)'}" for k in shown)
    return left, right


def check_belongs(path: Path, meta: dict[str, str], config: Any) -> None:
    """Refuse a state written by a run with another config (in one line, with the differences)."""
    try:
        saved = json.loads(meta["config"])
    except ValueError:
        raise StateError(f"{path}: expected a nada training state; its config is not valid JSON") from None
    diff = config_difference(saved, config.to_dict() if hasattr(config, "to_dict") else config)
    if diff is not None:
        raise StateError(f"{path} was written by a run with {diff[0]}; this run has {diff[1]}; "
                         f"resume with that run's config.yaml, or start again with --overwrite")


def check_state_file(path: Path, config: Any) -> dict[str, str]:
    """Header checks (format, version, config) before any model is loaded; returns the metadata."""
    meta = read_header(path)
    check_belongs(path, meta, config)
    return meta


def saved_step(path: Path) -> int | None:
    """The step of the state in ``path``, or None when there is no readable state."""
    try:
        return int(read_header(path)["step"])
    except (StateError, KeyError, ValueError):
        return None

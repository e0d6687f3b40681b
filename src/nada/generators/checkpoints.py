"""Reading and writing StyleGAN2 generator checkpoints.

Formats read (detected from the file's first bytes, not its extension):

* rosinality / StyleGAN-NADA ``.pt`` (``torch.save``, zip or legacy): ``{"g_ema": state_dict,
  "latent_avg": w_avg, "args": Namespace, ...}``, ``"g"`` when there is no ``"g_ema"``, or a bare
  state dict. The architecture is inferred from tensor shapes.
* e4e / pSp encoder checkpoints (``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg", "opts"}``):
  the ``decoder.*`` generator, in rosinality's layout.
* NVIDIA stylegan2-ada-pytorch / stylegan3-repo StyleGAN2 ``.pkl`` (``"G_ema"`` pickled with
  ``torch_utils.persistence``): rebuilt as tensors plus a tree of names, never as code.
* NVIDIA TensorFlow StyleGAN2 ``.pkl`` (``(G, D, Gs)`` of ``dnnlib.tflib.network.Network``).
* Our ``.safetensors``: the state dict, ``w_avg``, and the config JSON in the metadata.

Every pickle goes through :mod:`nada.generators.safe_pickle`. Every failure is a
:class:`CheckpointError` with a one-line message: path, what was expected, what was found.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .._io import atomic_path, tensors_sha256
from . import registry, safe_torch
from .errors import CheckpointError, UnsafePickleError
from .safe_pickle import PersistentObject, TFNetworkStub
from .safe_torch import TORCH_LEGACY_MAGIC
from .stylegan2 import Generator, GeneratorConfig, default_channels, make_fir_kernel

__all__ = [
    "CheckpointError",
    "UnsafePickleError",
    "load_generator",
    "read_generator_file",
    "save_generator",
    "export_rosinality",
    "check_rosinality_exportable",
    "read_metadata",
    "preset_name_for",
    "sniff_format",
    "generator_from_state_dict",
    "infer_rosinality_config",
    "FORMAT_NAME",
    "FORMAT_VERSION",
]

FORMAT_NAME = "nada.stylegan2"
FORMAT_VERSION = 1
_RESERVED_METADATA = ("format", "format_version", "config", "checksum")
_EXPECTED = "a StyleGAN2 generator checkpoint (torch.save .pt, NVIDIA .pkl, or nada .safetensors)"
_DEFAULT_TAPS = (1, 3, 3, 1)



class _LayoutError(CheckpointError):
    """Raised by the converters without the path; :func:`read_generator_file` prefixes it."""


# ============================================================================ public API


def load_generator(path_or_name: str | os.PathLike, device: str | torch.device = "cpu", progress: bool = True) -> Generator:
    """Load a generator from a checkpoint file, a built-in name (``tiny``) or a pretrained name (``ffhq-1024``).

    Pretrained names are downloaded on first use into ``$NADA_CACHE`` (default ``~/.cache/nada``).
    The generator is returned in eval mode on ``device``; its parameters keep
    ``requires_grad=True`` (freeze them yourself where needed). ``G.w_avg`` is taken from the
    checkpoint when it carries one, otherwise computed on first use (``G.mean_w()``).
    """
    text = os.fspath(path_or_name)
    path = Path(text).expanduser()
    if path.is_file():
        G = read_generator_file(path)
    elif path.exists():
        raise CheckpointError(f"{text}: expected {_EXPECTED}; found a directory or special file")
    elif (loader := registry.builtin_loader(text)) is not None:
        G = loader()
    elif text in registry.PRETRAINED:
        G = read_generator_file(registry.fetch_pretrained(text, progress=progress))
    elif _looks_like_path(text):
        raise CheckpointError(f"{text}: expected {_EXPECTED}; found no such file")
    else:
        raise CheckpointError(registry.unknown_name_message(text))
    return G.to(device).eval()


def read_generator_file(path: str | os.PathLike) -> Generator:
    """Load a generator from a file of any supported format (on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: expected {_EXPECTED}; found no such file")
    try:
        kind = sniff_format(path)
    except OSError as e:
        raise CheckpointError(f"{path}: expected a readable file; found {e.strerror or e}") from None
    try:
        if kind == "safetensors":
            return _read_safetensors(path)
        if kind in ("torch-zip", "torch-legacy"):
            obj = _parse(path, kind, lambda: safe_torch.read_torch_file(path))
        elif kind == "pickle":
            obj = _parse(path, kind, lambda: safe_torch.read_pickle_file(path))
        else:
            raise CheckpointError(f"{path}: expected {_EXPECTED}; found {_describe_kind(kind, path)}")
        return _generator_from_object(obj)
    except _LayoutError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as e:
        # malformed values inside an otherwise readable file (a string where a number belongs, ...)
        raise CheckpointError(f"{path}: expected {_EXPECTED}; found an unexpected structure ({_first_line(e)})") from None


def save_generator(G: Generator, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``G`` as nada ``.safetensors`` (weights, ``w_avg``, config) atomically.

    ``w_avg`` is computed first if it is not known yet, so the file always carries it.
    ``metadata`` adds string entries (e.g. the prompts of an adaptation); read them back
    with :func:`read_metadata`.
    """
    from safetensors.torch import save_file

    import nada

    path = Path(path)
    extra = dict(metadata or {})
    clash = [k for k in extra if k in _RESERVED_METADATA or k == "nada_version"]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ValueError("metadata must map str to str")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in G.state_dict().items()}
    tensors["w_avg"] = G.mean_w().detach().to("cpu", torch.float32).clone()
    meta = {
        **extra,
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(G.config.to_dict(), sort_keys=True),
        "nada_version": nada.__version__,
        # verified on load: a flipped bit in the weights is an error, not a different generator
        "checksum": tensors_sha256(tensors),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def check_rosinality_exportable(G: Generator, check_clamp: bool = True) -> str | None:
    """Why rosinality's ``Generator`` could not load or reproduce ``G``, or None when it can.

    rosinality's network has one channel table per ``channel_multiplier``, a fixed mapping
    learning rate of 0.01, the [1, 3, 3, 1] filter and no activation clamp. A ``conv_clamp``
    (NVIDIA's models use 256) is fine when it never clips: with ``check_clamp`` the images of 8
    fixed latents are drawn with and without it and must be identical.
    """
    cfg = G.config
    use = "use the .safetensors file (nada's format), which keeps every setting"
    table = cfg.channel_table
    multiplier = next((m for m in range(1, 65) if default_channels(cfg.resolution, m) == table), None)
    if multiplier is None:
        return (f"rosinality's Generator cannot load this generator: its channel table {table} is not the standard one "
                f"of any channel_multiplier; {use}")
    if cfg.lr_mlp != 0.01:
        return (f"rosinality's Generator would draw different images: its mapping learning rate is fixed at 0.01 "
                f"and this generator's lr_mlp is {cfg.lr_mlp:g}; {use}")
    if tuple(cfg.blur_kernel) != _DEFAULT_TAPS:
        return (f"rosinality's Generator would draw different images: its filter is [1, 3, 3, 1] and this generator's "
                f"is {list(cfg.blur_kernel)}; {use}")
    if cfg.conv_clamp is not None and check_clamp and _clamp_clips(G):
        return (f"rosinality's Generator would draw different images: it has no activation clamp and this generator's "
                f"conv_clamp {cfg.conv_clamp:g} clips its activations; {use}")
    return None


@torch.no_grad()
def _clamp_clips(G: Generator, n: int = 8) -> bool:
    """Whether ``G``'s activation clamp changes the images of ``n`` fixed latents (psi 1, constant noise)."""
    clamped = [m for m in G.modules() if getattr(m, "clamp", None) is not None and not callable(m.clamp)]
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = G.training
    G.eval()
    try:
        ws = G.mapping(z, truncation_psi=1.0)
        with_clamp = torch.cat([G.synthesis(ws[i:i + 4], noise_mode="const") for i in range(0, n, 4)])
        saved = [m.clamp for m in clamped]
        for m in clamped:
            m.clamp = None
        try:
            without = torch.cat([G.synthesis(ws[i:i + 4], noise_mode="const") for i in range(0, n, 4)])
        finally:
            for m, c in zip(clamped, saved):
                m.clamp = c
    finally:
        G.train(was_training)
    return not torch.equal(with_clamp, without)


def export_rosinality(G: Generator, path: str | os.PathLike) -> Path:
    """Write ``G`` in rosinality's ``.pt`` layout (``g_ema``, ``latent_avg``, ``args``) atomically.

    Only what rosinality's ``Generator(size, latent, n_mlp, channel_multiplier)`` loads with
    ``strict=True`` and draws identically (see :func:`check_rosinality_exportable`); anything
    else raises :class:`CheckpointError` with the reason, and nothing is written.
    """
    path = Path(path)
    reason = check_rosinality_exportable(G)
    if reason is not None:
        raise CheckpointError(f"{path}: {reason}")
    cfg = G.config
    # below 64 px every multiplier gives the same table: keep the generator's own
    multiplier = next(m for m in (cfg.channel_multiplier, *range(1, 65)) if default_channels(cfg.resolution, m) == cfg.channel_table)
    args: dict[str, Any] = {"size": cfg.resolution, "latent": cfg.style_dim, "n_mlp": cfg.n_mlp,
                            "channel_multiplier": multiplier}
    payload = {
        "g_ema": {k: v.detach().to("cpu").clone() for k, v in G.state_dict().items()},
        "latent_avg": G.mean_w().detach().to("cpu", torch.float32).clone(),
        "args": args,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a nada ``.safetensors`` generator file (including ``config``)."""
    from safetensors import safe_open

    path = Path(path)
    if sniff_format(path) != "safetensors":
        raise CheckpointError(f"{path}: expected a nada .safetensors generator; found {_describe_kind(sniff_format(path), path)}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path}: expected a complete .safetensors file; found a damaged one ({_first_line(e)})") from None


# ============================================================================ format detection


def preset_name_for(generator: str | os.PathLike) -> str | None:
    """The name whose preset applies to ``generator``: a name itself; for a nada generator file, the
    ``preset`` or else the ``base_generator`` its metadata names (``nada adapt`` writes both; ``preset``
    carries the name through chains of adaptations) when that name has a preset; else None."""
    text = os.fspath(generator)
    path = Path(text).expanduser()
    if not path.is_file():
        return None if any(sep in text for sep in ("/", "\\")) or path.suffix in (".pt", ".pkl", ".safetensors") else text
    from .. import plugins

    try:
        meta = read_metadata(path)
    except Exception:  # not a nada .safetensors: no lineage to follow
        return None
    base = meta.get("preset") or meta.get("base_generator")
    return base if base and base in plugins.registry.load().presets else None


def sniff_format(path: str | os.PathLike) -> str:
    """Kind of file from its first bytes: safetensors, torch-zip, torch-legacy, pickle, or what else it is."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    if size == 0:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "torch-zip"
    if head.startswith(TORCH_LEGACY_MAGIC):
        return "torch-legacy"
    # safetensors before pickle: a header of 0x280-0x5ff bytes with low byte 0x80 starts like a pickle's
    # protocol mark (80 02..05), while a real pickle never has a "{" right after a plausible length
    is_json = len(head) >= 9 and head[8:9] == b"{"
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if is_json and 2 <= header_len <= size - 8:
        return "safetensors"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if is_json:
        return "safetensors-truncated"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if _is_text(head):
        return "text"
    return "unknown"


def _describe_kind(kind: str, path: Path) -> str:
    if kind == "unknown":
        with open(path, "rb") as f:
            return f"unrecognised data starting with {f.read(8).hex(' ')}"
    return {
        "empty": "an empty file",
        "png": "a PNG image",
        "jpeg": "a JPEG image",
        "gzip": "gzip-compressed data",
        "text": "a text file",
        "safetensors-truncated": "a truncated .safetensors file (header longer than the file)",
        "safetensors": "a .safetensors file",
        "torch-zip": "a torch.save zip file",
        "torch-legacy": "a legacy torch.save file",
        "pickle": "a pickle",
    }.get(kind, kind)


def _is_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix.lower() in (".pt", ".pth", ".pkl", ".safetensors", ".ckpt")


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__


def _parse(path: Path, kind: str, read: Any) -> Any:
    """Run ``read()`` and turn any failure into a one-line CheckpointError."""
    what = {"torch-zip": "torch.save zip file", "torch-legacy": "legacy torch.save file", "pickle": "pickle"}[kind]
    try:
        return read()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # truncated/corrupted data surfaces as many different exception types
        raise CheckpointError(f"{path}: expected a complete {what}; found a truncated or corrupted one ({_first_line(e)})") from None


# ============================================================================ dispatch


def _generator_from_object(obj: Any) -> Generator:
    if isinstance(obj, TFNetworkStub) or (isinstance(obj, tuple) and obj and all(isinstance(o, TFNetworkStub) for o in obj)):
        return _from_tensorflow(obj[-1] if isinstance(obj, tuple) else obj)  # (G, D, Gs): Gs is the averaged generator
    if isinstance(obj, PersistentObject):
        return _from_nvidia(obj)
    if isinstance(obj, dict):
        if isinstance(obj.get("G_ema"), PersistentObject):
            return _from_nvidia(obj["G_ema"])
        for key in ("g_ema", "g"):
            if isinstance(obj.get(key), dict):
                return generator_from_state_dict(obj[key], w_avg=_latent_avg(obj), args=obj.get("args"))
        state = obj.get("state_dict")
        if isinstance(state, dict) and any(isinstance(k, str) and k.startswith("decoder.") for k in state):
            # an e4e / pSp checkpoint: the generator its encoder was trained for, latent_avg's rows all the mean w
            avg = _latent_avg(obj)
            return generator_from_state_dict({k[len("decoder."):]: v for k, v in state.items()
                                              if isinstance(k, str) and k.startswith("decoder.")},
                                             w_avg=avg.reshape(-1, avg.shape[-1])[0] if avg is not None and avg.ndim else None)
        if any(isinstance(k, str) and k.endswith("style.1.weight") for k in obj):
            return generator_from_state_dict(obj)
    raise _LayoutError(
        "expected a StyleGAN2 generator (rosinality 'g_ema' state dict, NVIDIA 'G_ema' or TensorFlow (G, D, Gs)); "
        f"found {_summarize(obj)}")


def _summarize(obj: Any) -> str:
    if isinstance(obj, dict):
        keys = [str(k) for k in list(obj)[:8]]
        more = ", ..." if len(obj) > 8 else ""
        return f"a dict with keys [{', '.join(keys)}{more}]"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {len(obj)} items"
    return f"a {type(obj).__name__}"


def _latent_avg(obj: dict) -> torch.Tensor | None:
    for key in ("latent_avg", "mean_latent", "w_avg"):
        value = obj.get(key)
        if isinstance(value, torch.Tensor):
            return value
    return None


# ============================================================================ rosinality layout


def infer_rosinality_config(state_dict: Mapping[str, torch.Tensor], args: Any = None) -> GeneratorConfig:
    """Architecture of a rosinality-layout state dict, from tensor shapes.

    ``args`` (argparse.Namespace or dict) is consulted only for what shapes cannot tell and
    only under our own keys ``lr_mlp`` / ``conv_clamp`` (written by :func:`export_rosinality`).
    """
    sd = state_dict
    w = _need(sd, "style.1.weight", ndim=2)
    style_dim = w.shape[1]
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    const = _need(sd, "input.input", ndim=4)
    n_blocks = 0
    while f"to_rgbs.{n_blocks}.conv.weight" in sd:
        n_blocks += 1
    if n_blocks == 0:
        raise _LayoutError("expected a rosinality StyleGAN2 state dict with to_rgbs.0.conv.weight; found no to_rgbs layers")
    resolution = 2 ** (n_blocks + 2)
    channels = {4: int(const.shape[1])}
    for k in range(n_blocks):
        channels[2 ** (k + 3)] = int(_need(sd, f"convs.{2 * k}.conv.weight", ndim=5).shape[1])
    kernel = sd.get("to_rgbs.0.upsample.kernel")
    if kernel is not None and kernel.device.type != "meta" and not _is_default_fir(kernel / 4):
        raise _LayoutError(f"expected the FIR filter [1,3,3,1]; found a {tuple(kernel.shape)} kernel {kernel.flatten()[:4].tolist()}...")
    if isinstance(args, argparse.Namespace):
        hints = vars(args)
    else:
        hints = dict(args) if isinstance(args, dict) else {}
    lr_mlp = float(hints["lr_mlp"]) if isinstance(hints.get("lr_mlp"), (int, float)) else 0.01
    clamp = hints.get("conv_clamp")
    clamp = float(clamp) if isinstance(clamp, (int, float)) else None
    return _config(resolution, style_dim, n_mlp, channels, lr_mlp, clamp)


def generator_from_state_dict(state_dict: Mapping[str, torch.Tensor], w_avg: torch.Tensor | None = None, args: Any = None) -> Generator:
    """Build a Generator from a rosinality-layout state dict (``load_state_dict(strict=True)``)."""
    sd = _strip_prefix(dict(state_dict))
    cfg = infer_rosinality_config(sd, args)
    return _assemble(cfg, sd, w_avg, fill_fir=False)


def _strip_prefix(sd: dict) -> dict:
    # DataParallel / DistributedDataParallel checkpoints prefix every key with "module."
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _config(resolution: int, style_dim: int, n_mlp: int, channels: dict[int, int], lr_mlp: float, clamp: float | None) -> GeneratorConfig:
    if resolution < 8 or resolution > 1024:
        raise _LayoutError(f"expected a resolution between 8 and 1024; found {resolution}")
    multiplier = next((m for m in (1, 2, 4, 8) if default_channels(resolution, m) == channels), None)
    return GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp,
                           channel_multiplier=multiplier or 2, channels=None if multiplier else channels,
                           lr_mlp=lr_mlp, conv_clamp=clamp)


def _assemble(cfg: GeneratorConfig, tensors: dict[str, torch.Tensor], w_avg: torch.Tensor | None, fill_fir: bool) -> Generator:
    """Instantiate ``cfg`` and load ``tensors`` strictly; ``fill_fir`` takes the constant FIR kernels from the new module.

    Names and shapes are compared against a weightless (meta-device) copy first, so a config
    that does not match the file's tensors allocates nothing.
    """
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in Generator(cfg).state_dict().items()}
    tensors = dict(tensors)
    kernels = [k for k in expected if k.endswith(".kernel") and k not in tensors] if fill_fir else []
    missing = [k for k in expected if k not in tensors and k not in kernels]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k} {tuple(tensors[k].shape)} vs {shape}" for k, shape in expected.items()
             if k in tensors and tuple(tensors[k].shape) != shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(map(str, unexpected[:3]))})")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:2])})")
        raise _LayoutError(f"expected the StyleGAN2 layout inferred for {cfg.resolution}px, style_dim {cfg.style_dim}; found {', '.join(parts)}")
    for k, v in tensors.items():
        if not torch.is_floating_point(v):
            raise _LayoutError(f"expected floating-point weights; found {v.dtype} in {k}")
        if not torch.isfinite(v).all():
            raise _LayoutError(f"expected finite weights; found NaN or infinite values in {k}")
    if w_avg is not None:
        if not isinstance(w_avg, torch.Tensor) or not torch.is_floating_point(w_avg) or w_avg.numel() != cfg.style_dim:
            found = f"shape {tuple(w_avg.shape)}" if isinstance(w_avg, torch.Tensor) else f"a {type(w_avg).__name__}"
            raise _LayoutError(f"expected a mean latent (w_avg/latent_avg) of {cfg.style_dim} float values; found {found}")
        if not torch.isfinite(w_avg).all():
            raise _LayoutError("expected a finite mean latent (w_avg/latent_avg); found NaN or infinite values")
    G = Generator(cfg)
    current = G.state_dict()
    for k in kernels:
        tensors[k] = current[k]
    G.load_state_dict({k: v.detach().to(torch.float32) for k, v in tensors.items()}, strict=True)
    if w_avg is not None:
        G.set_w_avg(w_avg.detach().float().reshape(cfg.style_dim))
    return G


def _need(sd: Mapping[str, Any], key: str, ndim: int | None = None) -> torch.Tensor:
    value = sd.get(key)
    if not isinstance(value, torch.Tensor):
        found = "no such key" if value is None else f"a {type(value).__name__}"
        raise _LayoutError(f"expected tensor '{key}' of a StyleGAN2 generator; found {found}")
    if ndim is not None and value.ndim != ndim:
        raise _LayoutError(f"expected '{key}' with {ndim} dimensions; found shape {tuple(value.shape)}")
    return value


def _is_default_fir(kernel: torch.Tensor) -> bool:
    ref = make_fir_kernel(_DEFAULT_TAPS)
    return tuple(kernel.shape) == tuple(ref.shape) and torch.allclose(kernel.float(), ref, atol=1e-6)


# ============================================================================ NVIDIA PyTorch pickles


def _persistent_tree(root: PersistentObject) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """Flatten a persistence-pickled module tree into ``{dotted name: tensor}`` and ``{module path: state}``."""
    tensors: dict[str, torch.Tensor] = {}
    states: dict[str, dict] = {}

    def walk(obj: PersistentObject, path: str) -> None:
        states[path] = obj.state
        prefix = f"{path}." if path else ""
        for group in ("_parameters", "_buffers"):
            for name, value in (obj.state.get(group) or {}).items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise _LayoutError(f"expected a tensor at {prefix}{name}; found a {type(value).__name__}")
                tensors[prefix + name] = value
        for name, child in (obj.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise _LayoutError(f"expected NVIDIA persistent modules; found a {type(child).__name__} at {prefix}{name}")
            walk(child, prefix + name)

    walk(root, "")
    return tensors, states


def _from_nvidia(G_ema: PersistentObject) -> Generator:
    tensors, states = _persistent_tree(G_ema)
    root = states[""]
    init = dict(root.get("_init_kwargs") or {})
    where = f"NVIDIA {G_ema.class_name}"

    def take(name: str) -> torch.Tensor:
        if name not in tensors:
            raise _LayoutError(f"expected tensor {name} in the {where} pickle; found none")
        return tensors[name].detach()

    c_dim = int(root.get("c_dim", init.get("c_dim", 0)) or 0)
    if c_dim > 0 or "mapping.embed.weight" in tensors:
        raise _LayoutError(f"expected an unconditional generator; found a class-conditional one (c_dim={c_dim}), which nada does not support")
    img_channels = int(root.get("img_channels", init.get("img_channels", 3)) or 3)
    if img_channels != 3:
        raise _LayoutError(f"expected an RGB generator; found img_channels={img_channels}")
    if any(k.startswith(("synthesis.input.", "synthesis.L0_")) for k in tensors):
        raise _LayoutError("expected a StyleGAN2 generator; found a StyleGAN3 one, which nada does not support")
    if not any(k.startswith("synthesis.b4.") for k in tensors):
        raise _LayoutError(f"expected a StyleGAN2 synthesis network (synthesis.b4...); found {where} with modules {sorted(states)[:6]}")

    # mapping network
    n_mlp = 0
    while f"mapping.fc{n_mlp}.weight" in tensors:
        n_mlp += 1
    if n_mlp == 0:
        raise _LayoutError(f"expected mapping.fc0.weight in the {where} pickle; found none")
    w_dim = int(take(f"mapping.fc{n_mlp - 1}.weight").shape[0])
    shapes = {tuple(take(f"mapping.fc{i}.weight").shape) for i in range(n_mlp)}
    if shapes != {(w_dim, w_dim)}:
        raise _LayoutError(f"expected z_dim == w_dim with square mapping layers; found mapping weight shapes {sorted(shapes)}")
    fc0 = states.get("mapping.fc0", {})
    if fc0.get("activation", "lrelu") != "lrelu":
        raise _LayoutError(f"expected lrelu mapping layers; found {fc0.get('activation')!r}")
    mapping_kwargs = dict(init.get("mapping_kwargs") or {})
    lr_mlp = float(fc0.get("bias_gain", mapping_kwargs.get("lr_multiplier", 0.01)))

    # synthesis network
    resolutions = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    expected_res = [2 ** i for i in range(2, int(math.log2(resolutions[-1])) + 1)]
    if resolutions != expected_res:
        raise _LayoutError(f"expected synthesis blocks {expected_res}; found {resolutions}")
    for r in resolutions:
        arch = states.get(f"synthesis.b{r}", {}).get("architecture", "skip")
        if arch != "skip" or f"synthesis.b{r}.torgb.weight" not in tensors:
            raise _LayoutError(f"expected the 'skip' generator architecture; found {arch!r} at block b{r}")
    fir = tensors.get("synthesis.b4.resample_filter")
    if fir is not None and not _is_default_fir(fir):
        raise _LayoutError(f"expected the resample filter [1,3,3,1]; found a different {tuple(fir.shape)} filter")
    layer_paths = [p for p in states if re.fullmatch(r"synthesis\.b\d+\.(conv0|conv1|torgb)", p)]
    clamps = {states[p].get("conv_clamp") for p in layer_paths}
    if len(clamps) > 1:
        raise _LayoutError(f"expected one conv_clamp for all layers; found {sorted(map(str, clamps))}")
    clamp = clamps.pop() if clamps else None
    for p in layer_paths:
        act = states[p].get("activation", "lrelu")
        if not p.endswith("torgb") and act != "lrelu":
            raise _LayoutError(f"expected lrelu synthesis layers; found {act!r} at {p}")

    sd: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        sd[f"style.{i + 1}.weight"] = take(f"mapping.fc{i}.weight")
        sd[f"style.{i + 1}.bias"] = take(f"mapping.fc{i}.bias")
    const = take("synthesis.b4.const")
    sd["input.input"] = const.unsqueeze(0)

    def conv(src: str, dst: str, noise_index: int, res: int) -> None:
        sd[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        sd[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        sd[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        sd[f"{dst}.activate.bias"] = take(f"{src}.bias")
        if f"{src}.noise_const" in tensors:  # absent when the model was built with use_noise=False
            sd[f"{dst}.noise.weight"] = take(f"{src}.noise_strength").reshape(1)
            sd[f"noises.noise_{noise_index}"] = take(f"{src}.noise_const").reshape(1, 1, res, res)
        else:
            sd[f"{dst}.noise.weight"] = torch.zeros(1)
            sd[f"noises.noise_{noise_index}"] = torch.zeros(1, 1, res, res)

    def torgb(src: str, dst: str) -> None:
        sd[f"{dst}.conv.weight"] = take(f"{src}.weight").unsqueeze(0)
        sd[f"{dst}.conv.modulation.weight"] = take(f"{src}.affine.weight")
        sd[f"{dst}.conv.modulation.bias"] = take(f"{src}.affine.bias")
        sd[f"{dst}.bias"] = take(f"{src}.bias").reshape(1, -1, 1, 1)

    conv("synthesis.b4.conv1", "conv1", 0, 4)
    torgb("synthesis.b4.torgb", "to_rgb1")
    channels = {4: int(const.shape[0])}
    for k, r in enumerate(resolutions[1:]):
        conv(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1, r)
        conv(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2, r)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}")
        channels[r] = int(take(f"synthesis.b{r}.conv1.weight").shape[0])

    cfg = _config(resolutions[-1], w_dim, n_mlp, channels, lr_mlp, None if clamp is None else float(clamp))
    return _assemble(cfg, sd, tensors.get("mapping.w_avg"), fill_fir=True)


# ============================================================================ TensorFlow pickles


def _tf_variables(net: TFNetworkStub, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables of a TF network and its components as ``{"synthesis/4x4/Conv/weight": array}``."""
    out: dict[str, np.ndarray] = {}
    for item in net.state.get("variables") or []:
        name, value = item
        out[prefix + str(name)] = value
    for name, comp in (net.state.get("components") or {}).items():
        if isinstance(comp, TFNetworkStub):
            out.update(_tf_variables(comp, f"{prefix}{name}/"))
    return out


def _from_tensorflow(Gs: TFNetworkStub) -> Generator:
    kwargs: dict[str, Any] = {}
    for net in [Gs, *[c for c in (Gs.state.get("components") or {}).values() if isinstance(c, TFNetworkStub)]]:
        for k, v in (net.state.get("static_kwargs") or {}).items():
            kwargs.setdefault(k, v)
    variables = _tf_variables(Gs)

    def take(name: str) -> torch.Tensor:
        if name not in variables:
            raise _LayoutError(f"expected TensorFlow variable {name}; found none")
        value = variables[name]  # scalars (noise_strength) come back as numpy scalars
        if not isinstance(value, (np.ndarray, np.floating)) or value.dtype.kind != "f":
            raise _LayoutError(f"expected a float array for {name}; found a {type(value).__name__}")
        return torch.from_numpy(np.array(value, dtype=np.float32))

    if int(kwargs.get("label_size", 0) or 0) > 0 or any("LabelConcat" in k or "LabelEmbed" in k for k in variables):
        raise _LayoutError(f"expected an unconditional generator; found a class-conditional one (label_size={kwargs.get('label_size')}), which nada does not support")
    arch = kwargs.get("architecture", "skip") or "skip"
    if arch != "skip" or any(re.match(r"synthesis/ToRGB_lod\d+/", k) for k in variables):
        raise _LayoutError(f"expected the 'skip' generator architecture; found {arch!r}")
    if list(kwargs.get("resample_kernel", _DEFAULT_TAPS) or _DEFAULT_TAPS) != list(_DEFAULT_TAPS):
        raise _LayoutError(f"expected the resample filter [1,3,3,1]; found {kwargs.get('resample_kernel')}")
    for key in ("nonlinearity", "mapping_nonlinearity"):
        if kwargs.get(key, "lrelu") not in ("lrelu", None):
            raise _LayoutError(f"expected lrelu activations; found {key}={kwargs.get(key)!r}")
    if int(kwargs.get("num_channels", 3) or 3) != 3:
        raise _LayoutError(f"expected an RGB generator; found num_channels={kwargs.get('num_channels')}")

    n_mlp = 0
    while f"mapping/Dense{n_mlp}/weight" in variables:
        n_mlp += 1
    if n_mlp == 0:
        raise _LayoutError(f"expected TensorFlow variable mapping/Dense0/weight; found variables {sorted(variables)[:5]}")
    w_dim = int(take(f"mapping/Dense{n_mlp - 1}/weight").shape[1])
    shapes = {tuple(take(f"mapping/Dense{i}/weight").shape) for i in range(n_mlp)}
    if shapes != {(w_dim, w_dim)}:
        raise _LayoutError(f"expected latent_size == dlatent_size with square mapping layers; found mapping weight shapes {sorted(shapes)}")
    resolutions = sorted({int(m.group(1)) for k in variables if (m := re.match(r"synthesis/(\d+)x\1/", k))})
    expected_res = [2 ** i for i in range(2, int(math.log2(max(resolutions or [4]))) + 1)]
    if not resolutions or resolutions != expected_res:
        raise _LayoutError(f"expected synthesis blocks {expected_res}; found {resolutions}")

    sd: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        sd[f"style.{i + 1}.weight"] = take(f"mapping/Dense{i}/weight").t()
        sd[f"style.{i + 1}.bias"] = take(f"mapping/Dense{i}/bias")
    const = take("synthesis/4x4/Const/const")
    sd["input.input"] = const

    def modulation(src: str, dst: str) -> None:
        sd[f"{dst}.conv.modulation.weight"] = take(f"{src}/mod_weight").t()
        sd[f"{dst}.conv.modulation.bias"] = take(f"{src}/mod_bias") + 1  # TF adds the 1 at run time

    def conv(src: str, dst: str, noise_index: int, up: bool) -> None:
        w = take(f"{src}/weight")  # (k, k, in, out)
        if up:  # TF's up-sampling conv flips the kernel before its transposed convolution
            w = w.flip([0, 1])
        sd[f"{dst}.conv.weight"] = w.permute(3, 2, 0, 1).unsqueeze(0)
        modulation(src, dst)
        sd[f"{dst}.activate.bias"] = take(f"{src}/bias")
        noise = f"synthesis/noise{noise_index}"
        if f"{src}/noise_strength" in variables:
            sd[f"{dst}.noise.weight"] = take(f"{src}/noise_strength").reshape(1)
            sd[f"noises.noise_{noise_index}"] = take(noise)
        else:
            res = 2 ** ((noise_index + 5) // 2)
            sd[f"{dst}.noise.weight"] = torch.zeros(1)
            sd[f"noises.noise_{noise_index}"] = torch.zeros(1, 1, res, res)

    def torgb(src: str, dst: str) -> None:
        sd[f"{dst}.conv.weight"] = take(f"{src}/weight").permute(3, 2, 0, 1).unsqueeze(0)
        modulation(src, dst)
        sd[f"{dst}.bias"] = take(f"{src}/bias").reshape(1, -1, 1, 1)

    conv("synthesis/4x4/Conv", "conv1", 0, up=False)
    torgb("synthesis/4x4/ToRGB", "to_rgb1")
    channels = {4: int(const.shape[1])}
    for k, r in enumerate(resolutions[1:]):
        conv(f"synthesis/{r}x{r}/Conv0_up", f"convs.{2 * k}", 2 * k + 1, up=True)
        conv(f"synthesis/{r}x{r}/Conv1", f"convs.{2 * k + 1}", 2 * k + 2, up=False)
        torgb(f"synthesis/{r}x{r}/ToRGB", f"to_rgbs.{k}")
        channels[r] = int(sd[f"convs.{2 * k + 1}.conv.weight"].shape[1])

    clamp = kwargs.get("conv_clamp")
    lr_mlp = float(kwargs.get("mapping_lrmul", 0.01) or 0.01)
    cfg = _config(resolutions[-1], w_dim, n_mlp, channels, lr_mlp, None if clamp is None else float(clamp))
    w_avg = take("dlatent_avg") if "dlatent_avg" in variables else None
    return _assemble(cfg, sd, w_avg, fill_fir=True)


# ============================================================================ our safetensors


def _read_safetensors(path: Path) -> Generator:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"{path}: expected a complete .safetensors file; found a damaged one ({_first_line(e)})") from None
    if "checksum" in meta and tensors_sha256(tensors) != meta["checksum"]:
        raise CheckpointError(f"{path}: expected weights matching the checksum in its metadata; found different ones "
                              "(the file is corrupted: restore it or re-export it)")
    w_avg = tensors.pop("w_avg", None)
    if meta.get("format") != FORMAT_NAME:
        if "style.1.weight" in tensors:  # someone's rosinality state dict converted to safetensors
            return generator_from_state_dict(tensors, w_avg=w_avg)
        raise CheckpointError(f"{path}: expected a nada generator .safetensors (metadata format={FORMAT_NAME}); found format={meta.get('format')!r}")
    version = meta.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: expected nada generator format version <= {FORMAT_VERSION}; found {version!r} (written by a newer nada?)")
    try:
        cfg = GeneratorConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(f"{path}: expected a generator config in the metadata; found an invalid one ({_first_line(e)})") from None
    return _assemble(cfg, tensors, w_avg, fill_fir=False)

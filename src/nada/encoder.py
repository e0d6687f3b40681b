"""Image encoders that give W+ codes in one pass: e4e (``Encoder4Editing``) and pSp (``GradualStyleEncoder``).

Both are the pSp family's network over an IR-SE50 backbone (24 residual units in four stages of 3, 4,
14 and 3; each unit: BatchNorm, 3x3 conv, PReLU, 3x3 conv with the stage's stride on the first unit,
BatchNorm, squeeze-excitation with reduction 16; the shortcut a 1x1 conv + BatchNorm when the width
changes, else a stride-only subsampling). The outputs of stages 2, 3 and 4 (``c1``, ``c2``, ``c3``)
feed a small feature pyramid: ``p2 = up(c3) + latlayer1(c2)``, ``p1 = up(p2) + latlayer2(c1)``. One
"style block" per W+ row (stride-2 3x3 convs with LeakyReLU down to 1x1, then an equalised linear layer)
reads ``c3`` for rows 0-2, ``p2`` for rows 3-6 and ``p1`` for the rest.

* **pSp** stacks the rows' outputs;
* **e4e** uses row 0's output as one ``w`` for every row and adds each other row's output to it as an
  offset, which keeps codes near W, where edits and adapted generators behave.

When the checkpoint says ``start_from_latent_avg`` (both papers' FFHQ encoders), ``latent_avg`` is
added. Input images are resized to the encoder's 256 x 256 and are in [-1, 1] as the generator's.

The checkpoints people have (``e4e_ffhq_encode.pt``, ``psp_ffhq_encode.pt``) are ``torch.save`` dicts
``{"state_dict": {"encoder.*", "decoder.*"}, "opts": {...}, "latent_avg": ...}``; they are read with
nada's restricted reader (plain tensors, no code run), the architecture is taken from the tensors'
shapes, and the weights load strictly under the same key names. ``decoder.*`` is the rosinality
generator the encoder was trained for (:func:`nada.load_generator` reads it from the same file).
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError, NadaError

__all__ = ["EncoderError", "StyleEncoder", "load_encoder", "ENCODER_KINDS"]

# opts["encoder_type"] of each kind: the class names of the pSp and e4e repositories
ENCODER_KINDS = {"e4e": "Encoder4Editing", "psp": "GradualStyleEncoder"}
STAGE_UNITS = (3, 4, 14, 3)  # IR-50; the stage ends (units 6, 20, 23) are the pyramid's taps
COARSE, MIDDLE = 3, 7  # rows below 3 read c3, below 7 read p2, the rest p1
INPUT_SIZE = 256


class EncoderError(NadaError, ValueError):
    """An encoder checkpoint that cannot be used, or images it cannot encode: one line."""


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * gate


class _ResidualUnit(nn.Module):
    """One IR(-SE) unit; ``se_hidden`` 0 means no squeeze-excitation (the plain IR backbone)."""

    def __init__(self, in_channels: int, depth: int, stride: int, se_hidden: int):
        super().__init__()
        self.stride = stride
        if in_channels != depth:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        else:
            self.shortcut_layer = None  # a 1x1 max-pool with this stride: keep every stride-th pixel
        layers = [nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
                  nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth)]
        if se_hidden:
            layers.append(_SqueezeExcite(depth, se_hidden))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut_layer(x) if self.shortcut_layer is not None else x[:, :, ::self.stride, ::self.stride]
        return self.res_layer(x) + shortcut


class _EqualLinear(nn.Module):
    """rosinality's EqualLinear without activation (lr_mul 1): weight scaled by 1/sqrt(fan_in) at run time."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class _StyleBlock(nn.Module):
    """Stride-2 convs down to 1 x 1, then a linear layer: one W+ row from a feature map."""

    def __init__(self, in_channels: int, out_channels: int, convs: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        self.linear = _EqualLinear(out_channels, out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise EncoderError(f"a style block ends at {tuple(x.shape[-2:])}, not 1 x 1: the input is too large for this encoder")
        return self.linear(x.flatten(1))


def _upsample_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


class StyleEncoder(nn.Module):
    """An e4e or pSp encoder (``kind``), keys as in the papers' code (``input_layer``, ``body``, ``styles``,
    ``latlayer1``, ``latlayer2``). ``widths`` are the four stages' channels (IR-SE50: 64, 128, 256, 512);
    ``style_convs`` the number of stride-2 convs of each row's block (log2 of 16, 32 or 64 in the papers);
    ``latent_avg`` (rows or one row, w_dim) is added to the output when given."""

    def __init__(self, kind: str, *, widths: tuple[int, int, int, int] = (64, 128, 256, 512), style_dim: int = 512,
                 style_convs: tuple[int, ...] = (4,) * 3 + (5,) * 4 + (6,) * 11, se_reduction: int | None = 16,
                 latent_avg: torch.Tensor | None = None, input_size: int = INPUT_SIZE):
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise EncoderError(f"encoder kind must be one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
        if widths[3] != style_dim:
            raise EncoderError(f"the last stage's width ({widths[3]}) must equal style_dim ({style_dim}): "
                               "the feature pyramid adds them")
        self.kind = kind
        self.input_size = input_size
        self.num_ws = len(style_convs)
        self.w_dim = style_dim
        self.input_layer = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                         nn.PReLU(widths[0]))
        units: list[nn.Module] = []
        in_channels = widths[0]
        for depth, count in zip(widths, STAGE_UNITS):
            for i in range(count):
                hidden = depth // se_reduction if se_reduction else 0
                units.append(_ResidualUnit(in_channels, depth, 2 if i == 0 else 1, hidden))
                in_channels = depth
        self.body = nn.Sequential(*units)
        self.styles = nn.ModuleList(_StyleBlock(widths[3], style_dim, n) for n in style_convs)
        self.latlayer1 = nn.Conv2d(widths[2], style_dim, 1)
        self.latlayer2 = nn.Conv2d(widths[1], style_dim, 1)
        if latent_avg is not None:
            latent_avg = latent_avg.detach().float().reshape(-1, style_dim)
            if latent_avg.shape[0] not in (1, self.num_ws):
                raise EncoderError(f"latent_avg has {latent_avg.shape[0]} rows; this encoder gives {self.num_ws}")
        self.register_buffer("latent_avg", latent_avg, persistent=False)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.input_layer(x)
        taps = {sum(STAGE_UNITS[:k]) - 1: k for k in (2, 3, 4)}
        out = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in taps:
                out[taps[i]] = x
        return out[2], out[3], out[4]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """W+ codes (N, num_ws, w_dim) of ``images`` (N, 3, H, W) in [-1, 1], resized to ``input_size``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise EncoderError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        c1, c2, c3 = self.features(images)
        pyramid: dict[str, torch.Tensor] = {}

        def level(row: int) -> torch.Tensor:
            if row < COARSE:
                return c3
            if "p2" not in pyramid:
                pyramid["p2"] = _upsample_add(c3, self.latlayer1(c2))
            if row < MIDDLE:
                return pyramid["p2"]
            if "p1" not in pyramid:
                pyramid["p1"] = _upsample_add(pyramid["p2"], self.latlayer2(c1))
            return pyramid["p1"]

        if self.kind == "psp":
            ws = torch.stack([block(level(i)) for i, block in enumerate(self.styles)], dim=1)
        else:
            w0 = self.styles[0](c3)
            rows = [w0] + [w0 + block(level(i)) for i, block in enumerate(self.styles) if i > 0]
            ws = torch.stack(rows, dim=1)
        if self.latent_avg is not None:
            ws = ws + self.latent_avg.to(ws)
        return ws


# ----------------------------------------------------------------------------- checkpoints


def _architecture(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """StyleEncoder keyword arguments from a state dict's shapes; EncoderError when the layout is foreign."""

    def need(key: str, ndim: int) -> torch.Tensor:
        value = sd.get(key)
        if not isinstance(value, torch.Tensor) or value.ndim != ndim:
            found = "missing" if value is None else f"shape {tuple(getattr(value, 'shape', ()))}"
            raise EncoderError(f"expected the e4e/pSp encoder layout (IR-SE50 body, styles, latlayers); "
                               f"encoder.{key} is {found}")
        return value

    stem = need("input_layer.0.weight", 4)
    if stem.shape[1] != 3:
        raise EncoderError(f"this encoder reads {stem.shape[1]} input channels, not an RGB photo's 3 "
                           "(a pSp encoder for sketches or segmentation maps?)")
    units = sum(1 for k in sd if k.startswith("body.") and k.endswith(".res_layer.1.weight"))
    if units != sum(STAGE_UNITS):
        raise EncoderError(f"expected the IR-SE50 body of e4e/pSp ({sum(STAGE_UNITS)} units); found {units}")
    ends = [sum(STAGE_UNITS[:k + 1]) - 1 for k in range(4)]
    widths = tuple(int(need(f"body.{i}.res_layer.1.weight", 4).shape[0]) for i in ends)
    se = "body.0.res_layer.5.fc1.weight"
    se_reduction = None
    if se in sd:
        hidden = int(need(se, 4).shape[0])
        se_reduction = widths[0] // hidden if hidden else 0
    count = 0
    while f"styles.{count}.linear.weight" in sd:
        count += 1
    if count == 0:
        raise EncoderError("expected the e4e/pSp encoder layout; found no styles.0.linear.weight")
    convs = []
    for i in range(count):
        n = 0
        while f"styles.{i}.convs.{2 * n}.weight" in sd:
            n += 1
        convs.append(n)
    style_dim = int(need("styles.0.linear.weight", 2).shape[0])
    return {"widths": widths, "style_dim": style_dim, "style_convs": tuple(convs), "se_reduction": se_reduction}


def _options(obj: Any) -> dict[str, Any]:
    opts = obj.get("opts") if isinstance(obj, dict) else None
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    return dict(opts) if isinstance(opts, dict) else {}


def _kind_of(opts: Mapping[str, Any], kind: str | None, path: Path) -> str:
    if kind is not None:
        if kind not in ENCODER_KINDS:
            raise EncoderError(f"encoder type must be one of {', '.join(ENCODER_KINDS)}, got {kind!r}")
        return kind
    named = opts.get("encoder_type")
    if named is None:
        raise EncoderError(f"{path}: its opts name no encoder_type; say which it is (--encoder-type e4e or psp)")
    for k, cls in ENCODER_KINDS.items():
        if named == cls:
            return k
    raise EncoderError(f"{path}: encoder_type {named!r} is not supported; "
                       f"{', '.join(f'{cls} ({k})' for k, cls in ENCODER_KINDS.items())} are")


def read_encoder_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's object, read with the restricted reader (no code run); errors name the path."""
    from .generators import safe_torch

    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such encoder checkpoint")
    try:
        obj = safe_torch.read_torch_file(path)
    except CheckpointError as e:
        raise EncoderError(f"{path}: {e}") from None
    except Exception as e:  # truncated data surfaces as many exception types
        raise EncoderError(f"{path}: not a readable torch.save file ({type(e).__name__}: {str(e)[:100]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        keys = ", ".join(map(str, list(obj)[:5])) if isinstance(obj, dict) else type(obj).__name__
        raise EncoderError(f"{path}: expected an e4e/pSp checkpoint {{state_dict, opts, latent_avg}}; found {keys}")
    return obj


def load_encoder(path: str | os.PathLike, *, kind: str | None = None, device: str | torch.device = "cpu",
                 input_size: int = INPUT_SIZE) -> StyleEncoder:
    """An e4e or pSp encoder from its checkpoint (``kind`` overrides the checkpoint's ``opts.encoder_type``;
    ``input_size``: the side images are resized to, 256 for the papers' encoders)."""
    path = Path(path)
    obj = read_encoder_checkpoint(path)
    opts = _options(obj)
    kind = _kind_of(opts, kind, path)
    sd = {k[len("encoder."):]: v for k, v in obj["state_dict"].items() if isinstance(k, str) and k.startswith("encoder.")}
    if not sd:
        keys = ", ".join(map(str, list(obj["state_dict"])[:4]))
        raise EncoderError(f"{path}: its state_dict has no encoder.* weights (found {keys or 'none'})")
    try:
        arch = _architecture(sd)
    except EncoderError as e:
        raise EncoderError(f"{path}: {e}") from None
    latent_avg = obj.get("latent_avg")
    start = opts.get("start_from_latent_avg", latent_avg is not None)
    if start and not isinstance(latent_avg, torch.Tensor):
        raise EncoderError(f"{path}: its opts say start_from_latent_avg but it holds no latent_avg tensor")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in StyleEncoder(kind, **arch).state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join('encoder.' + k for k in keys[:3])}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape:", wrong)) if keys]
        raise EncoderError(f"{path}: not the e4e/pSp encoder layout ({'; '.join(parts)})")
    for k, v in sd.items():
        if not k.endswith("num_batches_tracked") and (not torch.is_floating_point(v) or not torch.isfinite(v).all()):
            raise EncoderError(f"{path}: encoder.{k} holds non-finite or non-float values")
    try:
        encoder = StyleEncoder(kind, **arch, latent_avg=latent_avg if start else None, input_size=input_size)
    except (EncoderError, RuntimeError) as e:
        raise EncoderError(f"{path}: {e}") from None
    encoder.load_state_dict(sd, strict=True)
    encoder.source = str(path)
    return encoder.to(device).eval().requires_grad_(False)


def check_encoder_fits(encoder: StyleEncoder, G: Any) -> str | None:
    """Why ``encoder``'s codes do not fit ``G``, or None."""
    if encoder.w_dim != G.w_dim or encoder.num_ws != G.num_ws:
        return (f"the encoder gives {encoder.num_ws} codes of {encoder.w_dim} values; this generator takes "
                f"{G.num_ws} of {G.w_dim} (an encoder is trained for one generator)")
    return None

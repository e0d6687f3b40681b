"""StyleGAN2 generator in pure PyTorch (CPU and GPU alike, no custom ops).

The module tree and state-dict keys are those of rosinality's ``stylegan2-pytorch``, so its
checkpoints load with ``strict=True``; the calling conventions (``mapping`` / ``synthesis``,
``z_dim``, ``w_dim``, ``num_ws``, ``w_avg``) are those of NVIDIA's code.

W+ rows (``num_ws = 2 * log2(R) - 2``) are consumed in this order: row 0 by ``conv1``,
row 1 by ``to_rgb1``; then per resolution ``i``: the up-sampling conv takes row ``2i+1``,
the second conv row ``2i+2`` and that resolution's ToRGB row ``2i+3`` (so every ToRGB
shares its row with the next resolution's first conv).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

NOISE_MODES = ("const", "random", "none")


# ----------------------------------------------------------------------------- config


def default_channels(resolution: int, channel_multiplier: int = 2) -> dict[int, int]:
    """StyleGAN2's channel table (config-f for ``channel_multiplier=2``)."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {r: (c if r <= 32 else c * channel_multiplier) for r, c in table.items() if r <= resolution}


# Bounds on what a config may ask for (far above every published StyleGAN2).
MAX_WIDTH = 4096
MAX_MLP = 64
MAX_TAPS = 16


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _int_in(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be an integer, got {_short(value)}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an integer, got {_short(value)}") from None
    if number != value and str(number) != str(value).strip():
        raise ValueError(f"{name} must be an integer, got {_short(value)}")
    if not lo <= number <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {number}")
    return number


def _float_in(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {_short(value)}")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{name} must be a finite number in [{lo:g}, {hi:g}], got {number}")
    return number


@dataclass
class GeneratorConfig:
    """Architecture of a StyleGAN2 generator; everything needed to rebuild it."""

    resolution: int
    style_dim: int = 512
    n_mlp: int = 8
    channel_multiplier: int = 2
    channels: dict[int, int] | None = None  # explicit {resolution: channels}; overrides channel_multiplier
    lr_mlp: float = 0.01
    blur_kernel: tuple[int, ...] = (1, 3, 3, 1)
    conv_clamp: float | None = None  # NVIDIA's optional activation clamp; None for rosinality/TF models

    def __post_init__(self) -> None:
        # Checked before anything is built: a config read from a file must not be able to ask
        # for a network that exhausts memory or time before its weights are compared.
        r = _int_in("resolution", self.resolution, 8, 1024)
        if r & (r - 1):
            raise ValueError(f"resolution must be a power of two between 8 and 1024, got {self.resolution}")
        self.resolution = r
        self.style_dim = _int_in("style_dim", self.style_dim, 1, MAX_WIDTH)
        self.n_mlp = _int_in("n_mlp", self.n_mlp, 1, MAX_MLP)
        self.channel_multiplier = _int_in("channel_multiplier", self.channel_multiplier, 1, 64)
        if not isinstance(self.blur_kernel, (list, tuple)) or not 1 <= len(self.blur_kernel) <= MAX_TAPS:
            raise ValueError(f"blur_kernel must list 1 to {MAX_TAPS} taps, got {_short(self.blur_kernel)}")
        self.blur_kernel = tuple(_int_in("blur_kernel tap", k, -1024, 1024) for k in self.blur_kernel)
        if sum(self.blur_kernel) == 0:
            raise ValueError(f"blur_kernel taps must not sum to zero, got {list(self.blur_kernel)}")
        self.lr_mlp = _float_in("lr_mlp", self.lr_mlp, 1e-6, 1e3)
        if self.conv_clamp is not None:
            self.conv_clamp = _float_in("conv_clamp", self.conv_clamp, 1e-6, 1e9)
        if self.channels is not None:
            if not isinstance(self.channels, dict) or len(self.channels) > 16:
                raise ValueError(f"channels must map resolutions to channel counts, got {_short(self.channels)}")
            chans = {_int_in("channels resolution", k, 4, 1024): _int_in("channels", v, 1, MAX_WIDTH)
                     for k, v in self.channels.items()}
            missing = [2**i for i in range(2, int(math.log2(r)) + 1) if 2**i not in chans]
            if missing:
                raise ValueError(f"channel table lacks resolutions {missing}")
            self.channels = {k: chans[k] for k in sorted(chans) if k <= r}

    @property
    def channel_table(self) -> dict[int, int]:
        return dict(self.channels) if self.channels is not None else default_channels(self.resolution, self.channel_multiplier)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["blur_kernel"] = list(self.blur_kernel)
        if self.channels is not None:
            d["channels"] = {str(k): v for k, v in self.channels.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GeneratorConfig":
        if not isinstance(d, dict):
            raise ValueError(f"generator config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown generator config keys: {sorted(unknown)}")
        if "resolution" not in d:
            raise ValueError("generator config lacks resolution")
        return cls(**d)


# ----------------------------------------------------------------------------- primitives


def make_fir_kernel(taps: Sequence[int]) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[:, None] * k[None, :]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with ``kernel`` (true convolution), downsample.

    Same padding convention on both axes; negative padding crops.
    """
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    kh, kw = kernel.shape
    weight = kernel.flip([0, 1]).to(x.dtype).view(1, 1, kh, kw).expand(c, 1, kh, kw)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor, negative_slope: float = 0.2, gain: float = math.sqrt(2)) -> torch.Tensor:
    """Bias, leaky ReLU and a gain that keeps activations at unit variance."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), negative_slope) * gain


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored at N(0, 1/lr_mul²), scaled at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class Blur(nn.Module):
    def __init__(self, taps: Sequence[int], pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(taps) * gain)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class FIRUpsample(nn.Module):
    """2x up-sampling with an FIR low-pass filter (used on the ToRGB skip path)."""

    def __init__(self, taps: Sequence[int], factor: int = 2):
        super().__init__()
        self.factor = factor
        kernel = make_fir_kernel(taps) * factor**2
        self.register_buffer("kernel", kernel)
        p = kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled per sample by a style, then demodulated.

    Computed as modulate-input / shared-weight convolution / scale-output, which equals the
    per-sample weight formulation ``w' = s_i w``, ``w'' = w' / sqrt(sum w'^2 + eps)`` exactly
    (see tests) and needs no grouped convolution.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        self.eps = 1e-8
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        if upsample:  # registered before ``modulation`` so state-dict order matches rosinality's
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), gain=factor**2)
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)
        # Optional per-module hooks for parameterisations of an adapted generator (nada.adapt.parameterisation):
        # ``style_hook(style (N, in)) -> style`` transforms the style vector (StyleSpace), ``weight_hook(weight
        # (out, in, k, k)) -> weight`` the scaled convolution weight. Plain attributes, never state; with both
        # None (the default) the arithmetic is exactly that of a module without hooks.
        self.style_hook: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.weight_hook: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        style = self.modulation(w)  # (N, in)
        if self.style_hook is not None:
            style = self.style_hook(style)
        weight = self.scale * self.weight[0]  # (out, in, k, k)
        if self.weight_hook is not None:
            weight = self.weight_hook(weight)
        x = x * style.view(batch, -1, 1, 1)
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = self.blur(x)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (scale * w * s_i)^2 for every sample and output channel
            demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + self.eps)  # (N, out)
            x = x * demod.view(batch, -1, 1, 1)
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channel}, {self.out_channel}, k={self.kernel_size}, upsample={self.upsample}, demodulate={self.demodulate}"


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if noise is None:
            return x
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.expand(batch, -1, -1, -1)


class LeakyReLUBias(nn.Module):
    """Per-channel bias + leaky ReLU (rosinality's key name ``activate.bias``)."""

    def __init__(self, channel: int, clamp: float | None = None):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fused_leaky_relu(x, self.bias)
        if self.clamp is not None:
            x = x.clamp(-self.clamp, self.clamp)
        return x


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[int] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = LeakyReLUBias(out_channel, clamp=conv_clamp)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[int] = (1, 3, 3, 1), conv_clamp: float | None = None):
        super().__init__()
        if upsample:
            self.upsample = FIRUpsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if self.clamp is not None:
            out = out.clamp(-self.clamp, self.clamp)
        if skip is not None:
            out = out + self.upsample(skip)
        return out


# ----------------------------------------------------------------------------- generator


@dataclass
class SynthesisLayer:
    """One trainable unit of the synthesis network and the W+ row it reads."""

    name: str  # module path, e.g. "convs.3"
    module: nn.Module
    ws_index: int
    resolution: int
    kind: str  # "conv" or "torgb"
    parameters: list[str] = field(default_factory=list)


class Generator(nn.Module):
    """StyleGAN2 generator (mapping network + skip-architecture synthesis network)."""

    def __init__(self, config: GeneratorConfig | None = None, **kwargs: Any):
        super().__init__()
        if config is None:
            config = GeneratorConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a GeneratorConfig or keyword arguments, not both")
        self.config = config
        self.resolution = config.resolution
        self.style_dim = self.z_dim = self.w_dim = config.style_dim
        self.log_size = int(math.log2(config.resolution))
        self.num_layers = (self.log_size - 2) * 2 + 1  # styled convolutions, one noise input each
        self.num_ws = self.log_size * 2 - 2
        channels = config.channel_table
        self.channels = channels
        blur, clamp = config.blur_kernel, config.conv_clamp

        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activation=True) for _ in range(config.n_mlp)
        ])
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, config.style_dim, blur_kernel=blur, conv_clamp=clamp)
        self.to_rgb1 = ToRGB(channels[4], config.style_dim, upsample=False, conv_clamp=clamp)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        in_channel = channels[4]
        for log_res in range(3, self.log_size + 1):
            out_channel = channels[2**log_res]
            self.convs.append(StyledConv(in_channel, out_channel, 3, config.style_dim, upsample=True, blur_kernel=blur, conv_clamp=clamp))
            self.convs.append(StyledConv(out_channel, out_channel, 3, config.style_dim, blur_kernel=blur, conv_clamp=clamp))
            self.to_rgbs.append(ToRGB(out_channel, config.style_dim, blur_kernel=blur, conv_clamp=clamp))
            in_channel = out_channel
        # Mean of W for truncation. Not part of rosinality's state dict (so their checkpoints load
        # strictly); our own format stores it beside the weights.
        self.register_buffer("w_avg", torch.zeros(config.style_dim), persistent=False)
        self.w_avg_ready = False

    # ------------------------------------------------------------------ mapping

    def mapping(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        """z (N, z_dim) -> ws (N, num_ws, w_dim), truncated towards ``w_avg`` when psi != 1."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}), got {tuple(z.shape)}")
        w = self.style(z)
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        return self.truncate(ws, truncation_psi, truncation_cutoff)

    def truncate(self, ws: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None) -> torch.Tensor:
        if truncation_psi == 1.0:
            return ws
        w_avg = self.mean_w().to(ws.dtype)
        cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
        out = ws.clone()
        out[:, :cutoff] = w_avg + truncation_psi * (ws[:, :cutoff] - w_avg)
        return out

    @torch.no_grad()
    def compute_w_avg(self, n: int = 10_000, seed: int = 0, batch: int = 2048) -> torch.Tensor:
        """Mean W over ``n`` z samples from a fixed seed (deterministic), stored in ``w_avg``."""
        gen = torch.Generator().manual_seed(seed)
        device = self.w_avg.device
        total = torch.zeros(self.w_dim, dtype=torch.float64, device=device)
        done = 0
        while done < n:
            b = min(batch, n - done)
            z = torch.randn(b, self.z_dim, generator=gen).to(device)
            total += self.style(z).double().sum(0)
            done += b
        self.w_avg.copy_((total / n).to(self.w_avg.dtype))
        self.w_avg_ready = True
        return self.w_avg

    def mean_w(self) -> torch.Tensor:
        if not self.w_avg_ready:
            self.compute_w_avg()
        return self.w_avg

    def set_w_avg(self, w_avg: torch.Tensor) -> None:
        self.w_avg.copy_(w_avg.reshape(-1).to(self.w_avg))
        self.w_avg_ready = True

    # ------------------------------------------------------------------ synthesis

    def noise_buffers(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def _noise_inputs(self, batch: int, noise_mode: str, noise: Sequence[torch.Tensor | None] | None,
                      device: torch.device, dtype: torch.dtype) -> list[torch.Tensor | None]:
        if noise is not None:
            if len(noise) != self.num_layers:
                raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
            return list(noise)
        if noise_mode == "const":
            return [n.to(dtype) for n in self.noise_buffers()]
        if noise_mode == "random":
            return [torch.randn(batch, 1, n.shape[-2], n.shape[-1], device=device, dtype=dtype) for n in self.noise_buffers()]
        if noise_mode == "none":
            return [None] * self.num_layers
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const",
                  noise: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> images (N, 3, R, R), nominally in [-1, 1]."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        batch = ws.shape[0]
        noises = self._noise_inputs(batch, noise_mode, noise, ws.device, ws.dtype)
        x = self.input(batch)
        x = self.conv1(x, ws[:, 0], noises[0])
        skip = self.to_rgb1(x, ws[:, 1])
        i = 1
        for up, conv, n1, n2, to_rgb in zip(self.convs[::2], self.convs[1::2], noises[1::2], noises[2::2], self.to_rgbs):
            x = up(x, ws[:, i], n1)
            x = conv(x, ws[:, i + 1], n2)
            skip = to_rgb(x, ws[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
                truncation_cutoff: int | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode=noise_mode)

    # ------------------------------------------------------------------ structure

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """Trainable synthesis units in W+ order (ws_index ascending; ToRGB before the conv that shares its row)."""
        layers: list[SynthesisLayer] = []

        def add(name: str, ws_index: int, res: int, kind: str) -> None:
            module = self.get_submodule(name)
            params = [f"{name}.{p}" for p, _ in module.named_parameters()]
            layers.append(SynthesisLayer(name, module, ws_index, res, kind, params))

        add("conv1", 0, 4, "conv")
        add("to_rgb1", 1, 4, "torgb")
        for k in range(len(self.to_rgbs)):
            res = 2 ** (k + 3)
            add(f"convs.{2 * k}", 2 * k + 1, res, "conv")
            add(f"convs.{2 * k + 1}", 2 * k + 2, res, "conv")
            add(f"to_rgbs.{k}", 2 * k + 3, res, "torgb")
        layers.sort(key=lambda l: (l.ws_index, l.kind != "torgb"))
        return layers

    def modulated_convs(self) -> list[tuple[SynthesisLayer, ModulatedConv2d]]:
        """Every modulated convolution with its synthesis unit, in W+ order (where the style and weight hooks sit)."""
        return [(unit, unit.module.conv) for unit in self.synthesis_layers()]

    def synthesis_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in self.named_parameters():
            if not name.startswith("style."):
                yield name, p

    def mapping_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, p in self.named_parameters():
            if name.startswith("style."):
                yield name, p

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, w_dim={self.w_dim}, num_ws={self.num_ws}"

"""The built-in world's judge: an independent CNN that reads style, shape, colour and position.

It shares nothing with the CLIPs (its own architecture, data draw and seed) and is only
ever used to *evaluate* generators; adaptation code must not import this module.

Architecture: a small strided CNN (four stages, 32x32 down to 4x4) over the image plus two
coordinate channels. A global
average of the last feature map feeds a 128-d penultimate layer (:meth:`Judge.features`,
used for Fréchet distances) and the three classification heads; the object position is a
soft-argmax over a 16x16 heat map, which keeps it translation-equivariant and sub-pixel.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .assets import JUDGE_DIR
from .renderer import COLOURS, RESOLUTION, SHAPES, STYLES
WEIGHTS_NAME = "judge.safetensors"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class JudgeConfig:
    widths: tuple[int, ...] = (24, 48, 96, 128)  # stage outputs at 32, 16, 8, 4 pixel resolution
    feature_dim: int = 128
    heatmap_level: int = 1  # index into widths whose map (16x16) makes the position heat map
    resolution: int = RESOLUTION
    n_styles: int = len(STYLES)
    n_shapes: int = len(SHAPES)
    n_colours: int = len(COLOURS)

    @classmethod
    def from_dict(cls, d: dict) -> "JudgeConfig":
        d = dict(d)
        d["widths"] = tuple(d["widths"])
        return cls(**d)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class JudgeNet(nn.Module):
    def __init__(self, config: JudgeConfig = JudgeConfig()):
        super().__init__()
        self.config = config
        w = config.widths
        # every stage halves the resolution, then refines at it
        stages = []
        for cin, cout in zip((3 + 2,) + w[:-1], w):
            stages.append(nn.Sequential(_conv(cin, cout, 2), _conv(cout, cout, 1)))
        self.stages = nn.ModuleList(stages)
        self.heatmap = nn.Conv2d(w[config.heatmap_level], 1, 1)
        self.penultimate = nn.Sequential(nn.Linear(w[-1], config.feature_dim), nn.SiLU())
        self.style = nn.Linear(config.feature_dim, config.n_styles)
        self.shape = nn.Linear(config.feature_dim, config.n_shapes)
        self.colour = nn.Linear(config.feature_dim, config.n_colours)
        r = config.resolution
        c = (torch.arange(r, dtype=torch.float32) + 0.5) / r * 2 - 1
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        self.register_buffer("coords", torch.stack([xx, yy])[None], persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.cat([images, self.coords.expand(images.shape[0], -1, -1, -1)], dim=1)
        heat = None
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.config.heatmap_level:
                heat = self.heatmap(x)
        feats = self.penultimate(x.mean(dim=(2, 3)))
        # soft-argmax: the expected cell centre under the heat map's softmax, in pixels
        n, _, h, w = heat.shape
        prob = F.softmax(heat.reshape(n, -1), dim=1).reshape(n, h, w)
        cell = self.config.resolution / w
        centres = (torch.arange(w, dtype=prob.dtype, device=prob.device) + 0.5) * cell
        pos = torch.stack([(prob.sum(1) * centres).sum(1), (prob.sum(2) * centres).sum(1)], dim=1)
        return {
            "features": feats,
            "style": self.style(feats),
            "shape": self.shape(feats),
            "colour": self.colour(feats),
            "position": pos,
        }


class Judge:
    """A frozen :class:`JudgeNet` in eval mode with batched, gradient-free prediction."""

    def __init__(self, net: JudgeNet, device: str | torch.device = "cpu", batch_size: int = 256):
        self.net = net.to(device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def _check(self, images: torch.Tensor) -> None:
        r = self.net.config.resolution
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (3, r, r):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"judge expects images of shape (N, 3, {r}, {r}) in [-1, 1], got {shape}")

    @torch.no_grad()
    def _run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self._check(images)
        outs = []
        for lo in range(0, images.shape[0], self.batch_size):
            # generators overshoot [-1, 1]; judge what would be saved as an image
            x = images[lo : lo + self.batch_size].to(self.device, torch.float32).clamp(-1, 1)
            outs.append({k: v.cpu() for k, v in self.net(x).items()})
        if not outs:
            empty = self.net(torch.zeros(1, 3, self.net.config.resolution, self.net.config.resolution, device=self.device))
            return {k: v[:0].cpu() for k, v in empty.items()}
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs: style/shape/colour logits, position (N, 2) and features."""
        return self._run(images)

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Labels for images in [-1, 1] (N, 3, 64, 64): style/shape/colour indices and position (x, y) px."""
        out = self._run(images)
        return {
            "style": out["style"].argmax(1),
            "shape": out["shape"].argmax(1),
            "colour": out["colour"].argmax(1),
            "position": out["position"],
        }

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128), e.g. for a Fréchet distance."""
        return self._run(images)["features"]


def save_judge(net: JudgeNet, directory: str | Path, extra: dict | None = None) -> None:
    """Write ``config.json`` + ``judge.safetensors`` (float16 weights) atomically."""
    from safetensors.torch import save

    from nada._io import atomic_write_bytes, atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, save(state))
    meta = {"config": asdict(net.config), "labels": {"style": STYLES, "shape": SHAPES, "colour": COLOURS}}
    if extra:
        meta["training"] = extra
    atomic_write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2) + "\n")
    for f in (WEIGHTS_NAME, CONFIG_NAME):
        (directory / f).chmod(0o644)  # package data


def load_judge(device: str | torch.device = "cpu", directory: str | Path | None = None) -> Judge:
    """The shipped judge (or one saved by :func:`save_judge` in ``directory``), frozen, in eval mode.

    A directory without both files raises :class:`FileNotFoundError`; one whose files are
    malformed, damaged or do not fit together raises :class:`ValueError`; each in one line.
    """
    from safetensors.torch import load_file

    directory = Path(directory) if directory is not None else JUDGE_DIR
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file() or not w_path.is_file():
        raise FileNotFoundError(f"no judge in {directory} (expected {CONFIG_NAME} and {WEIGHTS_NAME})")

    def bad(what: str) -> ValueError:
        return ValueError(f"{directory}: expected a judge saved by save_judge; found {what}")

    try:
        meta = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise bad(f"a {CONFIG_NAME} that is not readable JSON ({_first_line(e)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise bad(f"a {CONFIG_NAME} without a 'config' mapping")
    labels = meta.get("labels", {})
    if not isinstance(labels, dict):
        raise bad(f"a {CONFIG_NAME} whose 'labels' is not a mapping")
    if tuple(labels.get("style", STYLES)) != STYLES or tuple(labels.get("shape", SHAPES)) != SHAPES or tuple(labels.get("colour", COLOURS)) != COLOURS:
        raise ValueError(f"judge in {directory} was trained on different label sets than this renderer")
    try:
        config = JudgeConfig.from_dict(meta["config"])
        if not (config.widths and all(isinstance(w, int) and 0 < w <= 4096 for w in config.widths)
                and 0 <= config.heatmap_level < len(config.widths) and 0 < config.feature_dim <= 4096):
            raise ValueError(f"implausible sizes in {asdict(config)}")
        net = JudgeNet(config)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise bad(f"a config the judge network cannot be built from ({_first_line(e)})") from None
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(w_path)).items()}
    except Exception as e:  # safetensors' own error types for damaged files
        raise bad(f"a {WEIGHTS_NAME} that cannot be read ({_first_line(e)})") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise bad(f"weights that do not fit its {CONFIG_NAME} ({_first_line(e)})") from None
    return Judge(net, device)


def _first_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:160] or type(e).__name__

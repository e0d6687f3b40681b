"""LPIPS-VGG (Zhang et al. 2018, v0.1 "net-lin") in plain PyTorch, for users who have its weights.

Two files, loaded by path as plain tensors (safetensors, or ``torch.save`` files read by our own reader,
which never runs code from a file):

* the ImageNet VGG16 weights in the standard layout of the vision library's model zoo
  (``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight`` and ``.bias``; classifier keys ignored),
  e.g. ``~/.cache/torch/hub/checkpoints/vgg16-397923af.pth``;
* the LPIPS linear layers of the ``lpips`` package (``vgg.pth``: ``lin0.model.1.weight`` ...
  ``lin4.model.1.weight``, shapes (1, C, 1, 1) for C = 64, 128, 256, 512, 512).

Distance between images ``x``, ``y`` in [-1, 1]: both are shifted and scaled per channel (shift
(-0.030, -0.088, -0.188), scale (0.458, 0.448, 0.450)); VGG16's activations after relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3 are unit-normalised along channels; per layer the squared difference is
weighted per channel by the linear layer, summed over channels and averaged over positions; the five
layers add up.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError

__all__ = ["LPIPS", "VGG16_CONVS", "load_lpips"]

# (index in the model zoo's `features`, in channels, out channels); a max-pool follows indices 2, 7, 14, 21
VGG16_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
               (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512))
TAPS = (2, 7, 14, 21, 28)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 follow these convolutions
POOL_AFTER = (2, 7, 14, 21)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """LPIPS-VGG with the standard key layouts; ``forward(x, y)`` -> (N,) distances."""

    def __init__(self):
        super().__init__()
        self.features = nn.ModuleDict({str(i): nn.Conv2d(cin, cout, 3, padding=1) for i, cin, cout in VGG16_CONVS})
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in LPIPS_CHANNELS])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = (x - self.shift) / self.scale
        for i, _, _ in VGG16_CONVS:
            x = F.relu(self.features[str(i)](x))
            if i in TAPS:
                out.append(x)
            if i in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(x.shape[0])
        for fx, fy, lin in zip(self.taps(x), self.taps(y), self.lins):
            nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny).pow(2)).mean((1, 2, 3))
        return total


def _read(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:120]})") from None
    from .generators.safe_torch import read_state_dict

    return read_state_dict(path)


def load_lpips(vgg_path: str | os.PathLike, lin_path: str | os.PathLike, device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS-VGG from the ImageNet VGG16 weights and the LPIPS linear layers (one-line errors on foreign files)."""
    vgg, lin = _read(vgg_path), _read(lin_path)
    model = LPIPS()
    state: dict[str, torch.Tensor] = {}
    for i, cin, cout in VGG16_CONVS:
        for kind, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{i}.{kind}"
            t = vgg.get(key)
            if t is None or tuple(t.shape) != shape:
                found = "missing" if t is None else f"of shape {tuple(t.shape)}"
                raise CheckpointError(f"{vgg_path}: expected ImageNet VGG16 weights ({key} of shape {shape}); it is {found}")
            state[f"features.{i}.{kind}"] = t.float()
    for k, c in enumerate(LPIPS_CHANNELS):
        key = f"lin{k}.model.1.weight"
        t = lin.get(key)
        if t is None or tuple(t.shape) != (1, c, 1, 1):
            found = "missing" if t is None else f"of shape {tuple(t.shape)}"
            raise CheckpointError(f"{lin_path}: expected LPIPS linear layers ({key} of shape (1, {c}, 1, 1)); it is {found}")
        state[f"lins.{k}.weight"] = t.float()
    if not all(torch.isfinite(v).all() for v in state.values()):
        raise CheckpointError(f"{vgg_path} / {lin_path}: non-finite weights")
    state["shift"], state["scale"] = model.shift, model.scale
    model.load_state_dict(state)
    return model.to(device).eval().requires_grad_(False)

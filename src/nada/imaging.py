"""Image helpers in plain torch + Pillow (no torchvision): conversion, grids, PNG output."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ._io import atomic_path


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) or (3, H, W) in [-1, 1] -> uint8 array (N, H, W, 3) or (H, W, 3)."""
    x = images.detach().float().cpu()
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if x.ndim == 4:
        return x.permute(0, 2, 3, 1).numpy()
    return x.permute(1, 2, 0).numpy()


def from_uint8(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (N, H, W, 3) -> float tensor in [-1, 1], channels first."""
    t = torch.from_numpy(np.ascontiguousarray(array)).float() / 127.5 - 1.0
    if t.ndim == 3:
        return t.permute(2, 0, 1)
    return t.permute(0, 3, 1, 2)


def load_image(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """Read an image file as (3, H, W) in [-1, 1], optionally resized to size x size."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.LANCZOS)
        return from_uint8(np.array(im))


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile (N, C, H, W) images into one (C, H', W') image, ``nrow`` images per row."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = images.new_full((c, ncol * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def save_image(image: torch.Tensor, path: str | os.PathLike, upscale: int = 1) -> None:
    """Write one (3, H, W) image in [-1, 1] as PNG, atomically. ``upscale`` enlarges with nearest neighbour."""
    im = Image.fromarray(to_uint8(image))
    if upscale > 1:
        im = im.resize((im.width * upscale, im.height * upscale), Image.Resampling.NEAREST)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, upscale: int = 1) -> None:
    save_image(make_grid(images, nrow=nrow), path, upscale=upscale)


def resize(images: torch.Tensor, size: int | Sequence[int], antialias: bool = True) -> torch.Tensor:
    """Bicubic resize of (N, C, H, W) to ``size`` (int = square); differentiable."""
    if isinstance(size, int):
        size = (size, size)
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=tuple(size), mode="bicubic", align_corners=False, antialias=antialias)

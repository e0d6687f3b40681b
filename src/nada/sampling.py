"""Drawing images from a generator (the API behind ``nada sample``).

Image ``i`` of a call with ``seed=s`` is generated from seed ``s + i`` alone: its latent (and,
for ``noise_mode="random"``, its noise maps) come from ``torch.Generator().manual_seed(s + i)``.
So an image does not depend on ``n`` or on the batch size, and ``000042.png`` is always the
image of seed 42.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .generators.stylegan2 import NOISE_MODES, Generator
from .imaging import save_grid, save_image

__all__ = ["sample_images", "write_samples", "image_name", "SampleFiles"]


def image_name(seed: int) -> str:
    return f"{seed:06d}.png"


@torch.no_grad()
def sample_images(G: Generator, n: int, seed: int = 0, truncation_psi: float = 1.0,
                  noise_mode: str = "const", batch_size: int = 8) -> torch.Tensor:
    """``n`` images (n, 3, R, R) in [-1, 1] on the CPU, image ``i`` drawn from seed ``seed + i``."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    device = next(G.parameters()).device
    noise_shapes = [tuple(b.shape[-2:]) for b in G.noise_buffers()]
    out = []
    for start in range(0, n, batch_size):
        seeds = range(seed + start, seed + min(n, start + batch_size))
        zs, noises = [], []
        for s in seeds:
            gen = torch.Generator().manual_seed(s)
            zs.append(torch.randn(G.z_dim, generator=gen))
            if noise_mode == "random":
                noises.append([torch.randn(1, *shape, generator=gen) for shape in noise_shapes])
        z = torch.stack(zs).to(device)
        ws = G.mapping(z, truncation_psi=truncation_psi)
        if noise_mode == "random":
            per_layer = [torch.stack([maps[i] for maps in noises]).to(device) for i in range(len(noise_shapes))]
            images = G.synthesis(ws, noise=per_layer)
        else:
            images = G.synthesis(ws, noise_mode=noise_mode)
        out.append(images.float().cpu())
    return torch.cat(out)


@dataclass
class SampleFiles:
    images: list[Path]
    grid: Path


def write_samples(images: torch.Tensor, out_dir: str | os.PathLike, first_seed: int = 0,
                  grid_name: str = "grid.png") -> SampleFiles:
    """Write ``images`` as ``<seed>.png`` (seeds from ``first_seed`` on) plus a grid, each file atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = out_dir / image_name(first_seed + i)
        save_image(image, path)
        paths.append(path)
    grid = out_dir / grid_name
    save_grid(images, grid)
    return SampleFiles(paths, grid)

"""Drawing images from a generator (the API behind ``nada sample``).

Image ``i`` of a call with ``seed=s`` is generated from seed ``s + i`` alone: its latent (and,
for ``noise_mode="random"``, its noise maps) come from ``torch.Generator().manual_seed(s + i)``.
So an image does not depend on ``n`` or on the batch size, and ``000042.png`` is always the
image of seed 42.
"""
from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .generators.stylegan2 import NOISE_MODES, Generator
from .imaging import save_grid, save_image

__all__ = ["sample_images", "write_samples", "image_name", "SampleFiles"]

MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds


def image_name(seed: int) -> str:
    return f"{seed:06d}.png"


@torch.no_grad()
def sample_images(G: Generator, n: int, seed: int = 0, truncation_psi: float = 1.0,
                  noise_mode: str = "const", batch_size: int = 8) -> torch.Tensor:
    """``n`` images (n, 3, R, R) in [-1, 1] on the CPU, image ``i`` drawn from seed ``seed + i``."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    if not 0 <= seed or seed + n - 1 > MAX_SEED:
        raise ValueError(f"seeds must lie in 0..2**63-1, got {seed}..{seed + n - 1}")
    if not math.isfinite(truncation_psi):
        raise ValueError(f"truncation_psi must be a finite number, got {truncation_psi}")
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
    """Write ``images`` as ``<seed>.png`` (seeds from ``first_seed`` on) plus a grid, each file atomically.

    An unusable ``out_dir`` or a failed write (a full disk) raises :class:`nada._io.OutputError`
    in one line that says which file failed and how many were written before it; a directory
    this call created is removed again when nothing could be written into it.
    """
    from ._io import OutputError, describe_os_error, prepare_output_dir, remove_created_dirs

    out_dir = Path(out_dir)
    created = prepare_output_dir(out_dir, "--out")
    paths: list[Path] = []
    grid = out_dir / grid_name
    try:
        for i, image in enumerate(images):
            path = out_dir / image_name(first_seed + i)
            save_image(image, path)
            paths.append(path)
        save_grid(images, grid)
    except OSError as e:
        if not paths:
            remove_created_dirs(created)
        where = f" while writing {e.filename}" if e.filename else ""
        what = describe_os_error(OSError(e.errno, e.strerror))
        kept = (f"{len(paths)} of {len(images)} images were written ({paths[0].name} ... {paths[-1].name})" if paths
                else "nothing was written")
        fix = "free some space and run again" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix the cause and run again"
        raise OutputError(e.errno or errno.EIO, f"{what}{where}; {kept}, no grid; {fix}") from None
    return SampleFiles(paths, grid)

"""Differentiable augmentation of generated images before CLIP encoding, and patch crops.

A small CLIP is easy to fool: the generator can learn pixel patterns that move the
embedding without changing what a person sees. Encoding several randomly cropped,
flipped, slightly rotated and noised views and averaging their embeddings makes such
patterns much less effective, because they must survive every view.

The trained and frozen images of a pair get the *same* random parameters, so their
difference in CLIP space compares like with like; with independent draws the direction
dI would be dominated by the augmentation itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .losses import unit

__all__ = ["AugmentParams", "DifferentiableAugment", "average_views", "crop_patches", "sample_patch_boxes"]


@dataclass
class AugmentParams:
    """One draw of augmentation parameters for ``n_views`` views of ``batch`` images.

    Row ``v * batch + n`` of ``theta``/``noise`` belongs to view v of image n.
    """

    n_views: int
    batch: int
    theta: torch.Tensor  # (V*N, 2, 3) affine maps from output to input coordinates in [-1, 1]
    noise: torch.Tensor | None  # (V*N, 3, H, W) additive noise, or None

    def to(self, device: torch.device) -> "AugmentParams":
        noise = None if self.noise is None else self.noise.to(device)
        return AugmentParams(self.n_views, self.batch, self.theta.to(device), noise)


class DifferentiableAugment:
    """Random resized crops, horizontal flips, small rotations/aspect changes and noise.

    ``crop_scale`` bounds the crop side as a fraction of the image side; ``aspect`` the
    crop's width/height ratio; ``max_rotate_deg`` the rotation; ``max_noise`` the standard
    deviation of additive Gaussian noise, drawn per view in ``[0, max_noise]`` (pixel
    units of the [-1, 1] range). Everything is done with ``affine_grid``/``grid_sample``,
    so gradients reach the images; reflection padding avoids black borders that CLIP
    would read as content.
    """

    def __init__(
        self,
        n_views: int,
        crop_scale: tuple[float, float] = (0.8, 1.0),
        aspect: tuple[float, float] = (0.9, 1.1),
        flip: bool = True,
        max_rotate_deg: float = 8.0,
        max_noise: float = 0.03,
    ):
        if int(n_views) < 1:
            raise ValueError(f"n_views must be at least 1, got {n_views}")
        lo, hi = crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}")
        if not 0.0 < aspect[0] <= aspect[1]:
            raise ValueError(f"aspect must satisfy 0 < lo <= hi, got {aspect}")
        if max_rotate_deg < 0 or max_noise < 0:
            raise ValueError("max_rotate_deg and max_noise must be non-negative")
        self.n_views = int(n_views)
        self.crop_scale = (float(lo), float(hi))
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.flip = bool(flip)
        self.max_rotate_deg = float(max_rotate_deg)
        self.max_noise = float(max_noise)

    def sample(
        self,
        batch: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> AugmentParams:
        """Draw parameters for ``batch`` images of ``height`` x ``width``.

        Random numbers come from ``generator`` (on its device) for reproducibility; the
        result is moved to ``device``.
        """
        m = self.n_views * batch
        gdev = generator.device if generator is not None else torch.device("cpu")

        def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(*shape, generator=generator, device=gdev)

        scale = uniform(*self.crop_scale, m)
        log_r = uniform(math.log(self.aspect[0]), math.log(self.aspect[1]), m)
        sx = (scale * torch.exp(0.5 * log_r)).clamp(max=1.0)
        sy = (scale * torch.exp(-0.5 * log_r)).clamp(max=1.0)
        # crop centre anywhere the crop still fits inside the image
        cx = uniform(-1.0, 1.0, m) * (1.0 - sx)
        cy = uniform(-1.0, 1.0, m) * (1.0 - sy)
        angle = uniform(-1.0, 1.0, m) * math.radians(self.max_rotate_deg)
        if self.flip:
            sign = torch.where(torch.rand(m, generator=generator, device=gdev) < 0.5, -1.0, 1.0)
        else:
            sign = torch.ones(m, device=gdev)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # input = R(angle) @ diag(sign * sx, sy) @ output + centre
        theta = torch.stack(
            [
                torch.stack([cos * sign * sx, -sin * sy, cx], dim=-1),
                torch.stack([sin * sign * sx, cos * sy, cy], dim=-1),
            ],
            dim=1,
        )
        noise = None
        if self.max_noise > 0:
            std = uniform(0.0, self.max_noise, m).view(m, 1, 1, 1)
            noise = std * torch.randn(m, 3, height, width, generator=generator, device=gdev)
        params = AugmentParams(self.n_views, batch, theta, noise)
        return params.to(torch.device(device)) if device is not None else params

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """(N, 3, H, W) -> (V*N, 3, H, W) augmented views, differentiable in ``images``."""
        n, c, h, w = images.shape
        if n != params.batch:
            raise ValueError(f"augmentation drawn for {params.batch} images, got {n}")
        if params.noise is not None and tuple(params.noise.shape[-2:]) != (h, w):
            raise ValueError(f"augmentation noise is {tuple(params.noise.shape[-2:])}, images are {(h, w)}")
        x = images.repeat(params.n_views, 1, 1, 1)
        theta = params.theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, [x.shape[0], c, h, w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if params.noise is not None:
            x = x + params.noise.to(device=x.device, dtype=x.dtype)
        return x


def average_views(embeddings: torch.Tensor, n_views: int) -> torch.Tensor:
    """(V*N, D) view embeddings -> (N, D): ``unit(mean_v unit(e_v))``."""
    vn, d = embeddings.shape
    if vn % n_views:
        raise ValueError(f"{vn} embeddings do not split into {n_views} views")
    return unit(unit(embeddings).view(n_views, vn // n_views, d).mean(0))


def sample_patch_boxes(
    batch: int, count: int, height: int, width: int, size_frac: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, int]:
    """Random square patches: (batch*count, 3) rows ``[image index, top, left]`` and the side.

    The side is ``size_frac`` of the shorter image side. Drawn on the CPU so the same
    boxes can be cut from the trained and the frozen images.
    """
    if not 0.0 < size_frac <= 1.0:
        raise ValueError(f"patch size fraction must be in (0, 1], got {size_frac}")
    if count < 1:
        raise ValueError(f"patch count must be at least 1, got {count}")
    side = max(1, int(round(size_frac * min(height, width))))
    gen = generator if generator is not None and generator.device.type == "cpu" else None
    if generator is not None and gen is None:
        # boxes are a handful of integers: draw them on the CPU from a seed taken from the device generator
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)))
    m = batch * count
    top = torch.randint(0, height - side + 1, (m,), generator=gen)
    left = torch.randint(0, width - side + 1, (m,), generator=gen)
    idx = torch.arange(batch).repeat_interleave(count)
    return torch.stack([idx, top, left], dim=1), side


def crop_patches(images: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
    """Cut the patches described by :func:`sample_patch_boxes`: (len(boxes), C, side, side)."""
    return torch.stack([images[int(n), :, int(t) : int(t) + side, int(l) : int(l) + side] for n, t, l in boxes.tolist()])

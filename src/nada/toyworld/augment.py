"""Random image augmentations in plain torch, used to train the built-in CLIPs and the judge.

Everything is differentiable with respect to the images (affine resampling with
``grid_sample``, additive noise, a separable blur, brightness/contrast changes), and the
geometric part also maps points, so a pixel position label can follow its object.
None of these change an object's hue, so colour labels stay valid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine_matrices(
    n: int,
    generator: torch.Generator | None = None,
    *,
    scale: tuple[float, float] = (0.85, 1.05),
    max_rotate_deg: float = 8.0,
    max_translate: float = 0.06,
    flip: bool = True,
) -> torch.Tensor:
    """(n, 2, 3) matrices in ``affine_grid``'s convention (output coords -> input coords, [-1, 1] frame).

    ``scale`` < 1 zooms in (a crop), ``max_translate`` is a fraction of the half-width.
    """
    u = torch.rand(n, 4, generator=generator)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    a = math.radians(max_rotate_deg) * (2 * u[:, 1] - 1)
    tx = max_translate * (2 * u[:, 2] - 1)
    ty = max_translate * (2 * u[:, 3] - 1)
    sign = torch.ones(n)
    if flip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = s * torch.cos(a) * sign
    theta[:, 0, 1] = -s * torch.sin(a)
    theta[:, 1, 0] = s * torch.sin(a) * sign
    theta[:, 1, 1] = s * torch.cos(a)
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    return theta


def apply_affine(images: torch.Tensor, theta: torch.Tensor, padding_mode: str = "reflection") -> torch.Tensor:
    """Resample (N, C, H, W) images with per-image matrices from :func:`random_affine_matrices`."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def map_points(points: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Where pixel points (N, 2) (x, y, pixel-centre frame) land after :func:`apply_affine`."""
    u = points / size * 2 - 1  # to the [-1, 1] frame of align_corners=False
    a, t = theta[:, :, :2], theta[:, :, 2]
    # the matrix maps output -> input, so invert it for input -> output
    out = torch.linalg.solve(a, (u - t).unsqueeze(-1)).squeeze(-1)
    return (out + 1) / 2 * size


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (N,) in pixels (sigma ~0 leaves the image)."""
    n, c, h, w = images.shape
    radius = 3
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    sig = sigma.to(images).clamp_min(1e-3)[:, None]
    k = torch.exp(-(x[None, :] ** 2) / (2 * sig**2))
    k = k / k.sum(dim=1, keepdim=True)  # (N, K)
    # grouped conv: one kernel per image, repeated over channels
    weight = k.repeat_interleave(c, dim=0)  # (N*C, K)
    flat = images.reshape(1, n * c, h, w)
    flat = F.pad(flat, (radius, radius, 0, 0), mode="replicate")
    flat = F.conv2d(flat, weight[:, None, None, :], groups=n * c)
    flat = F.pad(flat, (0, 0, radius, radius), mode="replicate")
    flat = F.conv2d(flat, weight[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def photometric(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    brightness: float = 0.08,
    contrast: float = 0.15,
    saturation: float = 0.15,
    noise_std: float = 0.04,
    max_blur_sigma: float = 0.8,
) -> torch.Tensor:
    """Random brightness/contrast/saturation, blur and Gaussian noise on images in [-1, 1] (hue kept)."""
    n = images.shape[0]
    u = torch.rand(n, 5, generator=generator).to(images)
    x = images
    blur = max_blur_sigma * u[:, 0] * (u[:, 0] > 0.5)  # half the images stay sharp
    if max_blur_sigma > 0:
        x = gaussian_blur(x, blur)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + contrast * (2 * u[:, 1] - 1)).view(n, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * (1 + saturation * (2 * u[:, 2] - 1)).view(n, 1, 1, 1) + grey
    x = x + (brightness * (2 * u[:, 3] - 1)).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=generator).to(x)
    x = x + noise * (noise_std * u[:, 4]).view(n, 1, 1, 1)
    return x.clamp(-1, 1)


def darken(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale [0, 1] intensities by ``factor`` (N,): a dimmer exposure, hue kept ([-1, 1] images)."""
    return (images + 1) * factor.to(images).view(-1, 1, 1, 1) - 1


def wash_out(images: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Keep ``amount`` (N,) of each image's [0, 1] intensities and fill the rest with white: a faded print."""
    a = amount.to(images).view(-1, 1, 1, 1)
    return images * a + (1 - a)


def tone(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    p: float = 0.5,
    *,
    darkest: float = 0.25,
    palest: float = 0.35,
) -> torch.Tensor:
    """With probability ``p`` per image, a strong exposure change: half darkened (intensity x
    U(darkest, 1)), half washed out towards white (U(palest, 1) of it kept).

    No style of the renderer is defined by how bright it is, so a model trained with this must
    read a style from what is drawn (outlines, hatching, glow, blocks), not from a dark or a pale sheet.
    """
    n = images.shape[0]
    u = torch.rand(n, 3, generator=generator)
    chosen = u[:, 0] < p
    dark = chosen & (u[:, 1] < 0.5)
    pale = chosen & ~dark
    x = images
    x = torch.where(dark.view(-1, 1, 1, 1).to(x.device), darken(x, darkest + (1 - darkest) * u[:, 2]), x)
    x = torch.where(pale.view(-1, 1, 1, 1).to(x.device), wash_out(x, palest + (1 - palest) * u[:, 2]), x)
    return x


def augment(images: torch.Tensor, generator: torch.Generator | None = None, **affine_kwargs) -> torch.Tensor:
    """One random view of each image: affine jitter (crop/flip/rotate/shift), then photometric noise."""
    theta = random_affine_matrices(images.shape[0], generator, **affine_kwargs)
    return photometric(apply_affine(images, theta), generator)

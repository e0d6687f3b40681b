"""Interpolation and video: move between generators or domain strengths, walk the latent space, apply an
edit over time, any of them together, and write mp4 (``imageio`` with ``imageio-ffmpeg``'s own ffmpeg) or GIF.

A video is a sequence of frames; frame ``f`` has a progress ``t = f / (frames - 1)`` in [0, 1] and draws

* the codes of the walk at ``t``: through ``seeds`` in turn and back to the first (a loop), by spherical
  interpolation of Z (``space="z"``) or linear interpolation of W (``space="w"``); one code when there is
  no walk;
* edited by ``direction`` at the strength interpolated linearly over ``strengths`` (if any);
* with each panel's generator at ``t``: a fixed generator, a domain at strength ``t`` (0 = the base
  exactly, 1 = the domain), or the base's weights moved linearly towards an adapted generator's
  (``(1 - t) · base + t · adapted``, every tensor of the same name and shape).

Several panels are tiled into a grid (e.g. base, sketch, watercolor, pixel art), each panel showing every
code of the frame side by side.
"""
from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .errors import NadaError

__all__ = ["Panel", "VideoError", "lerp_generators", "parse_panel", "render_video", "slerp", "walk_codes", "write_video"]

VIDEO_SUFFIXES = (".mp4", ".gif")
MAX_FRAMES = 10_000


class VideoError(NadaError, ValueError):
    """Bad video options: one line."""


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of rows of ``a`` and ``b`` (their norms interpolated linearly)."""
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * ((1 - t) * na + t * nb)


def walk_codes(G: Any, seeds: Sequence[int], t: float, space: str = "z", truncation: float = 1.0) -> torch.Tensor:
    """The walk's W+ code (1, num_ws, w_dim) at progress ``t``: seeds in turn, back to the first."""
    device = G.w_avg.device
    from .generators.latents import seed_latents

    zs = seed_latents(G.z_dim, seeds).to(device)
    if len(seeds) == 1:
        with torch.no_grad():
            return G.mapping(zs, truncation_psi=truncation)
    pos = (t % 1.0) * len(seeds)
    i = int(pos) % len(seeds)
    j, u = (i + 1) % len(seeds), pos - int(pos)
    with torch.no_grad():
        if space == "z":
            return G.mapping(slerp(zs[i:i + 1], zs[j:j + 1], u), truncation_psi=truncation)
        ws = G.mapping(zs[[i, j]], truncation_psi=truncation)
        return (1 - u) * ws[:1] + u * ws[1:]


def lerp_generators(base: Any, adapted: Any, t: float, out: Any | None = None) -> Any:
    """A generator whose every tensor is ``(1 - t) · base + t · adapted`` (same names and shapes required)."""
    a, b = base.state_dict(), adapted.state_dict()
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise VideoError("the two generators differ in architecture; only generators of one latent space interpolate")
    out = out if out is not None else copy.deepcopy(base)
    with torch.no_grad():
        out.load_state_dict({k: (a[k] if not a[k].is_floating_point() else torch.lerp(a[k], b[k].to(a[k]), t)) for k in a})
    return out


@dataclass
class Panel:
    """One tile of the video: ``at(t)`` gives the generator drawn at progress ``t``."""

    label: str
    at: Callable[[float], Any]

    @classmethod
    def fixed(cls, label: str, G: Any) -> "Panel":
        return cls(label, lambda t, G=G: G)

    @classmethod
    def domain(cls, label: str, G: Any, domain: Any) -> "Panel":
        from .domains.domain import apply_domains

        return cls(label, lambda t: apply_domains(G, [(domain, t)], allow_other_base=True) if t > 0 else G)

    @classmethod
    def towards(cls, label: str, base: Any, adapted: Any) -> "Panel":
        work = copy.deepcopy(base)
        return cls(label, lambda t: lerp_generators(base, adapted, t, out=work))


@torch.no_grad()
def render_video(panels: Sequence[Panel], frames: int, *, seeds: Sequence[int] = (0,), space: str = "z",
                 truncation: float = 1.0, walk: bool = False, direction: torch.Tensor | None = None,
                 strengths: Sequence[float] = (), columns: int | None = None, size: int | None = None,
                 latents: torch.Tensor | None = None, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 progress: bool = True) -> np.ndarray:
    """Frames (F, H, W, 3) uint8. Without ``walk`` every seed (or every code of ``latents``, (N, num_ws, w_dim),
    e.g. inverted photos) is shown side by side in each panel; with it the code travels through them and back
    (``latents``: linearly in W+). ``transform`` moves the codes last (e.g. a latent mapper)."""
    from .editing import apply_direction
    from .imaging import make_grid, resize, to_uint8

    if not panels:
        raise VideoError("a video needs at least one panel")
    if not 1 <= frames <= MAX_FRAMES:
        raise VideoError(f"frames must be 1 to {MAX_FRAMES}, got {frames}")
    if space not in ("z", "w"):
        raise VideoError(f"space must be z or w, got {space!r}")
    ref = panels[0].at(0.0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=frames, desc="video", unit="frame", dynamic_ncols=True)
    out = []
    try:
        for f in range(frames):
            t = f / (frames - 1) if frames > 1 else 0.0
            if latents is not None:
                ws = _along_codes(latents, t) if walk else latents
                ws = ws.to(ref.w_avg.device)
            elif walk:
                ws = walk_codes(ref, seeds, t, space, truncation)
            else:
                ws = torch.cat([walk_codes(ref, [s], 0.0, space, truncation) for s in seeds])
            if direction is not None and strengths:
                ws = apply_direction(ws, direction, _along(strengths, t))
            if transform is not None:
                ws = transform(ws)
            tiles = []
            for panel in panels:
                G = panel.at(t)
                images = G.synthesis(ws.to(G.w_avg.device), noise_mode="const").float().cpu().clamp(-1, 1)
                if size is not None and images.shape[-1] != size:
                    images = resize(images, size).clamp(-1, 1)
                tiles.append(make_grid(images, nrow=len(images), padding=0) if len(images) > 1 else images[0])
            grid = make_grid(torch.stack(tiles), nrow=columns or math.ceil(math.sqrt(len(tiles))), padding=2)
            out.append(to_uint8(grid))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return np.stack(out)


def _along_codes(latents: torch.Tensor, t: float) -> torch.Tensor:
    """The walk through ``latents`` (N, num_ws, w_dim) and back to the first, at progress ``t``: (1, num_ws, w_dim)."""
    n = len(latents)
    if n == 1:
        return latents[:1]
    pos = (t % 1.0) * n
    i = int(pos) % n
    u = pos - int(pos)
    return (1 - u) * latents[i:i + 1] + u * latents[(i + 1) % n:(i + 1) % n + 1]


def _along(values: Sequence[float], t: float) -> float:
    """Piecewise-linear interpolation through ``values`` at progress ``t``."""
    if len(values) == 1:
        return float(values[0])
    pos = t * (len(values) - 1)
    i = min(int(pos), len(values) - 2)
    return float(values[i] + (pos - i) * (values[i + 1] - values[i]))


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: float = 24.0) -> Path:
    """Write (F, H, W, 3) uint8 frames as ``.mp4`` (H.264 through imageio-ffmpeg) or ``.gif``, atomically."""
    import imageio.v3 as iio

    from .files import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise VideoError(f"{path}: write .mp4 or .gif")
    if not (0 < fps <= 240) or not math.isfinite(fps):
        raise VideoError(f"fps must be in (0, 240], got {fps}")
    if suffix == ".mp4" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        # H.264 with yuv420p needs even sides: pad one white row / column
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), constant_values=255)
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            iio.imwrite(tmp, frames, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                        pixelformat="yuv420p", macro_block_size=2, output_params=["-f", "mp4"])
        else:
            iio.imwrite(tmp, frames, extension=".gif", plugin="pillow", duration=1000.0 / fps, loop=0)
        if tmp.stat().st_size == 0:
            raise VideoError(f"{path}: the encoder wrote nothing (see its messages above)")
    return path


def parse_panel(spec: str, G: Any, device: Any = None) -> tuple[str, Any, str]:
    """``base`` | a generator (path or name) | a domain file | ``HYPERFILE@TEXT`` -> (label, object, kind)
    with kind ``base``, ``generator`` or ``domain``."""
    from .domains.domain import DomainError, load_domain

    if spec == "base":
        return "base", G, "base"
    path, at, text = spec.partition("@")
    if os.path.isfile(path):
        try:
            d = load_domain(path)
        except DomainError:  # not a domain: read it as a generator
            d = None
        if d is not None:
            if getattr(d, "param", None) == "hyper":
                if not at:
                    raise VideoError(f"--panel {spec}: a hypernetwork file needs @TEXT, e.g. {path}@watercolor")
                return text, d.domain(text), "domain"
            if at:
                raise VideoError(f"--panel {spec}: @TEXT is for hypernetwork files")
            return Path(path).parent.name or Path(path).stem, d, "domain"
    from .generators.checkpoints import load_generator

    from .generators.latents import latent_space_mismatch

    A = load_generator(spec, device=device).eval().requires_grad_(False)
    mismatch = latent_space_mismatch(A, G)
    if mismatch:
        raise VideoError(f"--panel {spec}: {mismatch}")
    return (Path(spec).parent.name or Path(spec).stem) if os.path.isfile(spec) else spec, A, "generator"

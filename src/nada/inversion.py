"""Bring real images into a generator: optimisation-based inversion to W+ codes.

For each image the code is found by gradient descent on a distance between the generator's image and
the target, as NVIDIA's StyleGAN2 projector does it:

1. **W**: one ``w`` per image (broadcast to every row), started at ``w_avg``, ``w_steps`` steps;
2. **W+**: the rows apart, started from the W result, ``wplus_steps`` steps;

each phase with Adam (betas 0.9, 0.999), a learning rate ramped up over the first ``lr_rampup`` of
its steps and down with a cosine over the last ``lr_rampdown`` (the projector's 0.05 and 0.25), and
Gaussian noise added to the code with a scale of ``w_noise * std(W)``, fading out quadratically by
``noise_ramp`` (0.75) of the steps. With ``optimize_noise`` the per-layer noise maps train too, with
the projector's regulariser (squared autocorrelation at one pixel's shift, over a pyramid of each
map) and renormalised to mean 0, variance 1 after each step.

The distance (:class:`ImageDistance`) needs nothing downloaded: mean squared pixel error at several
scales (the image, then average-pooled by 2, 4, ...), plus, when a CLIP is given, ``1 - cos`` of the
CLIP image embeddings, plus LPIPS-VGG when the user has its weights (:mod:`nada.lpips`). Every image is optimised independently (its loss touches only its own code),
so the batch size changes speed, not results.

With an encoder (:mod:`nada.encoder`: e4e or pSp checkpoints) the codes come from one pass of the
encoder instead, optionally refined by ``refine_steps`` W+ steps from there (no code noise).

Images are read as RGB, resized so the shorter side is the generator's resolution, and centre-cropped
(:func:`load_images`). Face generators (FFHQ) expect faces aligned as in their training data: align
your photos first (docs/real-images.md).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from .errors import NadaError
from .options import check_fields, number, option

__all__ = ["ImageDistance", "InversionError", "InversionResult", "InvertConfig", "invert", "load_images",
           "load_latents", "save_latents", "list_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
LATENTS_FILE = "latents.safetensors"
MAX_IMAGES = 100_000
MAX_STEPS = 100_000


class InversionError(NadaError, ValueError):
    """Bad input to an inversion (images, latents, options): one line."""


def _flag(name: str, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{name} must be true or false, got {v!r}"


def _rows_spec(name: str, v: Any) -> str | None:
    from .adapt.layers import LayerSpecError, parse_layers

    message = f"{name} {v!r}: expected all, shape, texture, no-fine or comma-separated row indices like 0,1,2"
    if not isinstance(v, str) or v.strip() == "adaptive":
        return message
    try:
        parse_layers(v, None)  # the syntax; the rows' range is checked against the generator by invert()
    except LayerSpecError:
        return message
    return None


@dataclass
class InvertConfig:
    """Options of an inversion (``nada invert`` flags, ``nada.invert(...)`` keywords)."""

    w_steps: int = option(200, check=number(integer=True, lo=0, hi=MAX_STEPS), help="steps optimising one w per image")
    wplus_steps: int = option(200, check=number(integer=True, lo=0, hi=MAX_STEPS),
                              help="steps optimising every W+ row apart, after the w steps")
    lr: float = option(0.1, check=number(integer=False, lo=0, lo_open=True, hi=10),
                       help="peak Adam learning rate (NVIDIA's projector: 0.1)")
    lr_rampup: float = option(0.05, check=number(integer=False, lo=0, hi=1),
                              help="share of each phase's steps over which the learning rate rises")
    lr_rampdown: float = option(0.25, check=number(integer=False, lo=0, hi=1),
                                help="share of each phase's steps over which it falls (cosine)")
    w_noise: float = option(0.05, check=number(integer=False, lo=0, hi=10),
                            help="noise added to the code, as a share of W's standard deviation, fading out")
    noise_ramp: float = option(0.75, check=number(integer=False, lo=0, lo_open=True, hi=1),
                               help="share of each phase's steps by which that code noise has faded")
    optimize_noise: bool = option(False, check=_flag, help="also optimise the generator's noise maps per image")
    noise_regularize: float = option(1e5, check=number(integer=False, lo=0),
                                     help="weight of the noise maps' autocorrelation penalty (with --optimize-noise)")
    pixel_scales: int = option(3, check=number(integer=True, lo=1, hi=8),
                               help="pixel distance at this many scales (each half the previous)")
    lambda_clip: float = option(0.0, check=number(integer=False, lo=0),
                                help="weight of the CLIP image-embedding distance (needs --clip)")
    lambda_lpips: float = option(1.0, check=number(integer=False, lo=0),
                                 help="weight of LPIPS-VGG (used only when its weights are given: --lpips-vgg, --lpips-lin)")
    wplus_rows: str = option("all", check=_rows_spec,
                             help="W+ rows the W+ (or refinement) steps move: all, shape (the coarse half), texture "
                                  "(the fine half), no-fine, or indices like 0,1,2,3; the others keep their start")
    wplus_spread: float = option(0.0, check=number(integer=False, lo=0),
                                 help="weight of a penalty on the W+ rows' spread around their mean (in units of "
                                      "W's variance): keeps codes near W, where adapted generators behave as on samples")
    batch: int = option(8, check=number(integer=True, lo=1, hi=4096), help="images optimised together")
    w_avg_samples: int = option(10_000, check=number(integer=True, lo=2, hi=1_000_000),
                                help="mapping samples estimating W's mean and spread")
    seed: int = option(0, check=number(integer=True, lo=0, hi=2**63 - 1), help="seed of the code noise")
    refine_steps: int = option(0, check=number(integer=True, lo=0, hi=MAX_STEPS),
                               help="with an encoder: W+ steps refining its codes (0: the encoder's codes as they are)")
    refine_lr: float = option(0.01, check=number(integer=False, lo=0, lo_open=True, hi=10),
                              help="with an encoder: peak learning rate of the refinement")

    def __post_init__(self) -> None:
        message = check_fields(self)
        if message:
            raise InversionError(message)
        if self.w_steps + self.wplus_steps == 0:
            raise InversionError("w_steps and wplus_steps are both 0: nothing would be optimised")


# ----------------------------------------------------------------------------- images


def list_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs`` (files, or folders whose image files are taken in name order)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise InversionError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InversionError(f"{path}: no such image file or folder")
    if not files:
        raise InversionError("no images given")
    if len(files) > MAX_IMAGES:
        raise InversionError(f"{len(files)} images; at most {MAX_IMAGES} per call")
    names = [p.stem for p in files]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InversionError(f"several images are named {', '.join(dup[:3])}: outputs are named by file stem")
    return files


def load_images(paths: Sequence[str | os.PathLike], resolution: int) -> torch.Tensor:
    """Images (N, 3, R, R) in [-1, 1]: RGB, the shorter side resized to ``resolution``, centre-cropped."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from .imaging import from_uint8

    out = []
    for path in paths:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                scale = resolution / min(w, h)
                size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
                if size != im.size:
                    im = im.resize(size, Image.Resampling.LANCZOS)
                left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
                im = im.crop((left, top, left + resolution, top + resolution))
                out.append(from_uint8(np.array(im)))
        except (UnidentifiedImageError, OSError) as e:
            raise InversionError(f"{path}: not a readable image ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    return torch.stack(out)


# ----------------------------------------------------------------------------- distance


def downsample(images: torch.Tensor, times: int) -> torch.Tensor:
    for _ in range(times):
        if min(images.shape[-2:]) < 2:
            break
        images = F.avg_pool2d(images, 2)
    return images


LPIPS_SIZE = 256  # LPIPS reads images of at most this size (larger ones are area-downsampled, as the projector does)


def _lpips_input(images: torch.Tensor) -> torch.Tensor:
    return F.interpolate(images, size=(LPIPS_SIZE, LPIPS_SIZE), mode="area") if images.shape[-1] > LPIPS_SIZE else images


class ImageDistance:
    """Per-image distance (N,) between generated and target images in [-1, 1]: the mean squared pixel
    error at ``scales`` scales, summed, plus ``lambda_clip * (1 - cos)`` of CLIP image embeddings, plus
    ``lambda_lpips * LPIPS`` when an LPIPS network is given (:mod:`nada.lpips`)."""

    def __init__(self, targets: torch.Tensor, scales: int = 3, clip: Any = None, lambda_clip: float = 0.0,
                 lpips: Any = None, lambda_lpips: float = 0.0):
        if lambda_clip > 0 and clip is None:
            raise InversionError("lambda_clip > 0 needs a CLIP (--clip NAME)")
        self.scales, self.clip, self.lambda_clip = scales, clip, lambda_clip
        self.lpips, self.lambda_lpips = lpips, lambda_lpips
        self.lpips_target = _lpips_input(targets) if lpips is not None and lambda_lpips > 0 else None
        self.targets = [downsample(targets, s) for s in range(scales)]
        self.target_embedding = None
        if clip is not None and lambda_clip > 0:
            with torch.no_grad():
                self.target_embedding = clip.encode_images(targets)

    def __call__(self, images: torch.Tensor, index: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        total = images.new_zeros(images.shape[0])
        for s in range(self.scales):
            diff = downsample(images, s) - self.targets[s][index]
            total = total + diff.pow(2).flatten(1).mean(1)
        if self.target_embedding is not None:
            e = self.clip.encode_images(images)
            total = total + self.lambda_clip * (1 - (e * self.target_embedding[index]).sum(-1))
        if self.lpips_target is not None:
            total = total + self.lambda_lpips * self.lpips(_lpips_input(images), self.lpips_target[index])
        return total


# ----------------------------------------------------------------------------- optimisation


def learning_rate(t: float, cfg: InvertConfig) -> float:
    """The projector's schedule at progress ``t`` in [0, 1] of a phase."""
    down = min(1.0, (1.0 - t) / cfg.lr_rampdown) if cfg.lr_rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(down * math.pi)
    up = min(1.0, t / cfg.lr_rampup) if cfg.lr_rampup > 0 else 1.0
    return cfg.lr * ramp * up


def noise_penalty(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per image (N,): squared autocorrelation at one pixel's shift, over each map's pyramid (down to 8 px)."""
    total = maps[0].new_zeros(maps[0].shape[0])
    for n in maps:
        while True:
            total = total + (n * torch.roll(n, 1, dims=3)).mean((1, 2, 3)).pow(2)
            total = total + (n * torch.roll(n, 1, dims=2)).mean((1, 2, 3)).pow(2)
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return total


def wplus_spread(ws: torch.Tensor, w_std: float) -> torch.Tensor:
    """Per code (N,): mean squared distance of its W+ rows from their mean, over W's variance ``w_std**2``."""
    return (ws - ws.mean(1, keepdim=True)).pow(2).sum(2).mean(1) / (w_std ** 2)


@torch.no_grad()
def w_statistics(G: Any, samples: int, seed: int = 123) -> tuple[torch.Tensor, float]:
    """Mean of W (w_dim,) and the root mean squared distance from it, from ``samples`` mapping draws."""
    device = G.w_avg.device if hasattr(G, "w_avg") else next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for lo in range(0, samples, 4096):
        z = torch.randn(min(4096, samples - lo), G.z_dim, generator=gen).to(device)
        ws.append(G.mapping(z)[:, 0].double())
    w = torch.cat(ws)
    mean = w.mean(0)
    return mean.float(), float(((w - mean).pow(2).sum(1).mean()) ** 0.5)


@dataclass
class InversionResult:
    ws: torch.Tensor  # (N, num_ws, w_dim), on the CPU
    images: torch.Tensor  # reconstructions (N, 3, R, R) in [-1, 1], on the CPU
    distances: torch.Tensor  # (N,) the final distance per image
    noise: list[torch.Tensor] | None = None  # per layer (N, 1, H, W) with optimize_noise
    history: list[dict[str, float]] = field(default_factory=list)  # mean distance per phase and step


def invert(G: Any, images: torch.Tensor, config: InvertConfig | None = None, *, clip: Any = None, lpips: Any = None,
           encoder: Any = None, progress: bool = True, callback: Callable[[int, int], None] | None = None,
           **options: Any) -> InversionResult:
    """W+ codes reproducing ``images`` (N, 3, R, R) in [-1, 1] with ``G`` (a generator or a generator with
    domains applied). ``options`` are :class:`InvertConfig` fields; ``lpips``: an LPIPS network
    (:func:`nada.lpips.load_lpips`) joining the distance. With an ``encoder`` (:func:`nada.load_encoder`:
    e4e or pSp) the codes are the encoder's, refined by ``refine_steps`` W+ steps; the W and W+ phases
    are not run. The generator is not changed."""
    cfg = config if config is not None else InvertConfig(**options)
    if config is not None and options:
        cfg = InvertConfig(**{**cfg.__dict__, **options})
    if encoder is not None:
        from .encoder import check_encoder_fits

        mismatch = check_encoder_fits(encoder, G)
        if mismatch:
            raise InversionError(mismatch)
    elif cfg.refine_steps:
        raise InversionError("refine_steps refines an encoder's codes: give an encoder (--encoder) or use w_steps/wplus_steps")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise InversionError(f"images must be (N, 3, H, W), got {tuple(getattr(images, 'shape', ()))}")
    res = G.resolution if hasattr(G, "resolution") else G.img_resolution
    if tuple(images.shape[-2:]) != (res, res):
        raise InversionError(f"images are {tuple(images.shape[-2:])}; this generator draws {res} x {res} (load_images resizes)")
    if not torch.isfinite(images).all():
        raise InversionError("images contain non-finite values")
    from .adapt.layers import LayerSpecError, parse_layers

    try:
        parse_layers(cfg.wplus_rows, G.num_ws)
    except LayerSpecError as e:
        raise InversionError(str(e).replace("--layers", "wplus_rows")) from None
    device = G.w_avg.device
    w_mean, w_std = w_statistics(G, cfg.w_avg_samples)
    n = images.shape[0]
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_total = cfg.refine_steps if encoder is not None else cfg.w_steps + cfg.wplus_steps
    bar = None
    if progress:
        from tqdm.auto import tqdm

        if steps_total:
            bar = tqdm(total=steps_total * math.ceil(n / cfg.batch), desc="invert", unit="step", dynamic_ncols=True)
        else:  # an encoder alone: one pass per batch, counted in images
            bar = tqdm(total=n, desc="encode", unit="image", dynamic_ncols=True)
    out_ws, out_images, out_dist, out_noise = [], [], [], []
    history: list[dict[str, float]] = []
    try:
        for lo in range(0, n, cfg.batch):
            target = images[lo:lo + cfg.batch].to(device, torch.float32)
            distance = ImageDistance(target, cfg.pixel_scales, clip, cfg.lambda_clip,
                                     lpips.to(device) if lpips is not None else None, cfg.lambda_lpips)
            start = None
            if encoder is not None:
                with torch.no_grad():
                    start = encoder(target.to(next(encoder.parameters()).device)).to(device, torch.float32)
            ws, noise, d = _invert_batch(G, target, distance, cfg, w_mean.to(device), w_std, gen, bar, history, lo, start)
            if bar is not None and not steps_total:
                bar.update(len(target))
            out_ws.append(ws.detach().cpu())
            with torch.no_grad():
                recon = G.synthesis(ws, noise=noise) if noise is not None else G.synthesis(ws, noise_mode="const")
            out_images.append(recon.float().cpu())
            out_dist.append(d.detach().cpu())
            if noise is not None:
                out_noise.append([m.detach().cpu() for m in noise])
            if callback is not None:
                callback(min(n, lo + cfg.batch), n)
    finally:
        if bar is not None:
            bar.close()
    noise_maps = [torch.cat([b[i] for b in out_noise]) for i in range(len(out_noise[0]))] if out_noise else None
    return InversionResult(torch.cat(out_ws), torch.cat(out_images), torch.cat(out_dist), noise_maps, history)


def _invert_batch(G, target, distance, cfg, w_mean, w_std, gen, bar, history, offset, start=None):
    """One batch's codes: W then W+ from ``w_mean``, or (``start``: an encoder's codes) the refinement only."""
    n = target.shape[0]
    num_ws = G.num_ws
    noise = None
    if cfg.optimize_noise:
        noise = [torch.randn(n, 1, *b.shape[-2:], generator=gen).to(target.device).requires_grad_(True)
                 for b in G.noise_buffers()]
    w = w_mean.expand(n, -1).clone()
    ws = start
    from .adapt.layers import parse_layers

    free = torch.zeros(num_ws, 1, dtype=torch.bool, device=target.device)
    free[parse_layers(cfg.wplus_rows, num_ws)] = True
    phases = (("refine", cfg.refine_steps),) if start is not None else (("w", cfg.w_steps), ("wplus", cfg.wplus_steps))
    for phase, steps in phases:
        if steps == 0:
            continue
        peak = cfg.refine_lr if phase == "refine" else cfg.lr
        code = (w.clone() if phase == "w" else (ws if ws is not None else w[:, None].expand(-1, num_ws, -1)).clone())
        start_rows = code.detach().clone()
        code.requires_grad_(True)
        params = [code] + (noise or [])
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999))
        for step in range(steps):
            t = step / steps
            for group in opt.param_groups:
                group["lr"] = learning_rate(t, cfg) * peak / cfg.lr
            # no code noise when refining: the encoder's code is already near the answer
            scale = 0.0 if phase == "refine" else w_std * cfg.w_noise * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
            jitter = torch.randn(code.shape, generator=gen).to(code) * scale
            noisy = code + jitter
            if phase == "w":
                full = noisy[:, None].expand(-1, num_ws, -1)
            else:  # rows outside wplus_rows keep where the phase started (their gradient is zero)
                full = torch.where(free, noisy, start_rows)
            images = G.synthesis(full, noise=noise) if noise is not None else G.synthesis(full, noise_mode="const")
            per_image = distance(images)
            loss = per_image.sum()
            if phase != "w" and cfg.wplus_spread > 0:
                loss = loss + cfg.wplus_spread * wplus_spread(code, w_std).sum()
            if noise is not None and cfg.noise_regularize > 0:
                loss = loss + cfg.noise_regularize * noise_penalty(noise).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if noise is not None:
                with torch.no_grad():
                    for m in noise:
                        m -= m.mean((1, 2, 3), keepdim=True)
                        m /= m.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
            if offset == 0:
                history.append({"phase": phase, "step": step + 1, "distance": float(per_image.detach().mean())})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(phase=phase, distance=f"{float(per_image.detach().mean()):.4f}", refresh=False)
        code = code.detach()
        if phase == "w":
            w = code
            ws = code[:, None].expand(-1, num_ws, -1).contiguous()
        else:
            ws = code
    with torch.no_grad():
        final = G.synthesis(ws, noise=noise) if noise is not None else G.synthesis(ws, noise_mode="const")
        d = distance(final)
    return ws, noise, d


# ----------------------------------------------------------------------------- latents files


def save_latents(path: str | os.PathLike, ws: torch.Tensor, names: Sequence[str], *, generator: str = "",
                 fingerprint: str = "", extra: dict[str, str] | None = None) -> Path:
    """W+ codes (N, num_ws, w_dim) as safetensors (``ws``) with the image names and the generator in metadata."""
    from safetensors.torch import save_file

    from .files import atomic_path

    if ws.ndim != 3 or ws.shape[0] != len(names):
        raise InversionError(f"{len(names)} names for latents of shape {tuple(ws.shape)}")
    meta = {**(extra or {}), "format": "nada-latents", "names": json.dumps(list(names)), "generator": generator,
            "base_fingerprint": fingerprint}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({"ws": ws.detach().float().cpu().contiguous()}, str(tmp), metadata=meta)
    return path


def load_latents(path: str | os.PathLike, G: Any | None = None) -> tuple[torch.Tensor, list[str]]:
    """W+ codes and names from a latents file (safetensors; ours, or any with one (N, num_ws, w_dim) tensor
    ``ws``/``latents``), or a ``.npy`` array of shape (N, num_ws, w_dim) or (N, w_dim) read without pickles;
    checked against ``G`` when given."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise InversionError(f"{path}: no such latents file")
    names: list[str] = []
    if path.suffix.lower() == ".npy":
        try:
            ws = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        except (ValueError, OSError) as e:
            raise InversionError(f"{path}: not a plain numeric .npy array ({' '.join(str(e).split())[:120]})") from None
    else:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
                key = next((k for k in ("ws", "latents") if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise InversionError(f"{path}: expected a tensor 'ws'; found {', '.join(keys[:5]) or 'none'}")
                ws = f.get_tensor(key).float()
                meta = f.metadata() or {}
        except InversionError:
            raise
        except Exception as e:
            raise InversionError(f"{path}: not a latents .safetensors or .npy file ({' '.join(str(e).split())[:120]})") from None
        try:
            names = list(json.loads(meta.get("names", "[]")))
        except ValueError:
            names = []
    if ws.ndim == 2:
        ws = ws[:, None]
    if ws.ndim != 3 or not torch.isfinite(ws).all():
        raise InversionError(f"{path}: latents must be finite (N, num_ws, w_dim) or (N, w_dim); got {tuple(ws.shape)}")
    if G is not None:
        if ws.shape[-1] != G.w_dim or ws.shape[1] not in (1, G.num_ws):
            raise InversionError(f"{path}: latents of shape {tuple(ws.shape)} do not fit this generator "
                                 f"(num_ws {G.num_ws}, w_dim {G.w_dim})")
        if ws.shape[1] == 1:
            ws = ws.expand(-1, G.num_ws, -1).contiguous()
    if len(names) != ws.shape[0]:
        names = [f"{i:04d}" for i in range(ws.shape[0])]
    return ws, names

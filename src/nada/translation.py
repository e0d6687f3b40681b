"""Real images through generators: invert them (``nada invert``) and redraw their codes with adapted
generators or domains (``nada translate``), writing the results into a folder.

``invert_to_dir`` writes ``latents.safetensors`` (the W+ codes, :func:`nada.inversion.save_latents`),
``reconstructions/<name>.png``, ``grid.png`` (inputs over reconstructions) and ``report.json`` (per
image: the distance, the pixel error, the file). ``translate_to_dir`` adds, per image,
``<name>.png``: one row of input, reconstruction, then the same code drawn by each target, and
``<target>/<name>.png`` for each target. Every file is written atomically.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .inversion import LATENTS_FILE, InversionResult, InvertConfig, invert, list_images, load_images, save_latents

__all__ = ["invert_to_dir", "translate_to_dir", "draw"]


def _fingerprint(G: Any) -> str:
    try:
        from .domains.domain import base_fingerprint

        return base_fingerprint(G)
    except Exception:  # a view without a state dict of its own
        return ""


@torch.no_grad()
def draw(G: Any, ws: torch.Tensor, batch: int = 8, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``G``'s images of W+ codes (N, num_ws, w_dim), batched, on the CPU."""
    device = G.w_avg.device
    out = []
    for lo in range(0, len(ws), batch):
        chunk = ws[lo:lo + batch].to(device)
        if noise is not None:
            images = G.synthesis(chunk, noise=[m[lo:lo + batch].to(device) for m in noise])
        else:
            images = G.synthesis(chunk, noise_mode="const")
        out.append(images.float().cpu())
    return torch.cat(out)


def _run_inversion(G, inputs, cfg, clip, progress, lpips=None, encoder=None):
    paths = list_images(inputs)
    images = load_images(paths, G.resolution)
    t0 = time.perf_counter()
    result = invert(G, images, cfg, clip=clip, lpips=lpips, encoder=encoder, progress=progress)
    seconds = time.perf_counter() - t0
    return paths, images, result, seconds


def _report(paths, images, result: InversionResult, seconds: float, cfg: InvertConfig, generator: str,
            encoder: Any = None) -> dict:
    mse = (result.images.clamp(-1, 1) - images).pow(2).flatten(1).mean(1)
    return {
        "generator": generator, "n": len(paths), "seconds": round(seconds, 3),
        "encoder": None if encoder is None else {"kind": encoder.kind, "file": getattr(encoder, "source", "")},
        "seconds_per_image": round(seconds / max(1, len(paths)), 4), "config": cfg.__dict__,
        "images": [{"name": p.stem, "file": str(p), "distance": float(d), "pixel_mse": float(m)}
                   for p, d, m in zip(paths, result.distances, mse)],
    }


def _write_common(out: Path, paths, images, result, report, generator: str, fingerprint: str) -> None:
    from ._io import atomic_write_text
    from .imaging import save_grid, save_image

    save_latents(out / LATENTS_FILE, result.ws, [p.stem for p in paths], generator=generator, fingerprint=fingerprint)
    (out / "reconstructions").mkdir(exist_ok=True)
    for p, im in zip(paths, result.images):
        save_image(im, out / "reconstructions" / f"{p.stem}.png")
    n = len(paths)
    nrow = min(n, 8)
    rows = []
    for lo in range(0, n, nrow):  # inputs over reconstructions, eight per row pair
        rows += [images[lo:lo + nrow], result.images[lo:lo + nrow]]
    save_grid(torch.cat(rows).clamp(-1, 1), out / "grid.png", nrow=nrow)
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")


def _invert_into(G, inputs, out, cfg, clip, progress, generator, lpips=None, encoder=None):
    """Check ``out``, invert, create ``out``: (out, paths, images, result, report); nothing is written on bad input."""
    from ._io import check_output_dir, prepare_output_dir

    check_output_dir(out, "--out")
    paths, images, result, seconds = _run_inversion(G, inputs, cfg, clip, progress, lpips, encoder)
    out = Path(out)
    prepare_output_dir(out, "--out")
    return out, paths, images, result, _report(paths, images, result, seconds, cfg, generator, encoder)


def invert_to_dir(G: Any, inputs: Sequence[str | os.PathLike], out: str | os.PathLike, config: InvertConfig | None = None,
                  *, clip: Any = None, lpips: Any = None, encoder: Any = None, generator: str = "",
                  progress: bool = True) -> dict:
    """Invert the images named by ``inputs`` (files or folders) with ``G`` (by optimisation, or with an
    e4e/pSp ``encoder`` and optional refinement); write the results to ``out``."""
    out, paths, images, result, report = _invert_into(G, inputs, out, config or InvertConfig(), clip, progress, generator,
                                                      lpips, encoder)
    _write_common(out, paths, images, result, report, generator, _fingerprint(G))
    return report


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "target"


def translate_to_dir(G: Any, targets: Sequence[tuple[str, Any]], inputs: Sequence[str | os.PathLike],
                     out: str | os.PathLike, config: InvertConfig | None = None, *, clip: Any = None,
                     lpips: Any = None, encoder: Any = None, generator: str = "", progress: bool = True) -> dict:
    """Invert with ``G`` (the base) and draw the codes with each ``(label, generator)`` of ``targets``."""
    from .imaging import make_grid, save_image

    if not targets:
        from .errors import ConfigError

        raise ConfigError("translate needs at least one target (--domain or --adapted)")
    cfg = config or InvertConfig()
    out, paths, images, result, report = _invert_into(G, inputs, out, cfg, clip, progress, generator, lpips, encoder)
    drawn = []
    for label, T in targets:
        folder = out / _slug(label)
        folder.mkdir(exist_ok=True)
        ims = draw(T, result.ws, cfg.batch, result.noise)
        for p, im in zip(paths, ims):
            save_image(im, folder / f"{p.stem}.png")
        drawn.append(ims)
    report["targets"] = [{"label": label, "folder": _slug(label)} for label, _ in targets]
    _write_common(out, paths, images, result, report, generator, _fingerprint(G))
    for i, p in enumerate(paths):
        row = torch.stack([images[i], result.images[i], *[ims[i] for ims in drawn]]).clamp(-1, 1)
        save_image(make_grid(row, nrow=len(row)), out / f"{p.stem}.png")
    return report

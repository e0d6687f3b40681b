"""Where training should go in CLIP space: text directions, image-folder directions and
automatic choice of the source text."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from .ensemble import ClipEnsemble
from .errors import GuidanceError, ZeroDirectionError
from .losses import unit
from .templates import compose_prompts

__all__ = [
    "IMAGE_SUFFIXES",
    "MIN_DIRECTION_NORM",
    "check_direction",
    "domain_text_embedding",
    "load_image_folder",
    "mean_image_embedding",
    "select_source_text",
]

# Differences of unit embeddings below this are numerically zero: identical texts (or
# texts the tokenizer maps to the same tokens) give exactly 0.
MIN_DIRECTION_NORM = 1e-6

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def check_direction(direction: torch.Tensor, what: str) -> torch.Tensor:
    """Raise :class:`ZeroDirectionError` unless ``direction`` has a usable length."""
    norm = float(direction.norm())
    if not norm >= MIN_DIRECTION_NORM:  # also catches NaN
        raise ZeroDirectionError(
            f"{what} gives a zero CLIP direction (|dT| = {norm:.3g}): source and target look the same to CLIP; "
            f"use texts that differ in meaning"
        )
    return direction


def domain_text_embedding(
    clip, text: str, templates: Sequence[str] | None = None, use_templates: bool = True
) -> torch.Tensor:
    """``unit(mean_t E_T(template_t(text)))``: one (D,) embedding for a domain text."""
    return unit(clip.encode_texts(compose_prompts(text, templates, use_templates)).mean(0))


def load_image_folder(path: str | os.PathLike) -> list[torch.Tensor]:
    """Every image file directly in ``path`` (sorted by name) as (3, H, W) in [-1, 1]."""
    from PIL import UnidentifiedImageError

    from ..imaging import load_image

    folder = Path(path)
    if not folder.is_dir():
        raise GuidanceError(f"image folder '{folder}' does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GuidanceError(f"image folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for f in files:
        try:
            images.append(load_image(f))
        except (OSError, UnidentifiedImageError) as exc:
            raise GuidanceError(f"cannot read image '{f}': {exc}") from exc
    return images


@torch.no_grad()
def mean_image_embedding(clip, images: torch.Tensor | Sequence[torch.Tensor], batch_size: int = 8) -> torch.Tensor:
    """``unit(mean_n E_I(image_n))`` for a batch tensor or a list of differently sized images."""
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            images = images.unsqueeze(0)
        groups = [images[i : i + batch_size] for i in range(0, images.shape[0], batch_size)]
    else:
        if len(images) == 0:
            raise GuidanceError("no images to embed")
        groups = [img.unsqueeze(0) if img.ndim == 3 else img for img in images]
    embs = torch.cat([clip.encode_images(g) for g in groups])
    return unit(embs.mean(0))


@torch.no_grad()
def select_source_text(
    clips,
    images: torch.Tensor,
    candidates: Sequence[str],
    templates: Sequence[str] | None = None,
    use_templates: bool = True,
) -> tuple[str, dict[str, float]]:
    """The candidate caption CLIP finds closest to the frozen generator's samples.

    Score of a caption: ``sum_k w_k mean_n cos(E_I^k(image_n), E_T^k(caption))`` over the
    ensemble's models. Returns the best caption (first on ties) and every score.
    """
    candidates = list(dict.fromkeys(c.strip() for c in candidates if isinstance(c, str) and c.strip()))
    if not candidates:
        raise GuidanceError("automatic source text needs at least one candidate caption")
    ensemble = clips if isinstance(clips, ClipEnsemble) else ClipEnsemble([clips])
    scores = dict.fromkeys(candidates, 0.0)
    for clip, weight in ensemble:
        img = clip.encode_images(images, batch_size=8)
        for c in candidates:
            t = domain_text_embedding(clip, c, templates, use_templates)
            scores[c] += weight * float((img @ t).mean())
    best = max(candidates, key=lambda c: scores[c])
    return best, scores

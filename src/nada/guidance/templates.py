"""Prompt templates: a domain text such as "sketch" becomes many sentences whose mean
CLIP embedding is steadier than that of the bare word.

The set follows the style of the ImageNet prompts published with CLIP ("a photo of a
{}.", "a blurry photo of the {}.", ...). ``use_templates=False`` uses the text as given,
which the 002 seed found to work about as well.
"""
from __future__ import annotations

from typing import Sequence

from .errors import GuidanceError

__all__ = ["IMAGENET_TEMPLATES", "PART_TEMPLATES", "check_templates", "compose_prompts"]

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a bad photo of a {}.",
    "a bad photo of the {}.",
    "a good photo of a {}.",
    "a good photo of the {}.",
    "a photo of one {}.",
    "a photo of many {}.",
    "a photo of my {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a photo of the cool {}.",
    "a photo of a large {}.",
    "a photo of a small {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a dark photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a cropped photo of a {}.",
    "a cropped photo of the {}.",
    "a blurry photo of a {}.",
    "a blurry photo of the {}.",
    "a low resolution photo of a {}.",
    "a low resolution photo of the {}.",
    "a pixelated photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a black and white photo of a {}.",
    "a photo of a hard to see {}.",
    "a photo of the hard to see {}.",
    "a rendering of a {}.",
    "a rendition of the {}.",
    "a sculpture of a {}.",
    "a drawing of a {}.",
    "a painting of the {}.",
    "art of the {}.",
    "a {} in a video game.",
    "the toy {}.",
    "the plastic {}.",
    "itap of a {}.",
)

# For the patch loss: sentences about a part of the image rather than all of it.
PART_TEMPLATES: tuple[str, ...] = (
    "a close-up of a {}.",
    "a detail of a {}.",
    "a part of a {}.",
    "the texture of a {}.",
    "a cropped part of a {}.",
    "a fragment of a {}.",
    "the surface of a {}.",
    "a corner of a {}.",
    "an edge of a {}.",
    "a patch of a {}.",
)


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Each template must hold exactly one ``{}`` where the domain text goes."""
    templates = tuple(templates)
    if not templates:
        raise GuidanceError("the template list is empty")
    for t in templates:
        if not isinstance(t, str) or t.count("{}") != 1 or t.replace("{}", "").count("{") + t.replace("{}", "").count("}"):
            raise GuidanceError(f"template {t!r} must contain exactly one '{{}}' and no other braces")
    return templates


def compose_prompts(text: str, templates: Sequence[str] | None = None, use_templates: bool = True) -> list[str]:
    """The sentences whose embeddings are averaged for ``text``."""
    if not isinstance(text, str) or not text.strip():
        raise GuidanceError(f"empty domain text {text!r}")
    text = text.strip()
    if not use_templates:
        return [text]
    return [t.format(text) for t in check_templates(IMAGENET_TEMPLATES if templates is None else templates)]

"""Captions for rendered scenes from a small grammar, and the word tokenizer of the built-in CLIPs.

A caption names a random subset of the scene's style, colour and shape ("a sketch of a red
circle", "a photo of a square", "a neon drawing", "a blue star"), so the CLIPs learn each
attribute on its own as well as in combination. Which attributes a caption mentions is kept
with it (:class:`Caption`), so training can tell which other images a caption also fits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .renderer import COLOURS, SHAPES, STYLES, Scene

MAX_TOKENS = 16

# How each style is named at the head of a caption: "<phrase> of <object>" or "<phrase>" alone.
STYLE_PHRASES = {
    "photo": ("a photo", "a photograph", "a photo", "photo"),
    "sketch": ("a sketch", "a pencil sketch", "a sketch", "sketch"),
    "pixel art": ("pixel art", "a pixel art image", "pixel art", "pixel art"),
    "neon": ("a neon drawing", "a neon sign", "neon art", "neon"),
    "watercolor": ("a watercolor painting", "a watercolor", "a watercolor painting", "watercolor"),
}
# Short names used in zero-shot prompts ("a sketch", "a {style} of a shape").
STYLE_NOUNS = {"photo": "photo", "sketch": "sketch", "pixel art": "pixel art", "neon": "neon drawing", "watercolor": "watercolor painting"}

FILLER_WORDS = ("a", "an", "of", "the", "shape", "object", "thing", "image", "picture", "drawing", "painting", "in", "style")
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {w for phrases in STYLE_PHRASES.values() for p in phrases for w in p.split()}
        | {w for noun in STYLE_NOUNS.values() for w in noun.split()}
        | {w for st in STYLES for w in st.split()}
        | set(COLOURS)
        | set(SHAPES)
        | set(FILLER_WORDS)
    )
)


@dataclass(frozen=True)
class Caption:
    """A caption and the attributes it mentions (None = not mentioned)."""

    text: str
    style: str | None
    shape: str | None
    colour: str | None

    def fits(self, scene: Scene) -> bool:
        return all(
            want is None or want == have
            for want, have in ((self.style, scene.style), (self.shape, scene.shape), (self.colour, scene.colour))
        )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def compose(style: str | None, shape: str | None, colour: str | None, variant: int = 0) -> str:
    """Text naming the given attributes; ``variant`` picks among equivalent phrasings."""
    if style is None and shape is None and colour is None:
        raise ValueError("a caption must mention at least one attribute")
    if shape is not None:
        noun = f"{colour} {shape}" if colour is not None else shape
    elif colour is not None:
        noun = f"{colour} {('shape', 'object', 'thing')[variant % 3]}"
    else:
        noun = None
    if style is None:
        return f"{_article(noun)} {noun}" if variant % 4 else noun
    phrase = STYLE_PHRASES[style][variant % len(STYLE_PHRASES[style])]
    if noun is None:
        # sometimes "a sketch of a shape": the style with an unnamed object
        return phrase if variant % 3 else f"{phrase} of {('a shape', 'an object')[variant % 2]}"
    return f"{phrase} of {_article(noun)} {noun}"


def caption_scene(scene: Scene, rng: np.random.Generator) -> Caption:
    """A random caption for ``scene``: each attribute kept with probability 0.7 (at least one)."""
    while True:
        keep = rng.random(3) < 0.7
        if keep.any():
            break
    style = scene.style if keep[0] else None
    shape = scene.shape if keep[1] else None
    colour = scene.colour if keep[2] else None
    variant = int(rng.integers(0, 12))
    return Caption(compose(style, shape, colour, variant), style, shape, colour)


def caption_scenes(scenes: Sequence[Scene], rng: np.random.Generator) -> list[Caption]:
    return [caption_scene(s, rng) for s in scenes]


# Zero-shot prompt templates, one attribute each; averaged over templates.
STYLE_TEMPLATES = ("a {}", "{}", "a {} of a shape", "a {} of an object")
SHAPE_TEMPLATES = ("a {}", "{}", "a picture of a {}", "an image of a {}")
COLOUR_TEMPLATES = ("a {} shape", "a {} object", "a {} thing", "{} shape")


def style_prompt_text(template: str, style: str) -> str:
    text = template.format(STYLE_NOUNS[style])
    # "a pixel art" is not English; pixel art takes no article
    return text.replace("a pixel art", "pixel art")


def zero_shot_prompts(attribute: str) -> list[list[str]]:
    """Prompts per class of ``attribute`` ('style', 'shape' or 'colour'): [class][template]."""
    if attribute == "style":
        return [[style_prompt_text(t, s) for t in STYLE_TEMPLATES] for s in STYLES]
    if attribute == "shape":
        return [[t.format(s) for t in SHAPE_TEMPLATES] for s in SHAPES]
    if attribute == "colour":
        return [[t.format(c) for t in COLOUR_TEMPLATES] for c in COLOURS]
    raise ValueError(f"unknown attribute {attribute!r}; expected style, shape or colour")


def build_tokenizer():
    """The word-level tokenizer over :data:`VOCABULARY` (transformers format)."""
    from nada.guidance.tokenizer import build_word_tokenizer

    return build_word_tokenizer(VOCABULARY, model_max_length=MAX_TOKENS)

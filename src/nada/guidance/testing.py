"""Tiny random CLIP models saved as ordinary model directories, for tests and examples.

A directory made here loads through :func:`nada.guidance.clip.load_clip` exactly like a
hub model (config + safetensors weights, tokenizer files, preprocessor_config.json), so
tests exercise the real loading path without any download.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import torch

from .._io import atomic_write_text
from .clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from .templates import IMAGENET_TEMPLATES, PART_TEMPLATES
from .tokenizer import build_word_tokenizer

__all__ = ["DEFAULT_WORDS", "make_tiny_clip"]

DEFAULT_WORDS: tuple[str, ...] = (
    "photo", "sketch", "painting", "drawing", "cartoon", "watercolor", "neon", "pixel", "art",
    "dog", "cat", "face", "car", "church", "circle", "square", "triangle", "star", "shape",
    "red", "green", "blue", "yellow", "purple", "orange", "black", "white",
    "a", "an", "the", "of", "in", "with", "and",
)


def _template_words() -> set[str]:
    words: set[str] = set()
    for t in IMAGENET_TEMPLATES + PART_TEMPLATES:
        words.update(w for w in re.split(r"[^\w]+", t.replace("{}", " ").lower()) if w)
    return words


def make_tiny_clip(
    directory: str | os.PathLike,
    patch_size: int = 8,
    image_size: int = 32,
    words: Iterable[str] | None = None,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 16,
    projection_dim: int | None = None,
    image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
    image_std: Sequence[float] = OPENAI_CLIP_STD,
) -> Path:
    """Build a randomly initialised ``CLIPModel`` with a word-level tokenizer; save it to ``directory``.

    The vocabulary is ``words`` (default: :data:`DEFAULT_WORDS`) plus every word of the
    built-in templates, so templated prompts tokenise without unknown words. The text
    config's pad/bos/eos ids match the tokenizer (0/2/3), so the text tower pools at the
    eos token. The global torch RNG is left untouched.
    """
    from transformers import CLIPConfig, CLIPModel

    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_words = set(w.lower() for w in (DEFAULT_WORDS if words is None else words)) | _template_words()
    tokenizer = build_word_tokenizer(sorted(vocab_words), model_max_length=max_length)
    pad, bos, eos = (tokenizer.convert_tokens_to_ids(t) for t in (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token))
    common = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=heads)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), max_position_embeddings=max_length,
            pad_token_id=pad, bos_token_id=bos, eos_token_id=eos, **common,
        ),
        vision_config=dict(image_size=image_size, patch_size=patch_size, **common),
        projection_dim=projection_dim or hidden,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor = clip_processor_config(image_size, image_mean, image_std)
    atomic_write_text(directory / "preprocessor_config.json", json.dumps(processor, indent=2) + "\n")
    return directory


def clip_processor_config(image_size: int, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                          image_std: Sequence[float] = OPENAI_CLIP_STD) -> dict:
    """``preprocessor_config.json`` of a CLIP with square input ``image_size``: resize, centre crop, mean/std."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [float(v) for v in image_mean],
        "image_std": [float(v) for v in image_std],
        "do_convert_rgb": True,
    }

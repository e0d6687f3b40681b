"""Tiny random models for the tests, built offline in a few milliseconds: one place for all of them.

``make_tiny_generator`` builds a StyleGAN2 with small channel counts; ``make_tiny_clip`` saves a
randomly initialised ``transformers.CLIPModel`` with a word-level tokenizer as an ordinary model
directory, so tests exercise the real loading path without any download.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import torch

from nada.files import atomic_write_text
from nada.guidance.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, clip_processor_config
from nada.guidance.templates import IMAGENET_TEMPLATES, PART_TEMPLATES
from nada.guidance.tokenizer import build_word_tokenizer

__all__ = ["DEFAULT_WORDS", "TINY_CHANNELS", "RaiseAt", "make_tiny_clip", "make_tiny_generator"]

TINY_CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8}


def make_tiny_generator(seed: int = 0, resolution: int = 32):
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        chans = {r: c for r, c in TINY_CHANNELS.items() if r <= resolution}
        G = Generator(GeneratorConfig(resolution, style_dim=32, n_mlp=2, channels=chans))
        # non-zero noise strengths and biases so that every parameter matters
        for name, p in G.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith(".bias") and p.ndim == 4:
                p.data.normal_(0, 0.1)
    return G


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


class RaiseAt:
    """Wraps a Guidance: its loss raises ``exc`` at the ``at``-th call (1-based), once (an interrupt, OOM or crash mid-step)."""

    def __init__(self, inner, at, exc):
        self.inner, self.at, self.exc, self.calls = inner, at, exc, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, a, b, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise self.exc
        return self.inner.loss(a, b, **kwargs)


# strictly increasing as IR-SE50's (every stage but the first opens with a conv shortcut); the last is w_dim
TINY_ENCODER_WIDTHS = (16, 20, 24)


def make_tiny_encoder(G, kind: str = "e4e", seed: int = 0, input_size: int = 64):
    """A random e4e/pSp encoder with the papers' key layout, narrow, for ``G``'s num_ws and w_dim; batch-norm
    statistics and PReLU slopes are randomised so that every tensor matters."""
    from nada.encoder import StyleEncoder

    convs = ((4,) * 3 + (5,) * 4 + (6,) * 11)[:G.num_ws]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        E = StyleEncoder(kind, widths=(*TINY_ENCODER_WIDTHS, G.w_dim), style_dim=G.w_dim, style_convs=convs, input_size=input_size)
        for name, t in E.state_dict().items():
            if name.endswith("running_mean") or name.endswith(".bias"):
                t.normal_(0, 0.1)
            elif name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif t.ndim == 1 and t.is_floating_point():  # batch-norm gains and PReLU slopes
                t.uniform_(0.1, 1.0)
            elif t.ndim == 4 and t.shape[-1] == 3:  # He-scaled convs keep the activations of order one
                t.normal_(0, (2.0 / t[0].numel()) ** 0.5)
    return E.eval()


def save_encoder_checkpoint(path, E, G=None, *, opts=None, latent_avg=None, zip_format: bool = True):
    """``E`` (and ``G`` as ``decoder.*``) in the e4e/pSp checkpoint layout ``{state_dict, opts, latent_avg}``."""
    from nada.encoder import ENCODER_KINDS

    sd = {f"encoder.{k}": v for k, v in E.state_dict().items()}
    if G is not None:
        sd.update({f"decoder.{k}": v for k, v in G.state_dict().items()})
    obj = {"state_dict": sd,
           "opts": {"encoder_type": ENCODER_KINDS[E.kind], "start_from_latent_avg": latent_avg is not None,
                    "stylegan_size": getattr(G, "resolution", 1024)} if opts is None else opts}
    if latent_avg is not None:
        obj["latent_avg"] = latent_avg
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    return path

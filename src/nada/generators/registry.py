"""Names a user can pass instead of a path: built-in generators and NVIDIA's published checkpoints.

* ``BUILTINS``: name -> function returning a ready :class:`Generator` (no file involved);
  plug-ins add theirs through :mod:`nada.plugins` (the built-in world's ``toy``).
* ``PRETRAINED``: name -> :class:`PretrainedCheckpoint`, downloaded on first use into
  :func:`nada.generators.download.cache_dir` as ``<name><suffix>``.

URLs are NVIDIA's public StyleGAN2 pickles: the PyTorch ones listed in the StyleGAN3 README
(``api.ngc.nvidia.com/.../stylegan2/versions/1/files/stylegan2-*.pkl``, also readable by
stylegan2-ada-pytorch) and the TensorFlow config-f ones of the original StyleGAN2 release
(``nvlabs-fi-cdn.nvidia.com/stylegan2/networks/``). NVIDIA's conditional CIFAR-10 model is
left out: ``nada`` does not support class-conditional generators.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .download import cache_dir, download
from .errors import CheckpointError
from .stylegan2 import Generator, GeneratorConfig

_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
_TF = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks"


@dataclass(frozen=True)
class PretrainedCheckpoint:
    name: str
    url: str
    resolution: int
    format: str  # "nvidia-pkl" (PyTorch persistence pickle) or "tf-pkl" (TensorFlow StyleGAN2 pickle)
    description: str  # what the model draws, for people reading this table
    sha256: str | None = None  # verified after download when known

    @property
    def suffix(self) -> str:
        return Path(self.url).suffix or ".pkl"

    def cache_path(self) -> Path:
        return cache_dir() / f"{self.name}{self.suffix}"


def _ngc(name: str, file: str, res: int, what: str) -> PretrainedCheckpoint:
    return PretrainedCheckpoint(name, f"{_NGC}/{file}", res, "nvidia-pkl", what)


def _tf(name: str, file: str, res: int, what: str) -> PretrainedCheckpoint:
    return PretrainedCheckpoint(name, f"{_TF}/{file}", res, "tf-pkl", what)


PRETRAINED: dict[str, PretrainedCheckpoint] = {c.name: c for c in [
    _ngc("ffhq-1024", "stylegan2-ffhq-1024x1024.pkl", 1024, "FFHQ faces"),
    _ngc("ffhq-512", "stylegan2-ffhq-512x512.pkl", 512, "FFHQ faces"),
    _ngc("ffhq-256", "stylegan2-ffhq-256x256.pkl", 256, "FFHQ faces"),
    _ngc("ffhqu-1024", "stylegan2-ffhqu-1024x1024.pkl", 1024, "FFHQ faces, unaligned"),
    _ngc("ffhqu-256", "stylegan2-ffhqu-256x256.pkl", 256, "FFHQ faces, unaligned"),
    _ngc("metfaces-1024", "stylegan2-metfaces-1024x1024.pkl", 1024, "MetFaces portraits"),
    _ngc("metfacesu-1024", "stylegan2-metfacesu-1024x1024.pkl", 1024, "MetFaces portraits, unaligned"),
    _ngc("afhqv2-512", "stylegan2-afhqv2-512x512.pkl", 512, "AFHQv2 animal faces (cat, dog, wild)"),
    _ngc("afhqcat-512", "stylegan2-afhqcat-512x512.pkl", 512, "AFHQ cat faces"),
    _ngc("afhqdog-512", "stylegan2-afhqdog-512x512.pkl", 512, "AFHQ dog faces"),
    _ngc("afhqwild-512", "stylegan2-afhqwild-512x512.pkl", 512, "AFHQ wild animal faces"),
    _ngc("brecahad-512", "stylegan2-brecahad-512x512.pkl", 512, "BreCaHAD histology"),
    _ngc("celebahq-256", "stylegan2-celebahq-256x256.pkl", 256, "CelebA-HQ faces"),
    _ngc("lsundog-256", "stylegan2-lsundog-256x256.pkl", 256, "LSUN dogs"),
    _tf("lsuncar", "stylegan2-car-config-f.pkl", 512, "LSUN cars (512x384 content in a 512x512 frame)"),
    _tf("church-256", "stylegan2-church-config-f.pkl", 256, "LSUN churches"),
    _tf("horse-256", "stylegan2-horse-config-f.pkl", 256, "LSUN horses"),
    _tf("cat-256", "stylegan2-cat-config-f.pkl", 256, "LSUN cats"),
    _tf("ffhq-1024-tf", "stylegan2-ffhq-config-f.pkl", 1024, "FFHQ faces (original TensorFlow release)"),
]}


# ----------------------------------------------------------------------------- built-ins

TINY_CONFIG = GeneratorConfig(resolution=32, style_dim=64, n_mlp=2, channels={4: 64, 8: 64, 16: 32, 32: 32})


def build_tiny_generator(seed: int = 0) -> Generator:
    """A deterministic random-weight 32 px generator: lets ``nada sample`` run with no file at all."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        torch.manual_seed(seed)
        G = Generator(GeneratorConfig.from_dict(TINY_CONFIG.to_dict()))
    G.compute_w_avg()
    return G.eval()


BUILTINS: dict[str, Callable[[], Generator]] = {
    "tiny": build_tiny_generator,
}


def builtin_loader(name: str) -> Callable[[], Generator] | None:
    """The loader of a built-in generator name: ``tiny``, or one a plug-in registers (``toy``)."""
    from .. import plugins

    return BUILTINS.get(name) or plugins.generator_loader(name)


def known_names() -> list[str]:
    from .. import plugins

    return sorted(set(BUILTINS) | set(plugins.generator_names())) + sorted(PRETRAINED)


def fetch_pretrained(name: str, progress: bool = True) -> Path:
    """Path of the cached file for ``name``, downloading it first if it is not there yet."""
    ckpt = PRETRAINED.get(name)
    if ckpt is None:
        raise CheckpointError(unknown_name_message(name))
    path = ckpt.cache_path()
    if not path.is_file():
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
        download(ckpt.url, path, sha256=ckpt.sha256, progress=progress)
    return path


def unknown_name_message(name: str) -> str:
    return f"{name}: no such file, and not a known generator name (known: {', '.join(known_names())})"

"""The hypernetwork of ``--param hyper`` and its input: a leaf module (``nada.domains.hyper`` trains it,
``nada.domains.domain`` reads it back from a file)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["HyperNetwork", "text_input", "unit"]

MAX_LAYOUT = 256  # output vectors (a 1024-px generator has 17 styled convs)
MAX_CHANNELS = 4096
MAX_INPUT = 16384  # concatenated CLIP embedding sizes
MAX_WIDTH = 4096


class HyperNetwork(nn.Module):
    """``input (D,) -> {"modulation/<layer>": d (C_in,)}``; zero at the start (the head is zero)."""

    def __init__(self, in_dim: int, layout: Sequence[tuple[str, int]], width: int = 256):
        super().__init__()
        self.in_dim, self.width = int(in_dim), int(width)
        self.layout = [(str(k), int(c)) for k, c in layout]
        self.body = nn.Sequential(nn.Linear(in_dim, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2))
        self.head = nn.Linear(width, sum(c for _, c in self.layout))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = self.head(self.body(x))
        return dict(zip((k for k, _ in self.layout), flat.split([c for _, c in self.layout], dim=-1)))


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm().clamp_min(1e-12)


def text_input(clips: Sequence[Any], text: str, source: str, templates: Sequence[str] | None,
               use_templates: bool) -> torch.Tensor:
    """The hypernetwork's input for ``text``: per CLIP ``unit(E(text) - E(source))``, concatenated."""
    from ..guidance.directions import domain_text_embedding

    parts = []
    with torch.no_grad():
        for clip in clips:
            t = domain_text_embedding(clip, text, templates, use_templates)
            s = domain_text_embedding(clip, source, templates, use_templates)
            parts.append(unit(t - s).float().cpu())
    return torch.cat(parts)

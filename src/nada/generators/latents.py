"""Drawing W+ codes for training: one style-mixing rule for the GAN trainer and the adaptation loop."""
from __future__ import annotations

import torch

from .stylegan2 import Generator

__all__ = ["style_mixed_ws"]


def style_mixed_ws(G: Generator, z: torch.Tensor, prob: float, gen: torch.Generator,
                   truncation_psi: float = 1.0) -> torch.Tensor:
    """W+ codes from ``z`` (2, N, z_dim): ``z[0]``'s, switched to ``z[1]``'s from a random row on.

    With probability ``prob`` (one draw from ``gen`` when ``prob > 0``), rows from a cut drawn
    uniformly in [1, num_ws) on come from the second latent, as in StyleGAN2's style mixing.
    """
    ws = G.mapping(z[0], truncation_psi=truncation_psi)
    if prob > 0 and torch.rand((), generator=gen).item() < prob:
        cut = int(torch.randint(1, G.num_ws, (), generator=gen))
        ws2 = G.mapping(z[1], truncation_psi=truncation_psi)
        ws = torch.cat([ws[:, :cut], ws2[:, cut:]], dim=1)
    return ws

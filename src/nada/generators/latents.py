"""Drawing W+ codes for training: one style-mixing rule for the GAN trainer and the adaptation loop."""
from __future__ import annotations

import torch

from .stylegan2 import Generator

__all__ = ["latent_space_mismatch", "seed_codes", "seed_latents", "style_mixed_ws"]


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


def seed_latents(z_dim: int, seeds: "list[int] | tuple[int, ...]") -> torch.Tensor:
    """Z codes (N, z_dim) on the CPU, code ``i`` drawn from its own seed ``seeds[i]`` (as ``nada sample`` draws them)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


@torch.no_grad()
def seed_codes(G: Generator, seeds: "list[int] | tuple[int, ...]", truncation_psi: float = 1.0) -> torch.Tensor:
    """W+ codes (N, num_ws, w_dim) on the CPU: ``G``'s mapping of :func:`seed_latents`."""
    z = seed_latents(G.z_dim, seeds).to(G.w_avg.device)
    return G.mapping(z, truncation_psi=truncation_psi).cpu()


def latent_space_mismatch(A: Generator, G: Generator) -> str | None:
    """None when ``A`` reads ``G``'s codes (same num_ws, w_dim and resolution), else a phrase saying how they differ."""
    if (A.num_ws, A.w_dim, A.resolution) == (G.num_ws, G.w_dim, G.resolution):
        return None
    return (f"its latent space (num_ws {A.num_ws}, w_dim {A.w_dim}, {A.resolution} px) is not the base's "
            f"(num_ws {G.num_ws}, w_dim {G.w_dim}, {G.resolution} px)")

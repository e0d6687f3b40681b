"""The losses of the method, each a small pure function on embeddings or images.

Embeddings are (N, D) rows; image and text embeddings are expected L2-normalised (as
:class:`nada.guidance.clip.ClipModel` returns them). Every function returns a scalar
tensor, averaged over the batch. Formulas are collected in docs/guidance.md.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn as nn

__all__ = [
    "DELTA_EPS",
    "LearnedLossWeights",
    "clip_angle_loss",
    "directional_loss",
    "global_loss",
    "gram_matrix",
    "l2_loss",
    "manifold_consistency_loss",
    "attribute_keep_loss",
    "patch_directional_loss",
    "read_source_direction",
    "perceptual_loss",
    "self_similarity",
    "structure_loss",
    "texture_loss",
    "unit",
]

# Norm below which an image-space change counts as "no change yet". The trained and frozen
# generators start identical, so dI = 0 at the first step: the cosine is undefined there.
# Dividing by max(|dI|, eps) makes the loss exactly 1 at dI = 0, with gradient -dT/eps
# (pointing along the text direction, bounded by 1/eps) instead of NaN. Meaningful
# changes of unit embeddings are orders of magnitude larger than 1e-3.
DELTA_EPS = 1e-3


def unit(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(|x|, eps)`` along the last dimension."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def directional_loss(
    e_train: torch.Tensor, e_frozen: torch.Tensor, direction: torch.Tensor, eps: float = DELTA_EPS
) -> torch.Tensor:
    """``mean_n [1 - cos(e_train_n - e_frozen_n, direction)]``, the main StyleGAN-NADA loss.

    ``direction`` is (D,) or one row per sample; it must be non-zero (checked once,
    before training, by the code that builds it).
    """
    delta = unit(e_train - e_frozen, eps)
    return (1.0 - (delta * unit(direction)).sum(-1)).mean()


def global_loss(e_images: torch.Tensor, e_target: torch.Tensor) -> torch.Tensor:
    """``mean_n [1 - cos(e_n, e_target)]``: pulls each image towards the target embedding."""
    return (1.0 - (unit(e_images) * unit(e_target)).sum(-1)).mean()


def patch_directional_loss(
    e_train_patches: torch.Tensor,
    e_frozen_patches: torch.Tensor,
    part_directions: torch.Tensor,
    eps: float = DELTA_EPS,
) -> torch.Tensor:
    """Directional loss per image patch, scored against K part-template directions.

    With ``c_pk = cos(dI_p, dT_k)`` and ``pi_pk = softmax_k(c_pk)``:
    ``L = mean_p sum_k pi_pk (1 - c_pk)``, i.e. each patch is held to the part
    directions it already resembles most.
    """
    delta = unit(e_train_patches - e_frozen_patches, eps)  # (P, D)
    dirs = unit(part_directions.reshape(-1, part_directions.shape[-1]))  # (K, D)
    cos = delta @ dirs.T  # (P, K)
    return (cos.softmax(dim=-1) * (1.0 - cos)).sum(-1).mean()


def clip_angle_loss(e_train: torch.Tensor, e_frozen: torch.Tensor, text_cos: torch.Tensor | float) -> torch.Tensor:
    """``mean_n (cos(e_train_n, e_frozen_n) - cos(T_source, T_target))^2``.

    Each image should move away from its frozen counterpart by the same angle as the
    target text lies from the source text: no further (over-shoot) and no less.
    """
    cos_img = (unit(e_train) * unit(e_frozen)).sum(-1)
    return ((cos_img - text_cos) ** 2).mean()


def manifold_consistency_loss(e_train: torch.Tensor, e_frozen: torch.Tensor) -> torch.Tensor:
    """``mean_{i != j} (cos(e_train_i, e_train_j) - cos(e_frozen_i, e_frozen_j))^2``.

    Keeps the pairwise angles within a batch, so the samples keep their relative layout
    in CLIP space (diversity) while the whole batch moves to the new domain.
    """
    n = e_train.shape[0]
    if n < 2:
        return e_train.sum() * 0.0  # no pairs; keeps the graph for callers that backprop
    a, b = unit(e_train), unit(e_frozen)
    diff = a @ a.T - b @ b.T
    off = ~torch.eye(n, dtype=torch.bool, device=diff.device)
    return (diff[off] ** 2).mean()


def attribute_keep_loss(
    e_train: torch.Tensor, e_frozen: torch.Tensor, alternatives: torch.Tensor, logit_scale: float
) -> torch.Tensor:
    """``mean_n KL(p_frozen_n || p_train_n)`` of CLIP's zero-shot choice among K alternatives.

    ``p_n = softmax_k(s * cos(e_n, T_k))`` with ``alternatives`` (K, D) unit text embeddings
    (e.g. circle, square, triangle) and ``s`` the model's logit scale. Zero when the trained
    image reads as the same alternative, with the same confidence, as its frozen twin.
    """
    log_p_train = torch.log_softmax(logit_scale * unit(e_train) @ alternatives.T, dim=-1)
    log_p_frozen = torch.log_softmax(logit_scale * unit(e_frozen) @ alternatives.T, dim=-1)
    return (log_p_frozen.exp() * (log_p_frozen - log_p_train)).sum(-1).mean()


def read_source_direction(
    e_frozen: torch.Tensor, target: torch.Tensor, sources: torch.Tensor, logit_scale: float
) -> torch.Tensor:
    """Per-sample text direction ``target - sum_k p_nk S_k`` (N, D).

    ``p_n = softmax_k(s * cos(e_frozen_n, S_k))`` is CLIP's zero-shot reading of each frozen
    image among the K unit source-text embeddings ``sources`` (K, D): each image moves from
    the source it shows towards the target, not from one source text shared by all.
    """
    p = torch.softmax(logit_scale * unit(e_frozen) @ sources.T, dim=-1)
    return target.unsqueeze(0) - p @ sources


def gram_matrix(tokens: torch.Tensor) -> torch.Tensor:
    """(N, T, C) token features -> (N, C, C) Gram matrices ``X^T X / T``."""
    return tokens.transpose(1, 2) @ tokens / tokens.shape[1]


def texture_loss(train_tokens: Sequence[torch.Tensor], style_grams: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_l mean_{n,a,b} (G_l(train_n) - S_l)_{ab}^2`` over CLIP vision layers.

    ``train_tokens[l]`` is (N, T, C) patch-token features (class token removed) of the
    trained images at layer l; ``style_grams[l]`` is the (C, C) mean Gram matrix of the
    style images at the same layer. Gram matrices keep feature co-occurrence (texture)
    and discard position (layout).
    """
    if len(train_tokens) != len(style_grams) or not train_tokens:
        raise ValueError(f"texture_loss needs one style Gram per layer, got {len(train_tokens)} and {len(style_grams)}")
    terms = [((gram_matrix(t) - g.unsqueeze(0)) ** 2).mean() for t, g in zip(train_tokens, style_grams)]
    return torch.stack(terms).mean()


def self_similarity(tokens: torch.Tensor) -> torch.Tensor:
    """(N, T, C) token features -> (N, T, T) cosine similarities between every pair of tokens."""
    u = unit(tokens)
    return u @ u.transpose(1, 2)


def structure_loss(train_tokens: Sequence[torch.Tensor], frozen_tokens: Sequence[torch.Tensor]) -> torch.Tensor:
    """``mean_l mean_{n,i,j} (S_l(train_n) - S_l(frozen_n))_{ij}^2`` over CLIP vision layers.

    ``S`` is the tokens' cosine self-similarity (:func:`self_similarity`), as in Splice's
    structure loss: which parts of an image resemble which others says where things are,
    while what each part looks like (colour, texture) may change. The counterpart of the
    texture loss, which keeps co-occurrence and drops layout.
    """
    if len(train_tokens) != len(frozen_tokens) or not train_tokens:
        raise ValueError(f"structure_loss needs the same, non-zero number of layers, got {len(train_tokens)} and {len(frozen_tokens)}")
    terms = [((self_similarity(a) - self_similarity(b)) ** 2).mean() for a, b in zip(train_tokens, frozen_tokens)]
    return torch.stack(terms).mean()


def l2_loss(img_train: torch.Tensor, img_frozen: torch.Tensor) -> torch.Tensor:
    """``mean((img_train - img_frozen)^2)`` over every pixel and channel."""
    return ((img_train - img_frozen) ** 2).mean()


def perceptual_loss(feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor], eps: float = 1e-10) -> torch.Tensor:
    """LPIPS-like distance from a network's feature maps (no learned per-channel weights).

    ``sum_l mean_{n,h,w} sum_c (a_hat - b_hat)^2`` with features unit-normalised along
    channels, ``a_hat = a / |a|_c``. Feature maps are (N, C, H, W).
    """
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError("perceptual_loss needs the same, non-zero number of feature maps for both images")
    total = 0.0
    for a, b in zip(feats_a, feats_b):
        a_hat = a / (a.norm(dim=1, keepdim=True) + eps)
        b_hat = b / (b.norm(dim=1, keepdim=True) + eps)
        total = total + ((a_hat - b_hat) ** 2).sum(dim=1).mean()
    return total  # type: ignore[return-value]


class LearnedLossWeights(nn.Module):
    """Learned log-variance weighting: ``total = sum_i exp(-s_i) * L_i + s_i``.

    For a fixed loss value the optimum is ``s_i = log L_i``, i.e. weight ``1 / L_i``:
    every term is scaled to contribute about equally, and the ``+ s_i`` term stops the
    weights from collapsing to zero (which a plain optimiser on ``lambda_i * L_i`` does).
    Because a loss can sit at exactly zero (the L2 term at the first step), ``s_i`` is
    kept in ``[min_log_var, max_log_var]`` by a sigmoid, so every weight ``exp(-s_i)``
    stays finite and positive whatever the losses do.
    """

    def __init__(
        self,
        names: Sequence[str],
        init_weights: Mapping[str, float] | None = None,
        min_log_var: float = -6.0,
        max_log_var: float = 6.0,
    ):
        super().__init__()
        names = list(names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"need distinct loss names, got {names}")
        if not min_log_var < max_log_var:
            raise ValueError("min_log_var must be below max_log_var")
        self.names = names
        self.min_log_var = float(min_log_var)
        self.max_log_var = float(max_log_var)
        init_weights = dict(init_weights or {})
        raw = []
        for name in names:
            w = float(init_weights.get(name, 1.0))
            if not math.isfinite(w) or w <= 0:
                raise ValueError(f"initial weight for {name!r} must be positive, got {w}")
            s = min(max(-math.log(w), self.min_log_var + 1e-3), self.max_log_var - 1e-3)
            frac = (s - self.min_log_var) / (self.max_log_var - self.min_log_var)
            raw.append(math.log(frac / (1.0 - frac)))  # inverse sigmoid
        self.raw = nn.Parameter(torch.tensor(raw, dtype=torch.float32))

    def log_vars(self) -> torch.Tensor:
        return self.min_log_var + (self.max_log_var - self.min_log_var) * torch.sigmoid(self.raw)

    def weights(self) -> dict[str, float]:
        """Current ``exp(-s_i)`` per loss name."""
        w = torch.exp(-self.log_vars().detach())
        return {n: float(v) for n, v in zip(self.names, w)}

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [n for n in self.names if n not in losses]
        if missing:
            raise KeyError(f"missing loss terms {missing}")
        s = self.log_vars()
        total = 0.0
        for i, name in enumerate(self.names):
            total = total + torch.exp(-s[i]) * losses[name] + s[i]
        return total  # type: ignore[return-value]

"""Which weights of the trained generator learn: layer groups, parameter scopes, adaptive selection.

A *layer* here is a W+ row: choosing row ``i`` trains every synthesis unit that reads row
``i`` (see :meth:`Generator.synthesis_layers`: a ToRGB shares its row with the next
resolution's first convolution). The mapping network never trains: both generators must
keep one latent space.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from ..generators.stylegan2 import Generator
from ..errors import ConfigError

LAYER_GROUPS = ("adaptive", "all", "texture", "shape", "no-fine")
SCOPES = ("full", "conv", "affine")  # every parameter / convolution weights / modulation and noise strengths


class LayerSpecError(ConfigError):
    pass


def group_rows(group: str, num_ws: int) -> list[int]:
    """W+ rows of a fixed group.

    ``shape``: the coarse half (pose, silhouette); ``texture``: the fine half (colour,
    texture); ``no-fine``: everything but the two finest resolutions (last four rows);
    ``all``: every row.
    """
    half = num_ws // 2
    if group == "all":
        return list(range(num_ws))
    if group == "shape":
        return list(range(half))
    if group == "texture":
        return list(range(half, num_ws))
    if group == "no-fine":
        return list(range(max(1, num_ws - 4)))
    raise LayerSpecError(f"unknown layer group {group!r}; choose from {', '.join(LAYER_GROUPS)} or a list of row indices")


def parse_layers(spec: str | Sequence[int], num_ws: int | None) -> str | list[int]:
    """``"adaptive"``, a group name, or explicit rows (``"0,1,5"`` or a list) -> mode or row list.
    ``num_ws`` None checks the syntax only (a group name then comes back as it is)."""
    if isinstance(spec, str):
        s = spec.strip()
        if s in LAYER_GROUPS:
            return s if s == "adaptive" or num_ws is None else group_rows(s, num_ws)
        try:
            rows = [int(t) for t in s.replace(" ", "").split(",") if t]
        except ValueError:
            raise LayerSpecError(f"--layers {spec!r}: expected one of {', '.join(LAYER_GROUPS)} or comma-separated row indices") from None
    else:
        rows = [int(r) for r in spec]
    if not rows:
        raise LayerSpecError("--layers: an empty list of rows trains nothing")
    bad = [r for r in rows if r < 0 or (num_ws is not None and r >= num_ws)]
    if bad:
        have = "rows count from 0" if num_ws is None else f"this generator has W+ rows 0..{num_ws - 1}"
        raise LayerSpecError(f"--layers: rows {bad} out of range; {have}")
    return sorted(set(rows))


def _in_scope(param_name: str, scope: str) -> bool:
    leaf = param_name.split(".")
    if scope == "full":
        return True
    if scope == "conv":
        return leaf[-2:] == ["conv", "weight"]
    if scope == "affine":
        return "modulation" in leaf or leaf[-2:] == ["noise", "weight"]
    raise LayerSpecError(f"unknown parameter scope {scope!r}; choose from {', '.join(SCOPES)}")


def parameter_names(G: Generator, rows: Iterable[int], scope: str = "full") -> list[str]:
    """Names of the parameters of ``G`` that train when ``rows`` are chosen under ``scope``."""
    rows = set(rows)
    names = []
    for unit in G.synthesis_layers():
        if unit.ws_index in rows:
            names.extend(n for n in unit.parameters if _in_scope(n, scope))
    return names


def apply_freeze(G: Generator, trainable: Iterable[str], optimizer: torch.optim.Optimizer | None = None) -> list[str]:
    """Freeze every parameter of ``G`` except ``trainable``; return the trainable names.

    Moments the optimiser holds for a parameter that is now frozen are dropped, so a
    layer that is chosen again later starts from fresh statistics rather than stale ones.
    """
    trainable = set(trainable)
    for name, p in G.named_parameters():
        on = name in trainable
        p.requires_grad_(on)
        if not on:
            p.grad = None
            if optimizer is not None:
                optimizer.state.pop(p, None)
    return sorted(trainable)


@dataclass
class Selection:
    rows: list[int]
    scores: list[float]  # per W+ row: mean |w_opt - w| after the probe


def select_rows_adaptive(G_train: Generator, ws: torch.Tensor, global_loss: Callable[[torch.Tensor], torch.Tensor],
                         k: int, iters: int, lr: float = 0.01, chunk: int | None = None) -> Selection:
    """The paper's adaptive layer choice.

    Starting from ``ws`` (N, num_ws, w_dim), take ``iters`` SGD steps on the W+ codes alone
    under ``global_loss`` through the *trained* generator, then rank rows by how far their
    codes moved and keep the top ``k``. Only the codes get gradients; the generator's
    parameters and their ``.grad`` are untouched. ``chunk`` bounds memory: the codes are
    pushed through in pieces of that many, each loss weighted by its share of the batch,
    which gives the gradient of the batch-mean loss.
    """
    k = max(1, min(k, G_train.num_ws))
    start = ws.detach()
    w = start.clone()
    n = len(w)
    chunk = n if not chunk or chunk >= n else chunk
    for _ in range(max(1, iters)):
        grad = torch.empty_like(w)
        for i in range(0, n, chunk):
            part = w[i:i + chunk].clone().requires_grad_(True)
            loss = global_loss(G_train.synthesis(part, noise_mode="const")) * (len(part) / n)
            (grad[i:i + chunk],) = torch.autograd.grad(loss, part)
        with torch.no_grad():
            w -= lr * grad
    scores = (w.detach() - start).abs().mean(dim=-1).mean(dim=0)
    rows = torch.topk(scores, k).indices.sort().values.tolist()
    return Selection(rows=rows, scores=scores.tolist())


def scheduled_k(step: int, k: int, falloff: int, min_k: int) -> int:
    """k shrinks by one every ``falloff`` steps (0 = never), down to ``min_k``."""
    if falloff <= 0:
        return k
    return max(min_k, k - step // falloff)

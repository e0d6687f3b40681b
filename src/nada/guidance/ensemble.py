"""Several CLIP models used together with relative weights (``--clip NAME[:WEIGHT]``, repeatable)."""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import GuidanceError

if TYPE_CHECKING:  # torch stays unimported for config code that only parses specs
    import torch

__all__ = ["ClipEnsemble", "parse_clip_spec"]


def parse_clip_spec(spec: str) -> tuple[str, float]:
    """``"ViT-B/16:0.5"`` -> ``("ViT-B/16", 0.5)``; without ``:WEIGHT`` the weight is 1.

    Only a suffix that parses as a number is taken as the weight, so names and paths with
    colons in them still work; a spec that names an existing file or directory as a whole
    (``ckpt:3`` on disk) is that path with weight 1.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise GuidanceError(f"empty CLIP spec {spec!r}; expected NAME or NAME:WEIGHT")
    spec = spec.strip()
    name, weight = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head and not os.path.exists(os.path.expanduser(spec)):
        try:
            weight = float(tail)
            name = head
        except ValueError:
            pass
    if not math.isfinite(weight) or weight <= 0:
        raise GuidanceError(f"CLIP spec {spec!r}: the weight must be a positive number, got {weight}")
    return name, weight


class ClipEnsemble:
    """CLIP models with weights normalised to sum to 1.

    Each model keeps its own embedding space; losses are computed per model and combined
    as ``sum_k w_k * L_k``.
    """

    def __init__(self, models: Sequence, weights: Sequence[float] | None = None):
        models = list(models)
        if not models:
            raise GuidanceError("a CLIP ensemble needs at least one model")
        weights = [1.0] * len(models) if weights is None else [float(w) for w in weights]
        if len(weights) != len(models):
            raise GuidanceError(f"{len(models)} CLIP models but {len(weights)} weights")
        if any(not math.isfinite(w) or w <= 0 for w in weights):
            raise GuidanceError(f"CLIP weights must be positive numbers, got {weights}")
        total = sum(weights)
        self.models = models
        self.weights = [w / total for w in weights]

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[str],
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> "ClipEnsemble":
        """Load every ``NAME[:WEIGHT]`` spec with :func:`nada.guidance.clip.load_clip`."""
        from .clip import load_clip

        if isinstance(specs, str):
            specs = [specs]
        parsed = [parse_clip_spec(s) for s in specs]
        models = [load_clip(name, device=device, dtype=dtype, cache_dir=cache_dir) for name, _ in parsed]
        return cls(models, [w for _, w in parsed])

    def __len__(self) -> int:
        return len(self.models)

    def __iter__(self) -> Iterator[tuple[object, float]]:
        return iter(zip(self.models, self.weights))

    def __repr__(self) -> str:
        inner = ", ".join(f"{m.name}:{w:.3g}" for m, w in self)
        return f"ClipEnsemble({inner})"

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def weighted(self, values: Sequence[torch.Tensor | float]) -> torch.Tensor | float:
        """``sum_k w_k * values[k]`` for one value per model."""
        if len(values) != len(self.models):
            raise ValueError(f"expected {len(self.models)} values, got {len(values)}")
        return sum(w * v for w, v in zip(self.weights, values))

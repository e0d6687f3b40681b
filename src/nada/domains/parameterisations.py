"""Compact parameterisations: a few trainable vectors acting through hooks on the frozen generator.

Each *space* says which modulated convolutions carry a vector, how the vector acts (a hook) and
how it folds into plain weights (bake). Vectors are keyed by the synthesis unit's module path
(``conv1``, ``convs.3``, ``to_rgbs.2``...), the names a domain file stores.

``modulation`` -- HyperDomainNet's domain-modulation vector (their ``cin_mult`` head): for every
modulated convolution of the styled layers (ToRGB excluded, as theirs), a vector ``d`` of one entry
per input channel multiplies the convolution's weight, ``W'[o, i] = W[o, i] * exp(d[i])``.
HyperDomainNet writes ``1 + d``; ``exp(d)`` equals it to first order, keeps multipliers positive and
makes domains mix linearly in ``d`` (log-multipliers). ``d = 0`` at the start: ``exp(0) = 1``
exactly, so the first images are bit-identical to the base's. Foldable exactly: the multiplier of
an input channel commutes with demodulation (``demod`` is computed from the multiplied weight).

``stylespace`` -- StyleDomain's StyleSpace offsets (their ``s_delta``): for every modulated layer,
ToRGB included, an offset ``Δs`` added to the style vector, ``s' = A(w) + Δs``; zero at the start.
Foldable exactly into the affine (modulation) layer's bias: ``b' = b + Δs / lr_mul``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from ..adapt.errors import AdaptError
from ..adapt.layers import parse_layers
from ..adapt.parameterisation import HookParameterisation
from ..generators.stylegan2 import Generator, ModulatedConv2d, SynthesisLayer

__all__ = ["DOMAIN_PARAMS", "Space", "SPACES", "DomainParameterisation", "make_parameterisation", "space_hooks"]

Hook = Callable[[torch.Tensor], torch.Tensor]


class Space:
    """Where a parameterisation's vectors sit and how they act; stateless."""

    name = "space"
    kinds: tuple[str, ...] = ("conv", "torgb")

    def units(self, G: Generator) -> list[tuple[int, SynthesisLayer, ModulatedConv2d]]:
        """``(index in G.modulated_convs(), unit, conv)`` of every conv that carries a vector."""
        return [(i, unit, conv) for i, (unit, conv) in enumerate(G.modulated_convs()) if unit.kind in self.kinds]

    def size(self, conv: ModulatedConv2d) -> int:
        return conv.in_channel

    def hook(self, vector: torch.Tensor) -> Hook:
        raise NotImplementedError

    def hook_kind(self) -> str:  # "style" or "weight"
        raise NotImplementedError

    def fold(self, conv: ModulatedConv2d, vector: torch.Tensor) -> None:
        raise NotImplementedError


class ModulationSpace(Space):
    name = "modulation"
    kinds = ("conv",)

    def hook(self, vector: torch.Tensor) -> Hook:
        return lambda weight, d=vector: weight * torch.exp(d).view(1, -1, 1, 1)

    def hook_kind(self) -> str:
        return "weight"

    def fold(self, conv: ModulatedConv2d, vector: torch.Tensor) -> None:
        conv.weight.mul_(torch.exp(vector.to(conv.weight)).view(1, 1, -1, 1, 1))


class StyleSpace(Space):
    name = "stylespace"
    kinds = ("conv", "torgb")

    def hook(self, vector: torch.Tensor) -> Hook:
        return lambda style, d=vector: style + d

    def hook_kind(self) -> str:
        return "style"

    def fold(self, conv: ModulatedConv2d, vector: torch.Tensor) -> None:
        conv.modulation.bias.add_(vector.to(conv.modulation.bias) / conv.modulation.lr_mul)


SPACES: dict[str, Space] = {s.name: s for s in (ModulationSpace(), StyleSpace())}
DOMAIN_PARAMS = tuple(SPACES)


def check_vectors(space: Space, G: Generator, vectors: Mapping[str, torch.Tensor], what: str) -> dict[str, int]:
    """Every vector names a unit of ``space`` in ``G`` and has its size; returns name -> conv index (one-line errors)."""
    index = {unit.name: (i, conv) for i, unit, conv in space.units(G)}
    out: dict[str, int] = {}
    for name, v in vectors.items():
        if name not in index:
            raise AdaptError(f"{what}: {space.name} vector {name!r} names no {'/'.join(space.kinds)} layer of this "
                             f"generator ({G.resolution} px, layers {', '.join(index)})")
        i, conv = index[name]
        if tuple(v.shape) != (space.size(conv),):
            raise AdaptError(f"{what}: {space.name} vector {name!r} has shape {tuple(v.shape)}; this generator's layer "
                             f"needs ({space.size(conv)},)")
        out[name] = i
    return out


def space_hooks(G: Generator, mixes: Mapping[str, Mapping[str, torch.Tensor]],
                what: str = "domain") -> tuple[dict[int, Hook], dict[int, Hook]]:
    """Style and weight hooks (by conv index) for ``{space name: {unit name: vector}}`` on ``G``."""
    style: dict[int, Hook] = {}
    weight: dict[int, Hook] = {}
    for space_name, vectors in mixes.items():
        space = SPACES[space_name]
        target = style if space.hook_kind() == "style" else weight
        for name, i in check_vectors(space, G, vectors, what).items():
            fn = space.hook(vectors[name])
            old = target.get(i)
            target[i] = fn if old is None else (lambda x, fn=fn, old=old: fn(old(x)))
    return style, weight


def fold_into(G: Generator, mixes: Mapping[str, Mapping[str, torch.Tensor]], what: str = "domain") -> None:
    """Write ``{space: {unit: vector}}`` into ``G``'s weights in place (what the hooks draw, to float tolerance)."""
    convs = [conv for _, conv in G.modulated_convs()]
    with torch.no_grad():
        for space_name, vectors in mixes.items():
            space = SPACES[space_name]
            for name, i in check_vectors(space, G, vectors, what).items():
                space.fold(convs[i], vectors[name].detach())


class DomainParameterisation(HookParameterisation):
    """Trains one space's vectors (zero at the start: images bit-identical to the base's).

    ``layers``: ``"adaptive"`` and ``"all"`` train every unit of the space (both papers train
    all their vectors; a per-step probe buys little when the whole domain is a few thousand
    numbers); a group name (``texture``, ``shape``, ``no-fine``) or W+ rows restrict it to the
    units reading those rows: only their vectors exist, train and are saved.
    """

    def __init__(self, G_frozen: Generator, space: str | Space, layers: str | Sequence[int] = "adaptive"):
        super().__init__(G_frozen)
        self.space = SPACES[space] if isinstance(space, str) else space
        self.name = self.space.name
        mode = parse_layers(layers, G_frozen.num_ws)
        rows = set(range(G_frozen.num_ws)) if mode == "adaptive" else set(mode)
        device = G_frozen.w_avg.device
        self.vectors: dict[str, torch.Tensor] = {
            unit.name: torch.zeros(self.space.size(conv), device=device, requires_grad=True)
            for _, unit, conv in self.space.units(G_frozen) if unit.ws_index in rows}
        if not self.vectors:
            raise AdaptError(f"--layers {layers!r}: no {self.space.name} layer reads those rows; nothing would train")
        self._rows = sorted({unit.ws_index for _, unit, _ in self.space.units(G_frozen) if unit.name in self.vectors})

    @property
    def rows(self) -> list[int]:
        return list(self._rows)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.vectors.values())

    def _hooks(self) -> tuple[dict[int, Hook], dict[int, Hook]]:
        return space_hooks(self.G_frozen, {self.space.name: self.vectors}, what=self.space.name)

    def style_hooks(self) -> dict[int, Hook]:
        return self._hooks()[0]

    def weight_hooks(self) -> dict[int, Hook]:
        return self._hooks()[1]

    def domain_tensors(self) -> dict[str, torch.Tensor]:
        """The trained vectors, detached, on the CPU (what ``domain.safetensors`` stores)."""
        return {k: v.detach().to("cpu").clone().contiguous() for k, v in self.vectors.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"domain": {k: v.detach().clone() for k, v in self.vectors.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("domain")
        if not isinstance(saved, dict) or set(saved) != set(self.vectors):
            raise AdaptError(f"training state does not fit this {self.space.name} run (its vectors differ)")
        with torch.no_grad():
            for k, v in self.vectors.items():
                if saved[k].shape != v.shape:
                    raise AdaptError(f"training state does not fit this generator ({k}: {tuple(saved[k].shape)})")
                v.copy_(saved[k])

    def bake(self, G: Generator) -> None:
        fold_into(G, {self.space.name: self.vectors}, what=self.space.name)


def make_parameterisation(cfg: Any) -> Callable[[Generator], Any]:
    """``G_frozen -> Parameterisation`` for ``cfg.param`` (``finetune``: the config's row-selective fine-tuning)."""
    from ..adapt.parameterisation import FineTune

    param = getattr(cfg, "param", "finetune")
    if param == "finetune":
        return lambda G: FineTune.from_config(cfg, G)
    if param not in SPACES:
        raise AdaptError(f"unknown parameterisation {param!r}; choose from finetune, {', '.join(SPACES)}")
    return lambda G: DomainParameterisation(G, param, cfg.layers)


def sum_vectors(parts: Iterable[tuple[Mapping[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """``sum(strength * vectors)`` by unit name (the union of names; a missing one counts as zero)."""
    out: dict[str, torch.Tensor] = {}
    for vectors, strength in parts:
        for name, v in vectors.items():
            term = v * strength if strength != 1.0 else v
            out[name] = term if name not in out else out[name] + term
    return out



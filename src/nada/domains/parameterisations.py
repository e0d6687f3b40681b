"""Compact parameterisations: a few trainable tensors acting on the frozen generator.

A parameterisation is made of *spaces*. A space says which modulated convolutions carry a tensor,
its shape, how it acts (a style hook, a weight hook, or a replacement of the affine layer's
parameters) and how it folds into plain weights (bake). Tensors are keyed ``"{space}/{unit}"``,
the unit being the synthesis module's path (``conv1``, ``convs.3``, ``to_rgbs.2``...): the names
a domain file stores. Every tensor is zero at the start and every action is the identity at zero,
so the first images are bit-identical to the base's. Every space is linear in its tensor, so
domains mix by adding ``strength * tensor`` key by key.

Spaces (formulas in docs/domains.md):

* ``modulation`` -- HyperDomainNet's domain-modulation vector (``cin_mult``), styled convs only:
  ``W'[o, i] = W[o, i] * exp(d[i])`` (theirs: ``1 + d``; equal to first order, mixes in log space).
* ``stylespace`` -- StyleDomain's StyleSpace offsets (``s_delta``), every modulated layer:
  ``s' = A(w) + Δs``; folds into the affine bias, ``b' = b + Δs / lr_mul``.
* ``weight`` -- StyleDomain's additive weight offsets (``out_in_additive``): ``W'[o, i, :, :] = W[o, i, :, :] + Δ[o, i]``
  on the convolutions (and ToRGB) of the 64-px block only (their ``.b64``).
* ``affine.weight`` / ``affine.bias`` -- offsets of the affine layer ``A`` of every modulated layer
  (their ``synt_affine,tRGB_affine``): ``A'(w) = (M + ΔM) w * c + (b + Δb) * lr_mul``.

Parameterisations: ``modulation``, ``stylespace``, ``stylespace+`` (stylespace + weight at 64 px) and
``affine+`` (affine.weight + affine.bias + weight at 64 px), StyleDomain's StyleSpace+ and Affine+.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..adapt.errors import AdaptError
from ..adapt.layers import parse_layers
from ..adapt.parameterisation import HookParameterisation, Parameterisation, hooks_installed
from ..generators.stylegan2 import Generator, ModulatedConv2d, SynthesisLayer

__all__ = ["DOMAIN_PARAMS", "PARAM_SPACES", "SPACES", "DomainParameterisation", "Space", "fold_into",
           "run_synthesis", "space_hooks", "sum_vectors"]

Hook = Callable[[torch.Tensor], torch.Tensor]
WEIGHT_OFFSET_RESOLUTION = 64  # StyleDomain's StyleSpace+/Affine+ offset the weights of the 64-px block


class Space:
    """Where a space's tensors sit, their shape, how they act and fold; stateless."""

    name = "space"
    kinds: tuple[str, ...] = ("conv", "torgb")
    action = "style"  # "style" or "weight" (a hook), or "params" (replaces the affine layer's parameters)

    def carries(self, G: Generator, unit: SynthesisLayer) -> bool:
        return unit.kind in self.kinds

    def units(self, G: Generator) -> list[tuple[int, SynthesisLayer, ModulatedConv2d]]:
        """``(index in G.modulated_convs(), unit, conv)`` of every conv that carries a tensor."""
        return [(i, unit, conv) for i, (unit, conv) in enumerate(G.modulated_convs()) if self.carries(G, unit)]

    def shape(self, conv: ModulatedConv2d) -> tuple[int, ...]:
        return (conv.in_channel,)

    def hook(self, tensor: torch.Tensor, conv: ModulatedConv2d) -> Hook:
        raise NotImplementedError

    def params(self, unit: SynthesisLayer, conv: ModulatedConv2d, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        raise NotImplementedError


class ModulationSpace(Space):
    name = "modulation"
    kinds = ("conv",)
    action = "weight"

    def hook(self, tensor: torch.Tensor, conv: ModulatedConv2d) -> Hook:
        return lambda weight, d=tensor: weight * torch.exp(d).view(1, -1, 1, 1)

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        conv.weight.mul_(torch.exp(tensor.to(conv.weight)).view(1, 1, -1, 1, 1))


class StyleSpace(Space):
    name = "stylespace"
    action = "style"

    def hook(self, tensor: torch.Tensor, conv: ModulatedConv2d) -> Hook:
        return lambda style, d=tensor: style + d

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        conv.modulation.bias.add_(tensor.to(conv.modulation.bias) / conv.modulation.lr_mul)


class WeightOffsetSpace(Space):
    name = "weight"
    action = "weight"

    def carries(self, G: Generator, unit: SynthesisLayer) -> bool:
        return unit.resolution == min(WEIGHT_OFFSET_RESOLUTION, G.resolution)

    def shape(self, conv: ModulatedConv2d) -> tuple[int, ...]:
        return (conv.out_channel, conv.in_channel)

    def hook(self, tensor: torch.Tensor, conv: ModulatedConv2d) -> Hook:
        # the hook sees the scaled weight (scale * W): the offset is in the stored weight's units
        return lambda weight, d=tensor, c=conv.scale: weight + c * d[:, :, None, None]

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        conv.weight.add_(tensor.to(conv.weight)[None, :, :, None, None])


class AffineWeightSpace(Space):
    name = "affine.weight"
    action = "params"

    def shape(self, conv: ModulatedConv2d) -> tuple[int, ...]:
        return tuple(conv.modulation.weight.shape)

    def params(self, unit: SynthesisLayer, conv: ModulatedConv2d, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"{unit.name}.conv.modulation.weight": conv.modulation.weight.detach() + tensor}

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        conv.modulation.weight.add_(tensor.to(conv.modulation.weight))


class AffineBiasSpace(AffineWeightSpace):
    name = "affine.bias"

    def shape(self, conv: ModulatedConv2d) -> tuple[int, ...]:
        return tuple(conv.modulation.bias.shape)

    def params(self, unit: SynthesisLayer, conv: ModulatedConv2d, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"{unit.name}.conv.modulation.bias": conv.modulation.bias.detach() + tensor}

    def fold(self, conv: ModulatedConv2d, tensor: torch.Tensor) -> None:
        conv.modulation.bias.add_(tensor.to(conv.modulation.bias))


SPACES: dict[str, Space] = {s.name: s for s in (ModulationSpace(), StyleSpace(), WeightOffsetSpace(),
                                                 AffineWeightSpace(), AffineBiasSpace())}
# parameterisation -> its spaces, in the order their actions apply
PARAM_SPACES: dict[str, tuple[str, ...]] = {
    "modulation": ("modulation",),
    "stylespace": ("stylespace",),
    "stylespace+": ("stylespace", "weight"),
    "affine+": ("affine.weight", "affine.bias", "weight"),
}
DOMAIN_PARAMS = tuple(PARAM_SPACES)


def split_key(key: str) -> tuple[str, str]:
    space, sep, unit = key.partition("/")
    if not sep or space not in SPACES:
        raise AdaptError(f"tensor name {key!r} is not '<space>/<layer>' with a space among {', '.join(SPACES)}")
    return space, unit


def _resolve(G: Generator, tensors: Mapping[str, torch.Tensor], what: str):
    """``[(space, unit, conv index, conv, tensor)]`` in space order, each checked against ``G`` (one-line errors)."""
    order = list(SPACES)
    out = []
    units = {}
    for key in sorted(tensors, key=lambda k: order.index(split_key(k)[0])):
        space_name, name = split_key(key)
        space = SPACES[space_name]
        if space_name not in units:
            units[space_name] = {unit.name: (i, unit, conv) for i, unit, conv in space.units(G)}
        index = units[space_name]
        if name not in index:
            raise AdaptError(f"{what}: {space_name} tensor for {name!r} names no layer of this generator that carries "
                             f"one ({G.resolution} px; {space_name} layers: {', '.join(index) or 'none'})")
        i, unit, conv = index[name]
        t = tensors[key]
        if tuple(t.shape) != space.shape(conv):
            raise AdaptError(f"{what}: {space_name} tensor for {name!r} has shape {tuple(t.shape)}; this generator's "
                             f"layer needs {space.shape(conv)}")
        out.append((space, unit, i, conv, t))
    return out


def space_hooks(G: Generator, tensors: Mapping[str, torch.Tensor], what: str = "domain"
                ) -> tuple[dict[int, Hook], dict[int, Hook], dict[str, torch.Tensor]]:
    """Style hooks, weight hooks (by conv index) and replacement parameters (by name) for ``tensors`` on ``G``."""
    style: dict[int, Hook] = {}
    weight: dict[int, Hook] = {}
    params: dict[str, torch.Tensor] = {}
    for space, unit, i, conv, t in _resolve(G, tensors, what):
        if space.action == "params":
            params.update(space.params(unit, conv, t))
            continue
        target = style if space.action == "style" else weight
        fn = space.hook(t, conv)
        old = target.get(i)
        target[i] = fn if old is None else (lambda x, fn=fn, old=old: fn(old(x)))
    return style, weight, params


class _Synthesis(nn.Module):
    def __init__(self, G: Generator):
        super().__init__()
        self.G = G

    def forward(self, ws: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        return self.G.synthesis(ws, **kwargs)


def run_synthesis(G: Generator, hooks: tuple[dict[int, Hook], dict[int, Hook], dict[str, torch.Tensor]],
                  ws: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """``G.synthesis(ws)`` with the hooks installed and the affine parameters replaced for this call only."""
    style, weight, params = hooks
    with hooks_installed(G, style=style, weight=weight):
        if not params:
            return G.synthesis(ws, **kwargs)
        return torch.func.functional_call(_Synthesis(G), {f"G.{k}": v for k, v in params.items()}, (ws, kwargs))


def fold_into(G: Generator, tensors: Mapping[str, torch.Tensor], what: str = "domain") -> None:
    """Write ``tensors`` into ``G``'s weights in place (what the hooks draw, to float rounding)."""
    with torch.no_grad():
        for space, _, _, conv, t in _resolve(G, tensors, what):
            space.fold(conv, t.detach())


class DomainParameterisation(HookParameterisation):
    """Trains one parameterisation's tensors (zero at the start: images bit-identical to the base's).

    ``layers``: ``"adaptive"`` and ``"all"`` train every tensor (both papers train all of theirs;
    a per-step probe buys little when a domain is a few thousand numbers); a group name
    (``texture``, ``shape``, ``no-fine``) or W+ rows restrict training to the layers reading those
    rows: only their tensors exist, train and are saved.
    """

    def __init__(self, G_frozen: Generator, param: str, layers: str | Sequence[int] = "adaptive"):
        super().__init__(G_frozen)
        if param not in PARAM_SPACES:
            raise AdaptError(f"unknown parameterisation {param!r}; choose from finetune, {', '.join(PARAM_SPACES)}")
        self.name = self.param = param
        mode = parse_layers(layers, G_frozen.num_ws)
        rows = set(range(G_frozen.num_ws)) if mode == "adaptive" else set(mode)
        device = G_frozen.w_avg.device
        self.vectors: dict[str, torch.Tensor] = {}
        trained_rows = set()
        for space_name in PARAM_SPACES[param]:
            space = SPACES[space_name]
            for _, unit, conv in space.units(G_frozen):
                if unit.ws_index in rows:
                    self.vectors[f"{space_name}/{unit.name}"] = torch.zeros(space.shape(conv), device=device,
                                                                             requires_grad=True)
                    trained_rows.add(unit.ws_index)
        if not self.vectors:
            raise AdaptError(f"--layers {layers!r}: no {param} layer reads those rows; nothing would train")
        self._rows = sorted(trained_rows)

    @property
    def rows(self) -> list[int]:
        return list(self._rows)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.vectors.values())

    def _hooks(self):
        return space_hooks(self.G_frozen, self.vectors, what=self.param)

    def style_hooks(self) -> dict[int, Hook]:
        return self._hooks()[0]

    def weight_hooks(self) -> dict[int, Hook]:
        return self._hooks()[1]

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return run_synthesis(self.G_frozen, self._hooks(), ws, noise_mode=noise_mode)

    def combine(self, others: Sequence[Parameterisation]) -> Parameterisation:
        if any(SPACES[s].action == "params" for s in PARAM_SPACES[self.param]):
            raise NotImplementedError(f"{self.param} combines as domains (nada.apply_domains), not as hooks")
        return super().combine(others)

    def domain_tensors(self) -> dict[str, torch.Tensor]:
        """The trained tensors, detached, on the CPU (what ``domain.safetensors`` stores)."""
        return {k: v.detach().to("cpu").clone().contiguous() for k, v in self.vectors.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"domain": {k: v.detach().clone() for k, v in self.vectors.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("domain")
        if not isinstance(saved, dict) or set(saved) != set(self.vectors):
            raise AdaptError(f"training state does not fit this {self.param} run (its tensors differ)")
        with torch.no_grad():
            for k, v in self.vectors.items():
                if saved[k].shape != v.shape:
                    raise AdaptError(f"training state does not fit this generator ({k}: {tuple(saved[k].shape)})")
                v.copy_(saved[k])

    def bake(self, G: Generator) -> None:
        fold_into(G, self.vectors, what=self.param)

    def domain_file(self) -> tuple[str, dict[str, torch.Tensor], dict[str, str]]:
        """What ``domain.safetensors`` holds: the parameterisation, its tensors and extra metadata."""
        import json

        return self.param, self.domain_tensors(), {"layers": json.dumps(sorted(self.vectors))}


def sum_vectors(parts: Iterable[tuple[Mapping[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """``sum(strength * tensors)`` key by key (the union of keys; a missing one counts as zero)."""
    out: dict[str, torch.Tensor] = {}
    for tensors, strength in parts:
        for key, v in tensors.items():
            term = v * strength if strength != 1.0 else v
            out[key] = term if key not in out else out[key] + term
    return out

"""What trains: a *parameterisation* of the adapted generator.

The training loop (:class:`nada.adapt.trainer.Trainer`) never touches generator internals. It
asks the parameterisation for

* :meth:`~Parameterisation.parameters` -- the trainable tensors (the optimiser's);
* :meth:`~Parameterisation.synthesis` -- the adapted forward pass, ``ws -> images``, built on the
  frozen generator (a trainable copy of its weights, or hooks on its style vectors / conv weights);
* :meth:`~Parameterisation.attach` -- called once with the optimiser over those tensors;
* :meth:`~Parameterisation.prepare` -- called once with the run's guidance;
* :meth:`~Parameterisation.loss` -- one step's loss (guidance's loss of the adapted images by default);
* :meth:`~Parameterisation.before_step` -- a per-step hook (adaptive row selection lives here); what
  it returns is logged (``layer_selections`` in the metrics, ``selections`` in the state);
* :meth:`~Parameterisation.state_dict` / :meth:`~Parameterisation.load_state_dict` -- its part of the
  training state (a flat dict of entries merged into the state file's top level);
* :meth:`~Parameterisation.combine` -- several adaptations as one;
* :meth:`~Parameterisation.adapted_generator` -- a plain :class:`Generator` to save.

:class:`FineTune` (row-selective fine-tuning of the synthesis weights) is the first one. A
hook-based one (StyleSpace offsets, per-channel domain modulation) installs callables on the
frozen generator's :class:`~nada.generators.stylegan2.ModulatedConv2d` modules (``style_hook`` /
``weight_hook``) for the duration of its forward pass: :class:`HookParameterisation` is their base,
:func:`hooks_installed` the mechanism.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from ..generators.stylegan2 import Generator
from .errors import AdaptError
from .layers import apply_freeze, parameter_names, parse_layers, scheduled_k, select_rows_adaptive


@dataclass
class StepContext:
    """What a per-step hook may use: the step about to run, latents from the run's own stream, the guidance."""

    step: int
    latents: Callable[[int, float], torch.Tensor]  # (n, mixing) -> ws, drawn from the training latent stream
    guidance: Any


class Parameterisation:
    """Base class: override what your parameterisation needs; the defaults do nothing."""

    name = "parameterisation"

    def __init__(self, G_frozen: Generator):
        self.G_frozen = G_frozen

    # the optimiser's tensors
    def parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Called once with the optimiser built over :meth:`parameters`."""

    # the adapted forward pass
    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        raise NotImplementedError

    def prepare(self, guidance: Any, frozen_sampler: Callable[[int], torch.Tensor] | None = None) -> None:
        """Called once with the run's prepared guidance, before training (e.g. to steer towards several targets)."""

    def loss(self, ws: torch.Tensor, img_frozen: torch.Tensor, guidance: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """One step's loss for latents ``ws`` whose frozen images are ``img_frozen``: guidance's loss of
        :meth:`synthesis` by default (a parameterisation learning several domains splits the batch)."""
        return guidance.loss(self.synthesis(ws, noise_mode="const"), img_frozen)

    # per-step hook
    def before_step(self, ctx: StepContext) -> dict[str, Any] | None:
        """Runs at the start of every step, before its latents are drawn; a returned dict is logged."""
        return None

    @property
    def rows(self) -> list[int]:
        """W+ rows that train now (every row unless the parameterisation chooses)."""
        return list(range(self.G_frozen.num_ws))

    # state
    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # results
    def adapted_generator(self) -> Generator:
        raise NotImplementedError

    def combine(self, others: Sequence["Parameterisation"]) -> "Parameterisation":
        """One parameterisation acting as ``self`` and ``others`` together."""
        raise NotImplementedError(f"{self.name} cannot combine with {', '.join(o.name for o in others)}")


@contextlib.contextmanager
def hooks_installed(G: Generator, style: dict[int, Callable] | None = None,
                    weight: dict[int, Callable] | None = None) -> Iterator[None]:
    """Install ``style_hook`` / ``weight_hook`` on ``G``'s modulated convolutions (keyed by their index in
    :meth:`Generator.modulated_convs`) for the duration of the block. A hook already there runs first
    (nested blocks compose); the previous hooks come back after."""
    convs = [conv for _, conv in G.modulated_convs()]
    saved = [(c.style_hook, c.weight_hook) for c in convs]
    try:
        for attr, hooks in (("style_hook", style), ("weight_hook", weight)):
            for i, fn in (hooks or {}).items():
                old = getattr(convs[i], attr)
                setattr(convs[i], attr, fn if old is None else (lambda x, fn=fn, old=old: fn(old(x))))
        yield
    finally:
        for c, (s, w) in zip(convs, saved):
            c.style_hook, c.weight_hook = s, w


class HookParameterisation(Parameterisation):
    """A parameterisation that acts through the frozen generator's hooks (StyleSpace offsets,
    per-channel domain modulation): override :meth:`style_hooks` / :meth:`weight_hooks` (index in
    :meth:`Generator.modulated_convs` -> callable) and :meth:`bake` (write the effect into a copy's
    weights, for :meth:`adapted_generator`). Such parameterisations combine by composing hooks."""

    def style_hooks(self) -> dict[int, Callable[[torch.Tensor], torch.Tensor]]:
        return {}

    def weight_hooks(self) -> dict[int, Callable[[torch.Tensor], torch.Tensor]]:
        return {}

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        with hooks_installed(self.G_frozen, style=self.style_hooks(), weight=self.weight_hooks()):
            return self.G_frozen.synthesis(ws, noise_mode=noise_mode)

    def bake(self, G: Generator) -> None:
        """Change ``G`` (a copy of the frozen generator) in place so it draws what the hooks draw."""
        raise NotImplementedError(f"{self.name} cannot be written as a plain generator")

    def adapted_generator(self) -> Generator:
        G = copy.deepcopy(self.G_frozen)
        with torch.no_grad():
            self.bake(G)
        return G

    def combine(self, others: Sequence[Parameterisation]) -> Parameterisation:
        if not all(isinstance(o, HookParameterisation) for o in others):
            return super().combine(others)
        return Combined(self.G_frozen, [self, *others])


class Combined(HookParameterisation):
    """Hook parameterisations acting together: their hooks compose in order (the first one's runs first)."""

    name = "combined"

    def __init__(self, G_frozen: Generator, parts: Sequence[HookParameterisation]):
        super().__init__(G_frozen)
        self.parts = list(parts)

    def parameters(self) -> list[torch.Tensor]:
        return [p for part in self.parts for p in part.parameters()]

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        for part in self.parts:
            part.attach(optimizer)

    def before_step(self, ctx: StepContext) -> dict[str, Any] | None:
        logged = [part.before_step(ctx) for part in self.parts]
        return {"step": ctx.step, "parts": logged} if any(x is not None for x in logged) else None

    def _composed(self, kind: str) -> dict[int, Callable]:
        out: dict[int, Callable] = {}
        for part in self.parts:
            for i, fn in getattr(part, kind)().items():
                old = out.get(i)
                out[i] = fn if old is None else (lambda x, fn=fn, old=old: fn(old(x)))
        return out

    def style_hooks(self) -> dict[int, Callable]:
        return self._composed("style_hooks")

    def weight_hooks(self) -> dict[int, Callable]:
        return self._composed("weight_hooks")

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for part, s in zip(self.parts, state["parts"], strict=True):
            part.load_state_dict(s)

    def bake(self, G: Generator) -> None:
        for part in self.parts:
            part.bake(G)


class FineTune(Parameterisation):
    """Row-selective fine-tuning: a trainable copy of the synthesis weights of which only the chosen
    W+ rows' parameters (under ``layer_scope``) learn.

    ``layers`` is ``"adaptive"`` (rows chosen by the paper's probe every ``interval`` steps, ``k``
    of them falling by one every ``falloff`` steps down to ``min_k``), a group name, or rows.
    Changing rows frees the rest (:func:`apply_freeze`), dropping their stale Adam moments.
    """

    name = "finetune"

    def __init__(self, G_frozen: Generator, layers: str | Sequence[int] = "adaptive", scope: str = "full", *,
                 interval: int = 50, k: int = 4, falloff: int = 0, min_k: int = 1, batch: int = 4,
                 iters: int = 1, lr: float = 0.01, chunk: int | None = None):
        super().__init__(G_frozen)
        self.G_train = copy.deepcopy(G_frozen).train()
        self.G_train.set_w_avg(G_frozen.w_avg)
        self.G_train.requires_grad_(False)  # apply_freeze decides what trains
        self.scope = scope
        self.interval, self.k, self.falloff, self.min_k = interval, k, falloff, min_k
        self.batch, self.iters, self.lr, self.chunk = batch, iters, lr, chunk
        self.layer_mode = parse_layers(layers, self.G_train.num_ws)
        self._rows: list[int] = [] if self.layer_mode == "adaptive" else list(self.layer_mode)
        self.optimizer: torch.optim.Optimizer | None = None

    @classmethod
    def from_config(cls, cfg: Any, G_frozen: Generator) -> "FineTune":
        return cls(G_frozen, cfg.layers, cfg.layer_scope, interval=cfg.auto_layer_interval, k=cfg.auto_layer_k,
                   falloff=cfg.auto_layer_falloff, min_k=cfg.auto_layer_min_k, batch=cfg.auto_layer_batch,
                   iters=cfg.auto_layer_iters, lr=cfg.auto_layer_lr, chunk=cfg.auto_layer_chunk or None)

    def parameters(self) -> list[torch.Tensor]:
        return [p for _, p in self.G_train.synthesis_parameters()]

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        if self._rows:
            self.set_rows(self._rows)

    @property
    def rows(self) -> list[int]:
        return self._rows

    def set_rows(self, rows: Sequence[int]) -> None:
        self._rows = sorted(rows)
        apply_freeze(self.G_train, parameter_names(self.G_train, self._rows, self.scope), self.optimizer)

    def before_step(self, ctx: StepContext) -> dict[str, Any] | None:
        if self.layer_mode != "adaptive" or ctx.step % self.interval != 0:
            return None
        k = scheduled_k(ctx.step, self.k, self.falloff, self.min_k)
        ws = ctx.latents(self.batch, 0.0)
        sel = select_rows_adaptive(self.G_train, ws, ctx.guidance.global_loss, k, self.iters, self.lr, chunk=self.chunk)
        self.set_rows(sel.rows)
        return {"step": ctx.step, "k": k, "rows": sel.rows, "scores": [float(f"{s:.4g}") for s in sel.scores]}

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.G_train.synthesis(ws, noise_mode=noise_mode)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": {k: v for k, v in self.G_train.state_dict().items() if not k.startswith("style.")},
                "rows": list(self._rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing, unexpected = self.G_train.load_state_dict(state["generator"], strict=False)
        if unexpected or any(not k.startswith("style.") for k in missing):
            raise AdaptError(f"training state does not fit this generator (missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.set_rows(list(state["rows"]))

    def adapted_generator(self) -> Generator:
        return self.G_train

    def combine(self, others: Sequence[Parameterisation]) -> "FineTune":
        """Fine-tunings of one base combine by adding their deltas from it: ``base + sum(trained - base)``."""
        if not all(isinstance(o, FineTune) for o in others):
            return super().combine(others)
        out = FineTune(self.G_frozen, "all", self.scope)
        base = dict(self.G_frozen.named_parameters())
        parts = [dict(part.G_train.named_parameters()) for part in (self, *others)]
        with torch.no_grad():
            for name, p in out.G_train.named_parameters():
                for part in parts:
                    p += part[name] - base[name]
        return out

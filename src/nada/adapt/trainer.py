"""The step-wise training loop: one :meth:`Trainer.step` is one iteration.

The trainer owns the latent stream, the optimisers, the step counter, the loss history and
the per-step log of the parameterisation's choices. It knows nothing of output folders,
progress bars or pictures: those are :class:`Callback` objects (``nada.adapt.callbacks``)
told about every step. What trains is a :class:`~nada.adapt.parameterisation.Parameterisation`.

Random numbers are drawn in a fixed order per step (the parameterisation's hook, e.g. an
adaptive layer choice, then the step's latents, then whatever guidance draws), so a run is
reproducible for a seed and thread count, and resumable bit-for-bit from
:meth:`Trainer.state_dict`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..generators.latents import style_mixed_ws
from ..generators.stylegan2 import Generator
from .errors import AdaptError, resolve_device
from .parameterisation import Parameterisation, StepContext


@dataclass
class StepResult:
    """What one step did."""

    step: int  # the number of finished steps, this one included
    losses: dict[str, float]  # every loss term guidance reported
    rows: list[int]  # the W+ rows that trained
    target_share: float | None = None  # CLIP's target share, when this step was a check step
    stopped: bool = False  # the run ends here (early stop) before its last step
    selection: dict[str, Any] | None = None  # what the parameterisation's per-step hook chose, if anything


class Callback:
    """Told about a run's events; override what you need. Called in list order."""

    def on_start(self, trainer: "Trainer") -> None:
        """Before the first step of this call to :meth:`Trainer.run` (also after a resume)."""

    def in_step(self, trainer: "Trainer", result: StepResult) -> None:
        """Still inside the step (an interrupted step is undone up to here): may set ``target_share``/``stopped``."""

    def on_step(self, trainer: "Trainer", result: StepResult) -> None:
        """After the step is complete."""

    def on_end(self, trainer: "Trainer") -> None:
        """After the loop, finished or not (always called)."""

    def on_finish(self, trainer: "Trainer") -> None:
        """The run is complete: write what a finished run leaves."""

    def stop_due(self, trainer: "Trainer") -> bool:
        """Whether the run should not take another step (e.g. an early stop reached before a resume)."""
        return False


class NonFiniteLoss(AdaptError):
    """The loss became NaN/inf; :meth:`message` adds where the last good state is."""

    def __init__(self, step: int, terms: dict[str, float]):
        self.step, self.terms = step, terms
        super().__init__(self.message())

    def message(self, where: str = "") -> str:
        terms = ", ".join(f"{k}={v:.4g}" for k, v in self.terms.items())
        return f"loss became non-finite at step {self.step} ({terms}){where}; try a lower --lr"


class Trainer:
    """Trains ``param`` (on top of the frozen ``G_frozen``) under ``guidance``, step by step.

    ``cfg`` is an :class:`~nada.adapt.config.AdaptConfig` (``seed``, ``lr``, ``beta1``, ``beta2``,
    ``batch``, ``mixing``, ``train_truncation``, ``iters``). Use :meth:`step` for one iteration,
    or :meth:`run` for all of them.
    """

    def __init__(self, cfg: Any, G_frozen: Generator, param: Parameterisation, guidance: Any,
                 callbacks: Sequence[Callback] = (), device: torch.device | str | None = None):
        self.cfg, self.G_frozen, self.param, self.guidance = cfg, G_frozen, param, guidance
        self.device = G_frozen.w_avg.device if device is None else \
            resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.callbacks = list(callbacks)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # training latents
        self.opt = torch.optim.Adam(param.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        weight_params = list(guidance.parameters())
        self.opt_weights = torch.optim.Adam(weight_params, lr=cfg.lr) if weight_params else None
        param.attach(self.opt)
        self.iteration = 0  # finished steps
        self.history: list[dict[str, Any]] = []
        self.selections: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self._t0: float | None = None
        self._snapshot: tuple | None = None  # RNG states etc. at the start of the step in progress
        self._dirty = False  # the step in progress has begun changing weights

    # ------------------------------------------------------------------ latents

    def latents(self, n: int, mixing: float) -> torch.Tensor:
        """``n`` W+ codes from the training stream, style-mixed with probability ``mixing``."""
        z = torch.randn(2, n, self.G_frozen.z_dim, generator=self.gen).to(self.device)
        with torch.no_grad():
            return style_mixed_ws(self.G_frozen, z, mixing, self.gen, truncation_psi=self.cfg.train_truncation)

    # ------------------------------------------------------------------ one step

    def train_step(self) -> dict[str, float]:
        """The optimisation of one step (no bookkeeping); returns guidance's loss terms."""
        selection = self.param.before_step(StepContext(self.iteration, self.latents, self.guidance))
        if selection is not None:
            self.selections.append(selection)
        ws = self.latents(self.cfg.batch, self.cfg.mixing)
        with torch.no_grad():
            img_frozen = self.G_frozen.synthesis(ws, noise_mode="const")
        loss, info = self.param.loss(ws, img_frozen, self.guidance)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(self.iteration, info)
        self.opt.zero_grad(set_to_none=True)
        if self.opt_weights is not None:
            self.opt_weights.zero_grad(set_to_none=True)
        loss.backward()
        self._dirty = True  # from here on the weights change: an interrupted step cannot be undone
        self.opt.step()
        if self.opt_weights is not None:
            self.opt_weights.step()
        self.iteration += 1
        return info

    def step(self) -> StepResult:
        """One iteration with its bookkeeping and callbacks; returns what happened."""
        if self._t0 is None:
            self._t0 = time.perf_counter() - self.elapsed
        n_selections = len(self.selections)
        self.begin_step()
        info = self.train_step()
        self.elapsed = time.perf_counter() - self._t0
        self.history.append({"step": self.iteration, **{k: float(f"{v:.6g}") for k, v in info.items()},
                             "time_s": round(self.elapsed, 3)})
        result = StepResult(self.iteration, dict(info), list(self.param.rows),
                            selection=self.selections[-1] if len(self.selections) > n_selections else None)
        for cb in self.callbacks:
            cb.in_step(self, result)
        self.end_step()
        for cb in self.callbacks:
            cb.on_step(self, result)
        return result

    @property
    def finished(self) -> bool:
        """All steps done, or a callback (the early stop) says no further step is due."""
        return self.iteration >= self.cfg.iters or any(cb.stop_due(self) for cb in self.callbacks)

    def start(self) -> None:
        self._t0 = time.perf_counter() - self.elapsed
        for cb in self.callbacks:
            cb.on_start(self)

    def end(self) -> None:
        for cb in self.callbacks:
            cb.on_end(self)

    def finish(self) -> None:
        for cb in self.callbacks:
            cb.on_finish(self)

    def run(self, before_step: Callable[[], None] | None = None) -> None:
        """Step until finished or stopped (``before_step`` runs before each, e.g. to raise on a Ctrl-C)."""
        self.start()
        try:
            while not self.finished:
                if before_step is not None:
                    before_step()
                if self.step().stopped:
                    break
        finally:
            self.end()

    # ------------------------------------------------------------------ undoing an interrupted step

    def begin_step(self) -> None:
        """Remember what a step changes before it touches a weight, so an interrupted step can be undone."""
        self._snapshot = (self.gen.get_state(), torch.get_rng_state(), self.guidance.state_dict(), len(self.selections))
        self._dirty = False

    def end_step(self) -> None:
        self._snapshot = None
        self._dirty = False

    def undo_step(self) -> bool:
        """Roll an unfinished step back to its start; False when it had already changed weights."""
        if self._snapshot is None:
            return True
        if self._dirty:
            return False
        gen_state, torch_state, guidance_state, n_selections = self._snapshot
        self.gen.set_state(gen_state)
        torch.set_rng_state(torch_state)
        self.guidance.load_state_dict(guidance_state)
        # a layer choice made in the undone step stays: the resumed step makes the same one again
        del self.selections[n_selections:]
        self._snapshot = None
        return True

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit-for-bit (with the parameterisation's entries)."""
        return {
            "step": self.iteration,
            "elapsed": self.elapsed,
            **self.param.state_dict(),
            "optimizer": self.opt.state_dict(),
            "optimizer_weights": self.opt_weights.state_dict() if self.opt_weights is not None else None,
            "guidance": self.guidance.state_dict(),
            "latent_rng": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "selections": self.selections,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.param.load_state_dict(state)  # first: choosing rows drops optimiser moments
        self.iteration = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.opt.load_state_dict(state["optimizer"])
        if (self.opt_weights is None) != (state["optimizer_weights"] is None):
            raise AdaptError("training state does not fit this run (learned loss weights differ)")
        if self.opt_weights is not None:
            self.opt_weights.load_state_dict(state["optimizer_weights"])
        self.guidance.load_state_dict(state["guidance"])
        self.gen.set_state(state["latent_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])
        self.selections = list(state["selections"])

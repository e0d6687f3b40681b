"""Small :class:`~nada.adapt.trainer.Callback` objects a run is made of: the early stop, sample
grids, state saving, the progress bar, the final generator, the loss plot and the metrics.

Their order in the trainer's list is the order things happen: :func:`default_callbacks`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import atomic_path, atomic_write_text
from ..imaging import save_grid
from .checkpoint import Checkpointer
from .rundir import RunDir
from .trainer import Callback, StepResult, Trainer


class EarlyStop(Callback):
    """Every ``stop_every`` steps, read CLIP's target share on fixed latents; stop ``stop_patience``
    steps after it first reaches ``stop_share`` (edits inside a source group only with
    ``stop_content_edits``)."""

    def __init__(self, cfg: Any, info: dict[str, Any], log: Callable[[str], None] = print):
        self.cfg, self.info, self.log = cfg, info, log
        # an edit of a grouped attribute ("red" -> "blue") is a content edit; the stop may skip those
        self.content_edit = bool(info.get("source_groups_used"))
        self.active = cfg.stop_share > 0 and (cfg.stop_content_edits or not self.content_edit)
        self._check_ws: torch.Tensor | None = None  # fixed latents CLIP reads

    @torch.no_grad()
    def target_share(self, trainer: Trainer) -> float:
        """Share of ``stop_samples`` fixed latents whose trained image CLIP reads as the target.

        The latents are drawn once from their own seed and use the training truncation; the
        reading (:meth:`Guidance.target_margin`) draws no random numbers, so checking does not
        change the run.
        """
        if self._check_ws is None:
            gen = torch.Generator().manual_seed(self.cfg.seed + 4242)
            z = torch.randn(self.cfg.stop_samples, trainer.G_frozen.z_dim, generator=gen).to(trainer.device)
            self._check_ws = trainer.G_frozen.mapping(z, truncation_psi=self.cfg.train_truncation)
        images = torch.cat([trainer.param.synthesis(self._check_ws[i:i + 16], noise_mode="const")
                            for i in range(0, len(self._check_ws), 16)])
        return float((trainer.guidance.target_margin(images) > 0).float().mean())

    @staticmethod
    def last_target_share(history: list[dict[str, Any]]) -> float | None:
        return next((h["target_share"] for h in reversed(history) if "target_share" in h), None)

    def _share_reached(self, entry: dict[str, Any]) -> bool:
        return self.active and entry.get("target_share", -1.0) >= self.cfg.stop_share

    def reached_step(self, history: list[dict[str, Any]]) -> int | None:
        """The step of the first check at which CLIP's target share reached ``stop_share``."""
        return next((h["step"] for h in history if self._share_reached(h)), None)

    def stop_due(self, trainer: Trainer) -> bool:
        reached = self.reached_step(trainer.history)
        return reached is not None and trainer.iteration - reached >= self.cfg.stop_patience

    def on_start(self, trainer: Trainer) -> None:
        cfg = self.cfg
        if cfg.stop_share > 0 and not self.active and trainer.iteration == 0:
            groups = "; ".join(",".join(g) for g in self.info["source_groups_used"])
            self.log(f"a content edit (source group {groups}): no early stop, "
                     f"all {cfg.iters} steps train (stop_content_edits off)")

    def in_step(self, trainer: Trainer, result: StepResult) -> None:
        if not self.active:
            return
        if trainer.iteration % self.cfg.stop_every == 0:
            trainer.history[-1]["target_share"] = result.target_share = self.target_share(trainer)
        result.stopped = result.stopped or (self.stop_due(trainer) and trainer.iteration < self.cfg.iters)

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        if not result.stopped:
            return
        history = trainer.history
        at = self.reached_step(history)
        if at is None:
            return
        share = next(h["target_share"] for h in history if h["step"] == at)
        after = f", {trainer.iteration - at} steps later (stop_patience {self.cfg.stop_patience})" if trainer.iteration > at else ""
        self.log(f"\nCLIP read {share:.0%} of the check samples as the target at step {at}: "
                 f"stopping at step {trainer.iteration}{after} (stop_share {self.cfg.stop_share:g})")


class Progress(Callback):
    """A tqdm bar with the main loss terms, the trained rows and the last target share."""

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def on_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, initial=trainer.iteration, desc="adapt", unit="it", dynamic_ncols=True)

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        bar = self.bar
        if bar is None:
            return
        bar.update(1)
        post = {k: f"{v:.4f}" for k, v in result.losses.items() if k in ("total", "direction", "global", "l2")}
        post["rows"] = ",".join(map(str, result.rows))
        share = EarlyStop.last_target_share(trainer.history)
        if share is not None:
            post["target"] = f"{share:.2f}"
        if result.stopped:
            bar.total = trainer.iteration  # the run ends here: a full bar, not a stalled one
        bar.set_postfix(post, refresh=result.stopped)

    def on_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SampleGrid:
    """Frozen samples (top row) over trained samples (bottom row) for fixed latents of their own seed."""

    def __init__(self, cfg: Any, G_frozen: Any, param: Any, device: torch.device):
        self.cfg, self.G_frozen, self.param = cfg, G_frozen, param
        gen = torch.Generator().manual_seed(cfg.seed + 12345)
        self.z = torch.randn(cfg.n_samples, G_frozen.z_dim, generator=gen).to(device)
        self._frozen: torch.Tensor | None = None
        self.upscale = max(1, 256 // G_frozen.resolution)

    @torch.no_grad()
    def grid(self) -> torch.Tensor:
        ws = self.G_frozen.mapping(self.z, truncation_psi=self.cfg.sample_truncation)
        if self._frozen is None:
            self._frozen = self.G_frozen.synthesis(ws, noise_mode="const")
        trained = self.param.synthesis(ws, noise_mode="const")
        return torch.cat([self._frozen, trained]).clamp(-1, 1)

    def save(self, path: Path) -> None:
        save_grid(self.grid(), path, nrow=self.cfg.n_samples, upscale=self.upscale)


class Samples(Callback):
    """``samples/step_NNNNNN.png`` before the first step and every ``every`` steps."""

    def __init__(self, grid: SampleGrid, rundir: RunDir, every: int):
        self.grid, self.rundir, self.every = grid, rundir, every

    def write(self, trainer: Trainer) -> None:
        self.grid.save(self.rundir / "samples" / f"step_{trainer.iteration:06d}.png")

    def on_start(self, trainer: Trainer) -> None:
        if trainer.iteration == 0 and self.every > 0:
            self.write(trainer)

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        if not result.stopped and self.every and trainer.iteration % self.every == 0:
            self.write(trainer)


class Checkpointing(Callback):
    """The training state every ``every`` steps (not at the last), and at the end unless already saved."""

    def __init__(self, checkpointer: Checkpointer, every: int, iters: int):
        self.checkpointer, self.every, self.iters = checkpointer, every, iters

    def on_step(self, trainer: Trainer, result: StepResult) -> None:
        if not result.stopped and self.every and trainer.iteration % self.every == 0 and trainer.iteration < self.iters:
            self.checkpointer.save()

    def on_finish(self, trainer: Trainer) -> None:
        if self.checkpointer.saved_step != trainer.iteration:  # (a resumed finished run has it already)
            self.checkpointer.save()


class FinalGenerator(Callback):
    """``generator.safetensors`` (and ``generator_rosinality.pt``): the parameterisation's adapted generator."""

    def __init__(self, rundir: RunDir, export_rosinality: bool = False):
        self.rundir, self.export = rundir, export_rosinality

    def on_finish(self, trainer: Trainer) -> None:
        # the lineage: later commands on this file (nada mapper) take the base generator's preset
        from ..generators.checkpoints import preset_name_for

        cfg = trainer.cfg
        meta = {"base_generator": str(cfg.generator)}
        preset = preset_name_for(str(cfg.generator))  # kept through chains of adaptations
        if preset:
            meta["preset"] = preset
        for key, text in (("source", cfg.guidance.source_text), ("target", cfg.guidance.target_text)):
            if text is not None:
                meta[key] = text if isinstance(text, str) else " | ".join(map(str, text))
        self.rundir.write_generator(trainer.param.adapted_generator(), self.export, metadata=meta)


class FinalDomain(Callback):
    """``domain.safetensors``: a compact parameterisation's trained vectors, the base's fingerprint and the
    run's texts (:mod:`nada.domains.domain`); ``generator_rosinality.pt`` (the domain baked in) on request."""

    def __init__(self, rundir: RunDir, cfg: Any, info: dict[str, Any], export_rosinality: bool = False):
        self.rundir, self.cfg, self.info, self.export = rundir, cfg, info, export_rosinality

    def on_finish(self, trainer: Trainer) -> None:
        from ..domains.domain import DOMAIN_FILE, save_domain

        param = trainer.param
        name, tensors, extra = param.domain_file()
        save_domain(self.rundir / DOMAIN_FILE, name, tensors, trainer.G_frozen,
                    source_text=self.info.get("source_text") or self.cfg.guidance.source_text,
                    target_text=self.info.get("target") or self.cfg.guidance.target_text,
                    clips=list(self.cfg.guidance.clip), steps=trainer.iteration, extra=extra)
        if self.export:
            from ..generators.checkpoints import export_rosinality

            export_rosinality(param.adapted_generator(), self.rundir / "generator_rosinality.pt")


class FinalGrid(Callback):
    """``final.png``."""

    def __init__(self, grid: SampleGrid, rundir: RunDir):
        self.grid, self.rundir = grid, rundir

    def on_finish(self, trainer: Trainer) -> None:
        self.grid.save(self.rundir / "final.png")


class LossPlot(Callback):
    """``loss.png``: every loss term over the steps, and the target share checks."""

    def __init__(self, rundir: RunDir):
        self.rundir = rundir

    def on_finish(self, trainer: Trainer) -> None:
        plot_losses(trainer.history, self.rundir / "loss.png")


class Metrics(Callback):
    """``metrics.json``, written last: its presence marks the run finished."""

    def __init__(self, rundir: RunDir, metrics: Callable[[bool], dict[str, Any]]):
        self.rundir, self.metrics = rundir, metrics

    def on_finish(self, trainer: Trainer) -> None:
        atomic_write_text(self.rundir / "metrics.json", json.dumps(self.metrics(True), indent=1))


def run_metrics(trainer: Trainer, early_stop: EarlyStop, info: dict[str, Any], finished: bool) -> dict[str, Any]:
    history = trainer.history
    return {
        "finished": finished,
        "steps": trainer.iteration,
        "wall_time_s": round(trainer.elapsed, 3),
        "source_text": info.get("source_text"),
        "target": info.get("target"),
        "history": history,
        "layer_selections": trainer.selections,
        "trained_rows": trainer.param.rows,
        "stopped_early": finished and trainer.iteration < trainer.cfg.iters,
        "target_share": early_stop.last_target_share(history),
        "target_reached_step": early_stop.reached_step(history),
        "content_edit": early_stop.content_edit,
    }


def final_weights(cfg: Any, info: dict[str, Any], rundir: RunDir) -> Callback:
    """What a finished run writes as its result: the generator (fine-tuning) or the domain."""
    if getattr(cfg, "param", "finetune") == "finetune":
        return FinalGenerator(rundir, cfg.export_rosinality)
    return FinalDomain(rundir, cfg, info, cfg.export_rosinality)


def default_callbacks(cfg: Any, early_stop: EarlyStop, grid: SampleGrid, rundir: RunDir | None,
                      checkpointer: Checkpointer | None, metrics: Callable[[bool], dict[str, Any]],
                      progress: bool) -> list[Callback]:
    """The callbacks of a ``nada adapt`` run, in the order they act (step: bar, stop message, samples,
    state; finish: state, generator, final.png, loss.png, metrics.json)."""
    cbs: list[Callback] = [Progress(cfg.iters)] if progress else []
    cbs.append(early_stop)
    if rundir is not None and checkpointer is not None:
        cbs += [Samples(grid, rundir, cfg.sample_every), Checkpointing(checkpointer, cfg.save_every, cfg.iters),
                final_weights(cfg, early_stop.info, rundir), FinalGrid(grid, rundir), LossPlot(rundir),
                Metrics(rundir, metrics)]
    return cbs


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in (history[0] if history else {})
            if k not in ("step", "time_s", "target_share") and not k.startswith("weight_")]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [h["step"] for h in history]
    for k in keys:
        ax.plot(steps, [h[k] for h in history], label=k, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("adaptation losses")
    checks = [(h["step"], h["target_share"]) for h in history if "target_share" in h]
    if checks:
        ax2 = ax.twinx()
        ax2.plot(*zip(*checks), "k--", marker=".", linewidth=1, label="CLIP target share")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_ylabel("share of check samples read as target")
        ax2.legend(loc="upper center")
    if keys:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

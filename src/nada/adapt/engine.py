"""The adaptation loop: twin generators, CLIP guidance, layer freezing, pictures, resume.

``G_frozen`` and ``G_train`` start as identical copies. Both read the same W (the frozen
mapping network), so their latent spaces stay aligned; only synthesis parameters of
``G_train`` ever change, and only those of the layers chosen for the current step.
"""
from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import (
    DISK_FULL,
    DirectoryLock,
    OutputError,
    atomic_path,
    atomic_write_text,
    check_output_dir,
    describe_os_error,
    lock_holder,
    prepare_output_dir,
    remove_created_dirs,
    remove_stale_temporaries,
)
from ..generators.stylegan2 import Generator
from ..imaging import save_grid
from .config import AdaptConfig
from .layers import (
    apply_freeze,
    parameter_names,
    parse_layers,
    scheduled_k,
    select_rows_adaptive,
)
from .state import OLD_STATE_FILE, STATE_FILE, StateError, check_state_file, load_state, older_state_message, save_state
from ..errors import RunError

FINISHED_MARKER = "metrics.json"
IN_MEMORY = "(in-memory Generator)"  # config.yaml's generator entry when a module was passed in


class AdaptError(RunError):
    """A run that cannot start or cannot go on; the message says why and what to do."""


@dataclass
class AdaptResult:
    generator: Generator
    out_dir: Path | None
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AdaptError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


# what a run writes into its directory (removed by --overwrite)
OUTPUTS = ("samples", STATE_FILE, OLD_STATE_FILE, "metrics.json", "generator.safetensors", "final.png", "loss.png",
           "generator_rosinality.pt")


def check_out_dir(out: Path, overwrite: bool, resume: bool, config: AdaptConfig | None = None) -> None:
    """Refuse, before anything is loaded or written: an unusable path, a directory another run is
    writing to, a finished run (without --overwrite), an unfinished one (without --resume or
    --overwrite), and for --resume a state that is missing, damaged or belongs to another run."""
    option = "--resume" if resume else "--out"
    try:
        check_output_dir(out, option)
    except OutputError as e:
        raise AdaptError(str(e)) from None
    if out.is_dir():
        holder = lock_holder(out)
        if holder is not None:
            raise AdaptError(f"{out} is in use by another nada run ({holder}); wait for it to finish or stop it, "
                             f"or choose another directory")
    _check_contents(out, overwrite, resume, config)


def _check_contents(out: Path, overwrite: bool, resume: bool, config: AdaptConfig | None) -> None:
    if resume:
        if not (out / STATE_FILE).exists():
            if (out / OLD_STATE_FILE).exists():
                raise AdaptError(older_state_message(out / OLD_STATE_FILE))
            raise AdaptError(f"--resume {out}: no saved training state ({STATE_FILE}) there")
        if config is not None:
            try:
                check_state_file(out / STATE_FILE, config)
            except StateError as e:
                raise AdaptError(str(e)) from None
        return
    if not out.exists() or overwrite:
        return
    if (out / FINISHED_MARKER).exists():
        raise AdaptError(f"{out} already holds a finished run; pass --overwrite to replace it or choose another --out")
    if (out / STATE_FILE).exists():
        raise AdaptError(f"{out} holds an unfinished run; continue it with --resume {out}, or pass --overwrite to start again")
    if (out / OLD_STATE_FILE).exists():
        raise AdaptError(f"{out} holds an unfinished run written by an older nada, which this version cannot resume; "
                         f"pass --overwrite to start again or choose another --out")


def _is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


class Adapter:
    """One adaptation run. Build it, then call :meth:`run`.

    ``generator``/``guidance`` may be passed in ready-made (Python API, tests); otherwise
    they are loaded from the config. Everything that can fail on bad input (loading,
    text directions) happens in the constructor, before anything is written.
    """

    def __init__(self, config: AdaptConfig, out_dir: str | Path | None = None, *, generator: Generator | None = None,
                 guidance: Any = None, overwrite: bool = False, resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print):
        self.cfg = config
        self.out = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.log = log
        self.overwrite, self.resume = overwrite, resume
        self._lock: DirectoryLock | None = None
        self._created: list[Path] = []
        self._saved_step: int | None = None  # the step of the last training state on disk
        self._snapshot: tuple | None = None  # RNG states etc. at the start of the step in progress
        self._dirty = False  # the step in progress has begun changing weights
        self._interrupt_requested = False  # a deferred Ctrl-C
        self._hard_abort = False  # a second Ctrl-C
        if self.out is not None:
            check_out_dir(self.out, overwrite, resume, config)
        self.device = resolve_device(config.device)

        # --- generators
        from ..generators import checkpoints

        if generator is None:
            generator = checkpoints.load_generator(config.generator, device=self.device)
        if config.export_rosinality:
            exportable = getattr(checkpoints, "check_rosinality_exportable", None)
            reason = exportable(generator) if exportable is not None else None
            if reason:
                raise AdaptError(f"--export-rosinality: {reason}")
        base = generator.to(self.device)
        if not base.w_avg_ready:
            base.compute_w_avg()
        self.G_frozen = copy.deepcopy(base).eval().requires_grad_(False)
        self.G_train = copy.deepcopy(base).train()
        self.G_train.set_w_avg(self.G_frozen.w_avg)
        self.G_train.requires_grad_(False)  # apply_freeze decides what trains

        # --- guidance
        if guidance is None:
            from ..guidance.guidance import Guidance

            guidance = Guidance(config.guidance, device=self.device)
        self.guidance = guidance
        self.gen = torch.Generator().manual_seed(config.seed)  # training latents
        self.info = self.guidance.prepare(frozen_sampler=self._frozen_sampler(config.seed + 7))

        # --- which weights train
        self.layer_mode = parse_layers(config.layers, self.G_train.num_ws)
        self.rows: list[int] = [] if self.layer_mode == "adaptive" else list(self.layer_mode)
        synth = [p for _, p in self.G_train.synthesis_parameters()]
        self.opt = torch.optim.Adam(synth, lr=config.lr, betas=(config.beta1, config.beta2))
        weight_params = list(self.guidance.parameters())
        self.opt_weights = torch.optim.Adam(weight_params, lr=config.lr) if weight_params else None
        if self.rows:
            self._set_rows(self.rows)

        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.selections: list[dict[str, Any]] = []
        self.elapsed = 0.0
        sample_gen = torch.Generator().manual_seed(config.seed + 12345)
        self.sample_z = torch.randn(config.n_samples, self.G_train.z_dim, generator=sample_gen).to(self.device)
        self._sample_frozen: torch.Tensor | None = None
        self._check_ws: torch.Tensor | None = None  # fixed latents CLIP reads for the early stop
        # an edit of a grouped attribute ("red" -> "blue") is a content edit; the stop may skip those
        self.content_edit = bool(self.info.get("source_groups_used"))
        self.stop_active = config.stop_share > 0 and (config.stop_content_edits or not self.content_edit)

    # ------------------------------------------------------------------ helpers

    def _frozen_sampler(self, seed: int) -> Callable[[int], torch.Tensor]:
        def sample(n: int) -> torch.Tensor:
            z = torch.randn(n, self.G_frozen.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
            with torch.no_grad():
                return self.G_frozen(z, truncation_psi=self.cfg.train_truncation, noise_mode="const")
        return sample

    def _latents(self, n: int, mixing: float) -> torch.Tensor:
        z = torch.randn(2, n, self.G_frozen.z_dim, generator=self.gen).to(self.device)
        with torch.no_grad():
            ws = self.G_frozen.mapping(z[0], truncation_psi=self.cfg.train_truncation)
            if mixing > 0 and torch.rand((), generator=self.gen).item() < mixing:
                cut = int(torch.randint(1, self.G_frozen.num_ws, (), generator=self.gen))
                ws2 = self.G_frozen.mapping(z[1], truncation_psi=self.cfg.train_truncation)
                ws = torch.cat([ws[:, :cut], ws2[:, cut:]], dim=1)
        return ws

    def _set_rows(self, rows: list[int]) -> None:
        self.rows = sorted(rows)
        apply_freeze(self.G_train, parameter_names(self.G_train, self.rows, self.cfg.layer_scope), self.opt)

    def _maybe_select(self) -> None:
        cfg = self.cfg
        if self.layer_mode != "adaptive" or self.step % cfg.auto_layer_interval != 0:
            return
        k = scheduled_k(self.step, cfg.auto_layer_k, cfg.auto_layer_falloff, cfg.auto_layer_min_k)
        ws = self._latents(cfg.auto_layer_batch, 0.0)
        sel = select_rows_adaptive(self.G_train, ws, self.guidance.global_loss, k, cfg.auto_layer_iters, cfg.auto_layer_lr,
                                   chunk=cfg.auto_layer_chunk or None)
        self._set_rows(sel.rows)
        self.selections.append({"step": self.step, "k": k, "rows": sel.rows, "scores": [float(f"{s:.4g}") for s in sel.scores]})

    @torch.no_grad()
    def target_share(self) -> float:
        """Share of ``stop_samples`` fixed latents whose trained image CLIP reads as the target.

        The latents are drawn once from their own seed and use the training truncation; the
        reading (:meth:`Guidance.target_margin`) draws no random numbers, so checking does not
        change the run.
        """
        if self._check_ws is None:
            gen = torch.Generator().manual_seed(self.cfg.seed + 4242)
            z = torch.randn(self.cfg.stop_samples, self.G_frozen.z_dim, generator=gen).to(self.device)
            self._check_ws = self.G_frozen.mapping(z, truncation_psi=self.cfg.train_truncation)
        images = torch.cat([self.G_train.synthesis(self._check_ws[i:i + 16], noise_mode="const")
                            for i in range(0, len(self._check_ws), 16)])
        return float((self.guidance.target_margin(images) > 0).float().mean())

    def last_target_share(self) -> float | None:
        return next((h["target_share"] for h in reversed(self.history) if "target_share" in h), None)

    def _reached_target(self) -> bool:
        """After a step: at a check step record CLIP's target share; say whether the run stops before its last step."""
        cfg = self.cfg
        if not self.stop_active:
            return False
        if self.step % cfg.stop_every == 0:
            self.history[-1]["target_share"] = self.target_share()
        return self._stop_due() and self.step < cfg.iters

    def _share_reached(self, entry: dict[str, Any]) -> bool:
        return self.stop_active and entry.get("target_share", -1.0) >= self.cfg.stop_share

    def target_reached_step(self) -> int | None:
        """The step of the first check at which CLIP's target share reached ``stop_share``."""
        return next((h["step"] for h in self.history if self._share_reached(h)), None)

    def _stop_due(self) -> bool:
        reached = self.target_reached_step()
        return reached is not None and self.step - reached >= self.cfg.stop_patience

    # ------------------------------------------------------------------ one step

    def train_step(self) -> dict[str, float]:
        self._maybe_select()
        ws = self._latents(self.cfg.batch, self.cfg.mixing)
        with torch.no_grad():
            img_frozen = self.G_frozen.synthesis(ws, noise_mode="const")
        img_train = self.G_train.synthesis(ws, noise_mode="const")
        loss, info = self.guidance.loss(img_train, img_frozen)
        if not torch.isfinite(loss):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in info.items())
            where = f"; the last good state is in {self.out / STATE_FILE}" if self.out and (self.out / STATE_FILE).exists() else ""
            raise AdaptError(f"loss became non-finite at step {self.step} ({terms}){where}; try a lower --lr")
        self.opt.zero_grad(set_to_none=True)
        if self.opt_weights is not None:
            self.opt_weights.zero_grad(set_to_none=True)
        loss.backward()
        self._dirty = True  # from here on the weights change: an interrupted step cannot be undone
        self.opt.step()
        if self.opt_weights is not None:
            self.opt_weights.step()
        self.step += 1
        return info

    # ------------------------------------------------------------------ outputs

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Frozen samples (top row) over trained samples (bottom row), fixed latents."""
        ws = self.G_frozen.mapping(self.sample_z, truncation_psi=self.cfg.sample_truncation)
        if self._sample_frozen is None:
            self._sample_frozen = self.G_frozen.synthesis(ws, noise_mode="const")
        trained = self.G_train.synthesis(ws, noise_mode="const")
        return torch.cat([self._sample_frozen, trained]).clamp(-1, 1)

    def _upscale(self) -> int:
        return max(1, 256 // self.G_train.resolution)

    def write_samples(self) -> None:
        if self.out is None:
            return
        save_grid(self.sample_grid(), self.out / "samples" / f"step_{self.step:06d}.png", nrow=self.cfg.n_samples, upscale=self._upscale())

    def metrics(self, finished: bool) -> dict[str, Any]:
        return {
            "finished": finished,
            "steps": self.step,
            "wall_time_s": round(self.elapsed, 3),
            "source_text": self.info.get("source_text"),
            "target": self.info.get("target"),
            "history": self.history,
            "layer_selections": self.selections,
            "trained_rows": self.rows,
            "stopped_early": finished and self.step < self.cfg.iters,
            "target_share": self.last_target_share(),
            "target_reached_step": self.target_reached_step(),
            "content_edit": self.content_edit,
        }

    def save_state(self) -> None:
        if self.out is None:
            return
        save_state(self.out / STATE_FILE, self)
        self._saved_step = self.step

    def load_state(self) -> None:
        load_state(self.out / STATE_FILE, self)
        self._saved_step = self.step

    def _write_final(self) -> None:
        from ..generators.checkpoints import save_generator

        out = self.out
        save_generator(self.G_train, out / "generator.safetensors")
        if self.cfg.export_rosinality:
            from ..generators.checkpoints import export_rosinality

            export_rosinality(self.G_train, out / "generator_rosinality.pt")
        save_grid(self.sample_grid(), out / "final.png", nrow=self.cfg.n_samples, upscale=self._upscale())
        plot_losses(self.history, out / "loss.png")
        # metrics.json last: its presence marks the run finished
        atomic_write_text(out / "metrics.json", json.dumps(self.metrics(finished=True), indent=1))

    # ------------------------------------------------------------------ loop

    def run(self) -> AdaptResult:
        """Train to the end (or the early stop) and write the outputs.

        With an output directory the run first takes the directory's lock, creates it and proves
        it writable, removes temporary files a killed run left, and loads (``resume``) or starts
        the state; a full disk, an unwritable directory or running out of memory then end the
        run with an :class:`AdaptError` saying what was kept and how to continue.
        """
        if self.out is not None:
            self._open_out()
        try:
            with self._deferred_interrupts():
                try:
                    self._train()
                    if self.out is not None:
                        if self._saved_step != self.step:  # (a resumed finished run has it already)
                            self.save_state()
                        self._write_final()
                except KeyboardInterrupt:
                    self._on_interrupt()
                    raise
                except AdaptError:
                    raise
                except OSError as e:
                    raise AdaptError(self._failure_message(e)) from None
                except Exception as e:
                    if not _is_out_of_memory(e):
                        raise
                    raise AdaptError(self._failure_message(e)) from None
        finally:
            self._close_out()
        return AdaptResult(self.G_train, self.out, self.metrics(finished=True), self.info)

    # ------------------------------------------------------------------ the run directory

    def _open_out(self) -> None:
        out, cfg = self.out, self.cfg
        try:
            self._created = prepare_output_dir(out, "--resume" if self.resume else "--out")
            self._lock = DirectoryLock(out).acquire()
        except OSError as e:  # OutputError included
            remove_created_dirs(self._created)
            self._created = []
            raise AdaptError(str(e) if isinstance(e, OutputError) else f"cannot use {out}: {describe_os_error(e)}") from None
        try:
            # under the lock, look again: another run may have finished here meanwhile
            _check_contents(out, self.overwrite, self.resume, None)
            for d in (out, out / "samples"):
                remove_stale_temporaries(d)
            if self.resume:
                self.load_state()
                self.log(f"resumed {out} at step {self.step}/{cfg.iters}")
            else:
                if self.overwrite:
                    for name in OUTPUTS:
                        p = out / name
                        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                cfg.save(out / "config.yaml")
        except BaseException as e:
            self._close_out(remove_created=True)
            if isinstance(e, OSError):
                raise AdaptError(f"cannot write to {out}: {describe_os_error(e)}; nothing was trained") from None
            raise

    def _close_out(self, remove_created: bool = False) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if remove_created and self._created:
            for p in reversed(self._created):
                with contextlib.suppress(OSError):
                    (p / "config.yaml").unlink(missing_ok=True)
            remove_created_dirs(self._created)
        self._created = []

    # ------------------------------------------------------------------ interrupts and failures

    @contextlib.contextmanager
    def _deferred_interrupts(self):
        """A first Ctrl-C lets the step in progress finish (then the state is saved); a second stops at once."""
        self._interrupt_requested = self._hard_abort = False
        install = threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if not install:
            yield
            return

        def handler(signum, frame):
            if self._interrupt_requested:
                self._hard_abort = True
                raise KeyboardInterrupt
            self._interrupt_requested = True
            kept = f"the state saved at step {self._saved_step}" if self._saved_step is not None else "no saved state"
            with contextlib.suppress(OSError):
                os.write(2, f"\nCtrl-C: finishing step {self.step + 1}, then saving; Ctrl-C again stops at once "
                            f"(keeping {kept})\n".encode())

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _check_interrupt(self) -> None:
        if self._interrupt_requested:
            raise KeyboardInterrupt

    def _begin_step(self) -> None:
        """Remember what a step changes before it touches a weight, so an interrupted step can be undone."""
        self._snapshot = (self.gen.get_state(), torch.get_rng_state(), self.guidance.state_dict(), len(self.selections))
        self._dirty = False

    def _end_step(self) -> None:
        self._snapshot = None
        self._dirty = False

    def _undo_step(self) -> bool:
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

    def _kept(self) -> str:
        if self._saved_step is None:
            return "nothing resumable was kept (no training state had been saved yet)"
        return f"kept: the training state at step {self._saved_step} ({self.out / STATE_FILE})"

    def _on_interrupt(self) -> None:
        if self.out is None:
            return
        if not self._hard_abort and self._undo_step():
            try:
                self.save_state()
                self.log(f"\ninterrupted after step {self.step}; continue with: nada adapt --resume {self.out}")
                return
            except (OSError, KeyboardInterrupt) as e:
                why = f" (saving failed: {describe_os_error(e)})" if isinstance(e, OSError) else ""
                self.log(f"\ninterrupted{why}; {self._kept()}")
        elif self._hard_abort:
            self.log(f"\nstopped at once; {self._kept()}")
        else:
            self.log(f"\ninterrupted in the middle of step {self.step + 1}; {self._kept()}")
        if self._saved_step is not None:
            self.log(f"continue with: nada adapt --resume {self.out}")

    def _failure_message(self, e: BaseException) -> str:
        """One line: what happened, what was kept, how to go on."""
        if isinstance(e, OSError):
            target = f" while writing {e.filename}" if e.filename else ""
            what = describe_os_error(OSError(e.errno, e.strerror)) if e.filename else describe_os_error(e)
            happened = f"{what}{target}"
            if e.errno in DISK_FULL:
                fix = "free some space"
            elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                fix = "make the directory writable"
            else:
                fix = "fix the cause"
        else:
            kind = "GPU" if isinstance(e, torch.OutOfMemoryError) else "memory"
            happened = f"out of {kind} memory at step {self.step + 1}" if kind == "GPU" else f"out of memory at step {self.step + 1}"
            fix = "free memory (or use a smaller --auto-layer-chunk)"
            # a step that failed before touching a weight can be undone and its start saved
            if self.out is not None and self._undo_step():
                with contextlib.suppress(Exception):
                    self.save_state()
        if self.out is None:
            return f"{happened}; nothing is saved without an output directory"
        if self._saved_step is None:
            return f"{happened}; {self._kept()}; {fix}, then run the same command again"
        return f"{happened}; {self._kept()}; {fix}, then continue with: nada adapt --resume {self.out}"

    # ------------------------------------------------------------------ loop

    def _train(self) -> None:
        cfg = self.cfg
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.iters, initial=self.step, desc="adapt", unit="it", dynamic_ncols=True)
        t_start = time.perf_counter() - self.elapsed
        try:
            if cfg.stop_share > 0 and not self.stop_active and self.step == 0:
                groups = "; ".join(",".join(g) for g in self.info["source_groups_used"])
                self.log(f"a content edit (source group {groups}): no early stop, "
                         f"all {cfg.iters} steps train (stop_content_edits off)")
            if self.step == 0 and cfg.sample_every > 0:
                self.write_samples()
            # a resumed run that had already stopped early stays stopped
            while self.step < cfg.iters and not self._stop_due():
                self._check_interrupt()
                self._begin_step()
                info = self.train_step()
                self.elapsed = time.perf_counter() - t_start
                self.history.append({"step": self.step, **{k: float(f"{v:.6g}") for k, v in info.items()},
                                     "time_s": round(self.elapsed, 3)})
                reached = self._reached_target()
                self._end_step()
                if bar is not None:
                    bar.update(1)
                    post = {k: f"{v:.4f}" for k, v in info.items() if k in ("total", "direction", "global", "l2")}
                    post["rows"] = ",".join(map(str, self.rows))
                    share = self.last_target_share()
                    if share is not None:
                        post["target"] = f"{share:.2f}"
                    if reached:
                        bar.total = self.step  # the run ends here: a full bar, not a stalled one
                    bar.set_postfix(post, refresh=reached)
                if reached:
                    at = self.target_reached_step()
                    share = next(h["target_share"] for h in self.history if h["step"] == at)
                    after = f", {self.step - at} steps later (stop_patience {cfg.stop_patience})" if self.step > at else ""
                    self.log(f"\nCLIP read {share:.0%} of the check samples as the target at step {at}: "
                             f"stopping at step {self.step}{after} (stop_share {cfg.stop_share:g})")
                    break
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.write_samples()
                if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.iters:
                    self.save_state()
        finally:
            if bar is not None:
                bar.close()


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


def adapt(source: str | None = None, target: str | None = None, out: str | Path | None = None, *,
          config: AdaptConfig | None = None, generator: Generator | str | None = None, clip: list[str] | None = None,
          overwrite: bool = False, resume: bool = False, progress: bool = True, **options: Any) -> AdaptResult:
    """Adapt a generator from ``source`` to ``target`` text and return the trained copy.

    ``options`` are :class:`AdaptConfig` fields (``iters``, ``batch``, ``layers``...) or
    :class:`GuidanceConfig` fields (``lambda_global``, ``clip_augment``...). With ``out``
    the run writes samples, checkpoints and final outputs there.
    """
    cfg, G = make_config(source, target, config=config, generator=generator, clip=clip, **options)
    return Adapter(cfg, out, generator=G, overwrite=overwrite, resume=resume, progress=progress).run()


def make_config(source: str | None = None, target: str | None = None, *, config: AdaptConfig | None = None,
                generator: Generator | str | None = None, clip: list[str] | None = None,
                **options: Any) -> tuple[AdaptConfig, Generator | None]:
    """The :class:`AdaptConfig` that :func:`adapt` runs, and the in-memory generator if one was passed."""
    import dataclasses

    from ..guidance.config import GuidanceConfig

    data = config.to_dict() if config is not None else {"guidance": {}}
    g = data.pop("guidance")
    gfields = {f.name for f in dataclasses.fields(GuidanceConfig)}
    afields = {f.name for f in dataclasses.fields(AdaptConfig)}
    if source is not None:
        g["source_text"] = source
    if target is not None:
        g["target_text"] = target
    if clip is not None:
        g["clip"] = list(clip)
    for k, v in options.items():
        if k in afields and k != "guidance":
            data[k] = v
        elif k in gfields:
            g[k] = v
        else:
            raise TypeError(f"adapt() got an unknown option {k!r}")
    G = None
    if isinstance(generator, Generator):
        G = generator
        data.setdefault("generator", IN_MEMORY)
    elif generator is not None:
        data["generator"] = str(generator)
    return AdaptConfig.from_dict({**data, "guidance": g}), G

"""``Adapter``: one ``nada adapt`` run, composed of the pieces in this package.

``G_frozen`` is the loaded generator, never changed; what trains is a parameterisation of it
(:mod:`nada.adapt.parameterisation`; by default :class:`FineTune`, a trainable copy of the synthesis
weights of which the chosen layers learn; with ``param`` a compact domain of :mod:`nada.domains`).
Both read the same W (the frozen mapping network), so their latent spaces stay aligned. A :class:`~nada.adapt.trainer.Trainer` takes the steps;
callbacks (:mod:`nada.adapt.callbacks`) stop early, draw samples, save the state through the
:class:`~nada.adapt.checkpoint.Checkpointer` and write the final files into the
:class:`~nada.adapt.rundir.RunDir`. ``Adapter`` adds loading, Ctrl-C handling and one-line
failures, and keeps the attributes older code reads (``G_train``, ``opt``, ``rows``...).
"""
from __future__ import annotations

import contextlib
import copy
import errno
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import DISK_FULL, describe_os_error
from ..generators.stylegan2 import Generator
from .callbacks import EarlyStop, SampleGrid, default_callbacks, plot_losses, run_metrics
from .checkpoint import Checkpointer
from .config import AdaptConfig
from .errors import AdaptError, resolve_device
from .parameterisation import Parameterisation
from .rundir import FINISHED_MARKER, OUTPUTS, RunDir, check_out_dir
from .state import STATE_FILE
from .trainer import NonFiniteLoss, Trainer

IN_MEMORY = "(in-memory Generator)"  # config.yaml's generator entry when a module was passed in

__all__ = ["AdaptError", "AdaptResult", "Adapter", "FINISHED_MARKER", "OUTPUTS", "check_out_dir", "plot_losses"]


@dataclass
class AdaptResult:
    generator: Generator
    out_dir: Path | None
    metrics: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


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
    ``parameterisation`` (a callable ``G_frozen -> Parameterisation``) chooses what trains;
    by default the config's ``param`` (row-selective fine-tuning, or a compact domain parameterisation
    of :mod:`nada.domains`, whose run writes ``domain.safetensors`` instead of ``generator.safetensors``).
    """

    def __init__(self, config: AdaptConfig, out_dir: str | Path | None = None, *, generator: Generator | None = None,
                 guidance: Any = None, overwrite: bool = False, resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print,
                 parameterisation: Callable[[Generator], Parameterisation] | None = None):
        self.cfg = config
        self.out = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.log = log
        self.overwrite, self.resume = overwrite, resume
        self._interrupt_requested = False  # a deferred Ctrl-C
        self._hard_abort = False  # a second Ctrl-C
        self.rundir = RunDir(self.out, config, overwrite=overwrite, resume=resume) if self.out is not None else None
        if self.rundir is not None:
            self.rundir.check()
        self.device = resolve_device(config.device)

        # --- the frozen generator
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

        # --- guidance
        if guidance is None:
            from ..guidance.guidance import Guidance

            guidance = Guidance(config.guidance, device=self.device)
        self.guidance = guidance
        self.info = self.guidance.prepare(frozen_sampler=self._frozen_sampler(config.seed + 7))

        # --- what trains, and the pieces of the run
        if parameterisation is None:
            from ..domains.factory import make_parameterisation

            parameterisation = make_parameterisation(config)  # config.param: finetune, modulation, stylespace
        make = parameterisation
        self.param = make(self.G_frozen)
        self.param.prepare(self.guidance, self._frozen_sampler(config.seed + 7))
        self.trainer = Trainer(config, self.G_frozen, self.param, self.guidance, device=self.device)
        self.grid = SampleGrid(config, self.G_frozen, self.param, self.device)
        self.early_stop = EarlyStop(config, self.info, log=lambda m: self.log(m))
        self.checkpointer = Checkpointer(self.out / STATE_FILE, self.trainer, config) if self.out is not None else None
        self.trainer.callbacks = default_callbacks(config, self.early_stop, self.grid, self.rundir, self.checkpointer,
                                                   self.metrics, progress)
        self.content_edit = self.early_stop.content_edit
        self.stop_active = self.early_stop.active

    # ------------------------------------------------------------------ views older code reads

    @property
    def G_train(self) -> Generator:
        return self.param.adapted_generator()

    @property
    def opt(self) -> torch.optim.Optimizer:
        return self.trainer.opt

    @property
    def opt_weights(self) -> torch.optim.Optimizer | None:
        return self.trainer.opt_weights

    @property
    def gen(self) -> torch.Generator:
        return self.trainer.gen

    @property
    def rows(self) -> list[int]:
        return self.param.rows

    @property
    def step(self) -> int:
        return self.trainer.iteration

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.trainer.history

    @property
    def selections(self) -> list[dict[str, Any]]:
        return self.trainer.selections

    @property
    def elapsed(self) -> float:
        return self.trainer.elapsed

    @property
    def _saved_step(self) -> int | None:
        return self.checkpointer.saved_step if self.checkpointer is not None else None

    def latents(self, n: int, mixing: float) -> torch.Tensor:
        """``n`` W+ codes from the run's training latent stream (draws from it, as a step does)."""
        return self.trainer.latents(n, mixing)


    def _set_rows(self, rows: list[int]) -> None:
        self.param.set_rows(rows)

    def _frozen_sampler(self, seed: int) -> Callable[[int], torch.Tensor]:
        def sample(n: int) -> torch.Tensor:
            z = torch.randn(n, self.G_frozen.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
            with torch.no_grad():
                return self.G_frozen(z, truncation_psi=self.cfg.train_truncation, noise_mode="const")
        return sample

    def target_share(self) -> float:
        return self.early_stop.target_share(self.trainer)

    def last_target_share(self) -> float | None:
        return self.early_stop.last_target_share(self.history)

    def target_reached_step(self) -> int | None:
        return self.early_stop.reached_step(self.history)

    def sample_grid(self) -> torch.Tensor:
        """Frozen samples (top row) over trained samples (bottom row), fixed latents."""
        return self.grid.grid()

    def metrics(self, finished: bool) -> dict[str, Any]:
        return run_metrics(self.trainer, self.early_stop, self.info, finished)

    # ------------------------------------------------------------------ one step, state

    def train_step(self) -> dict[str, float]:
        """One optimisation step without bookkeeping (tests, notebooks); :meth:`Trainer.step` is the full one."""
        try:
            return self.trainer.train_step()
        except NonFiniteLoss as e:
            raise AdaptError(e.message(self._where_saved())) from None

    def _where_saved(self) -> str:
        if self.out is not None and (self.out / STATE_FILE).exists():
            return f"; the last good state is in {self.out / STATE_FILE}"
        return ""

    def save_state(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save()

    def load_state(self) -> None:
        self.checkpointer.load()

    # ------------------------------------------------------------------ the run

    def run(self) -> AdaptResult:
        """Train to the end (or the early stop) and write the outputs.

        With an output directory the run first takes the directory's lock, creates it and proves
        it writable, removes temporary files a killed run left, and loads (``resume``) or starts
        the state; a full disk, an unwritable directory or running out of memory then end the
        run with an :class:`AdaptError` saying what was kept and how to continue.
        """
        if self.rundir is not None:
            self.rundir.open(resume=self._resume)
        try:
            with self._deferred_interrupts():
                try:
                    self.trainer.run(before_step=self._check_interrupt)
                    if self.rundir is not None:
                        self.trainer.finish()
                except KeyboardInterrupt:
                    self._on_interrupt()
                    raise
                except NonFiniteLoss as e:
                    raise AdaptError(e.message(self._where_saved())) from None
                except AdaptError:
                    raise
                except OSError as e:
                    raise AdaptError(self._failure_message(e)) from None
                except Exception as e:
                    if not _is_out_of_memory(e):
                        raise
                    raise AdaptError(self._failure_message(e)) from None
        finally:
            if self.rundir is not None:
                self.rundir.close()
        return AdaptResult(self.G_train, self.out, self.metrics(finished=True), self.info)

    def _resume(self) -> None:
        self.load_state()
        self.log(f"resumed {self.out} at step {self.step}/{self.cfg.iters}")

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

    def _kept(self) -> str:
        if self._saved_step is None:
            return "nothing resumable was kept (no training state had been saved yet)"
        return f"kept: the training state at step {self._saved_step} ({self.out / STATE_FILE})"

    def _on_interrupt(self) -> None:
        if self.out is None:
            return
        if not self._hard_abort and self.trainer.undo_step():
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
            if self.out is not None and self.trainer.undo_step():
                with contextlib.suppress(Exception):
                    self.save_state()
        if self.out is None:
            return f"{happened}; nothing is saved without an output directory"
        if self._saved_step is None:
            return f"{happened}; {self._kept()}; {fix}, then run the same command again"
        return f"{happened}; {self._kept()}; {fix}, then continue with: nada adapt --resume {self.out}"

"""Full training state of an adaptation run, written atomically so a killed run resumes exactly.

Holds the trained generator's synthesis weights (the frozen twin is reloaded from the
config), optimiser moments, the current layer choice, every random-number state, the
step and the metrics so far. Loaded with ``torch.load(weights_only=True)``: plain
tensors and containers only, no code.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .._io import atomic_path

if TYPE_CHECKING:
    from .engine import Adapter

STATE_FILE = "state.pt"
STATE_VERSION = 1


def save_state(path: Path, run: "Adapter") -> None:
    state = {
        "version": STATE_VERSION,
        "step": run.step,
        "elapsed": run.elapsed,
        "generator": {k: v for k, v in run.G_train.state_dict().items() if not k.startswith("style.")},
        "rows": list(run.rows),
        "optimizer": run.opt.state_dict(),
        "optimizer_weights": run.opt_weights.state_dict() if run.opt_weights is not None else None,
        "guidance": run.guidance.state_dict(),
        "latent_rng": run.gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": run.history,
        "selections": run.selections,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, run: "Adapter") -> None:
    from .engine import AdaptError

    try:
        state = torch.load(path, map_location=run.device, weights_only=True)
    except Exception as exc:  # truncated or foreign file: one clear line
        raise AdaptError(f"cannot read training state {path}: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise AdaptError(f"{path} is not a nada training state (version {STATE_VERSION})")
    missing, unexpected = run.G_train.load_state_dict(state["generator"], strict=False)
    if unexpected or any(not k.startswith("style.") for k in missing):
        raise AdaptError(f"{path}: training state does not fit this generator (missing {missing[:3]}, unexpected {unexpected[:3]})")
    run.step = int(state["step"])
    run.elapsed = float(state["elapsed"])
    run._set_rows(list(state["rows"]))
    run.opt.load_state_dict(state["optimizer"])
    if run.opt_weights is not None and state["optimizer_weights"] is not None:
        run.opt_weights.load_state_dict(state["optimizer_weights"])
    run.guidance.load_state_dict(state["guidance"])
    run.gen.set_state(state["latent_rng"])
    torch.set_rng_state(state["torch_rng"])
    run.history = list(state["history"])
    run.selections = list(state["selections"])

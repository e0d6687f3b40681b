"""The one way a run's training state is saved and resumed: :class:`Checkpointer`.

It asks the trainer for its state (:meth:`Trainer.state_dict`) and gives it back
(:meth:`Trainer.load_state_dict`); the file format is :mod:`nada.adapt.state`'s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import AdaptError
from .state import StateError, _first_line, check_belongs, read_state, write_state


class Checkpointer:
    """Saves and loads ``trainer``'s state at ``path``; ``saved_step`` is the step of the state on disk."""

    def __init__(self, path: str | Path, trainer: Any, config: Any):
        self.path = Path(path)
        self.trainer = trainer
        self.config = config
        self.saved_step: int | None = None

    def save(self) -> None:
        write_state(self.path, self.trainer.state_dict(), self.config)
        self.saved_step = self.trainer.iteration

    def load(self) -> None:
        """Resume: every checksum and the config checked; a state of another run is one line."""
        path = self.path
        try:
            state, meta = read_state(path)
            check_belongs(path, meta, self.config)
        except StateError as e:
            raise AdaptError(str(e)) from None
        try:
            self.trainer.load_state_dict(state)
        except AdaptError as e:
            raise AdaptError(f"{path}: {e}") from None
        except Exception as e:  # shapes, optimizer groups, RNG sizes: a state of another run
            raise AdaptError(f"{path}: training state does not fit this run ({_first_line(e)}); "
                             f"start again with --overwrite") from None
        self.saved_step = self.trainer.iteration

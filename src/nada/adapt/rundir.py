"""A run's output folder: checking it, the lock, leftovers, overwrite and resume, the final files.

The training loop never sees the folder; callbacks (samples, checkpoints, final files) write
through a :class:`RunDir`.
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Callable

from .._io import (
    DirectoryLock,
    OutputError,
    check_output_dir,
    describe_os_error,
    lock_holder,
    prepare_output_dir,
    remove_created_dirs,
    remove_stale_temporaries,
)
from .errors import AdaptError
from .state import OLD_STATE_FILE, STATE_FILE, StateError, check_state_file, older_state_message

FINISHED_MARKER = "metrics.json"

# what a run writes into its directory (removed by --overwrite)
OUTPUTS = ("samples", STATE_FILE, OLD_STATE_FILE, "metrics.json", "generator.safetensors", "domain.safetensors",
           "final.png", "loss.png", "generator_rosinality.pt")


def check_out_dir(out: Path, overwrite: bool, resume: bool, config: Any = None) -> None:
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
    check_contents(out, overwrite, resume, config)


def check_contents(out: Path, overwrite: bool, resume: bool, config: Any) -> None:
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


class RunDir:
    """The output folder of one run. :meth:`check` before loading anything, :meth:`open` before
    training (lock, leftovers, overwrite or resume), :meth:`close` after."""

    def __init__(self, path: str | Path, config: Any, *, overwrite: bool = False, resume: bool = False):
        self.path = Path(path)
        self.config = config
        self.overwrite, self.resume = overwrite, resume
        self._lock: DirectoryLock | None = None
        self._created: list[Path] = []

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def check(self) -> None:
        check_out_dir(self.path, self.overwrite, self.resume, self.config)

    def open(self, resume: Callable[[], None]) -> None:
        """Create (and prove writable) the folder, take its lock, look again under it, remove temporary
        files a killed run left; then call ``resume`` (with --resume) or clear old outputs (--overwrite)
        and write config.yaml. On failure nothing it created stays."""
        out = self.path
        try:
            self._created = prepare_output_dir(out, "--resume" if self.resume else "--out")
            self._lock = DirectoryLock(out).acquire()
        except OSError as e:  # OutputError included
            remove_created_dirs(self._created)
            self._created = []
            raise AdaptError(str(e) if isinstance(e, OutputError) else f"cannot use {out}: {describe_os_error(e)}") from None
        try:
            # under the lock, look again: another run may have finished here meanwhile
            check_contents(out, self.overwrite, self.resume, None)
            for d in (out, out / "samples"):
                remove_stale_temporaries(d)
            if self.resume:
                resume()
            else:
                if self.overwrite:
                    for name in OUTPUTS:
                        p = out / name
                        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                self.config.save(out / "config.yaml")
        except BaseException as e:
            self.close(remove_created=True)
            if isinstance(e, OSError):
                raise AdaptError(f"cannot write to {out}: {describe_os_error(e)}; nothing was trained") from None
            raise

    def close(self, remove_created: bool = False) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if remove_created and self._created:
            for p in reversed(self._created):
                with contextlib.suppress(OSError):
                    (p / "config.yaml").unlink(missing_ok=True)
            remove_created_dirs(self._created)
        self._created = []

    def write_generator(self, G: Any, export_rosinality: bool = False, metadata: dict[str, str] | None = None) -> None:
        from ..generators.checkpoints import save_generator

        save_generator(G, self.path / "generator.safetensors", metadata=metadata)
        if export_rosinality:
            from ..generators.checkpoints import export_rosinality as export

            export(G, self.path / "generator_rosinality.pt")

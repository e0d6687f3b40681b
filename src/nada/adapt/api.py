"""``nada.adapt(...)`` and the one way options become a run's config, for the CLI and the API alike.

Precedence, lowest first: the options' defaults, the generator's preset, a config file (or,
when resuming, the run's own ``config.yaml``), then flags or keyword arguments
(:func:`nada.adapt.config.merge` does the merging). The ``config.yaml`` of a run always holds
what ran: a resumed run whose options changed what may change (``save_every``, ``device``...)
rewrites it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .._io import atomic_write_text
from ..errors import ConfigError, NadaError
from ..guidance.config import GuidanceConfig
from .config import AdaptConfig, AdaptConfigError, merge, read_file

__all__ = ["CONFIG_FILE", "UnknownOptionError", "adapt", "make_config", "options_layer", "record_config", "run"]

CONFIG_FILE = "config.yaml"


class UnknownOptionError(ConfigError, TypeError):
    """A keyword argument that is no option of a run."""


def options_layer(source: str | None = None, target: str | None = None, *, generator: Any = None,
                  clip: list[str] | None = None, **options: Any) -> dict[str, Any]:
    """Keyword options as one config layer: AdaptConfig fields on top, GuidanceConfig fields under ``guidance``.

    ``source``/``target`` are ``source_text``/``target_text``; None leaves an option unset. Several
    target texts (a list: ``--target`` given more than once) are ``targets`` (``param="hyper"``),
    the first also ``target_text``.
    """
    afields = {f.name for f in dataclasses.fields(AdaptConfig)} - {"guidance"}
    gfields = {f.name for f in dataclasses.fields(GuidanceConfig)}
    layer: dict[str, Any] = {}
    guidance: dict[str, Any] = {}
    if target is None and isinstance(options.get("target_text"), (list, tuple)):
        target = options.pop("target_text")
    if isinstance(target, (list, tuple)):
        texts = list(target)
        if len(texts) > 1:
            layer["targets"] = texts
        target = texts[0] if texts else None
    if source is not None:
        guidance["source_text"] = source
    if target is not None:
        guidance["target_text"] = target
    if clip is not None:
        guidance["clip"] = [clip] if isinstance(clip, str) else list(clip)
    if generator is not None:
        layer["generator"] = str(generator)
    for k, v in options.items():
        if k in afields:
            layer[k] = v
        elif k in gfields:
            guidance[k] = v
        else:
            raise UnknownOptionError(f"adapt() got an unknown option {k!r}")
    layer["guidance"] = guidance
    return layer


def _file_layer(config: Any, out: str | os.PathLike | None, resume: bool) -> dict[str, Any] | None:
    if config is None:
        return read_file(Path(out) / CONFIG_FILE) if resume and out is not None else None
    if isinstance(config, AdaptConfig):
        return config.to_dict()
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        return read_file(config)
    raise AdaptConfigError(f"config must be an AdaptConfig, a mapping or a YAML file, got {type(config).__name__}")


def make_config(source: str | None = None, target: str | None = None, *, config: Any = None, generator: Any = None,
                clip: list[str] | None = None, out: str | os.PathLike | None = None, resume: bool = False,
                **options: Any) -> tuple[AdaptConfig, Any]:
    """The :class:`AdaptConfig` a run uses, and the in-memory generator if one was passed.

    ``config``: an AdaptConfig, a mapping or a YAML file; when resuming without one, the
    run's own ``out/config.yaml``. Keyword options (and ``source``, ``target``, ``clip``,
    ``generator``) override it.
    """
    from ..generators.stylegan2 import Generator

    module = generator if isinstance(generator, Generator) else None
    layer = options_layer(source, target, generator=None if module is not None else generator, clip=clip, **options)
    file_layer = _file_layer(config, out, resume)
    if module is not None and not (file_layer or {}).get("generator"):
        from .engine import IN_MEMORY

        layer["generator"] = IN_MEMORY
    return merge(file_layer, layer), module


def check_device(name: str) -> Any:
    """The torch device of a device option (``auto``: CUDA when available, else CPU), or a one-line error."""
    from ..devices import resolve_device

    try:
        return resolve_device(name)
    except NadaError as e:
        raise AdaptConfigError(str(e)) from None


def record_config(cfg: AdaptConfig, out: str | os.PathLike) -> None:
    """Make ``out/config.yaml`` say ``cfg`` (written only when it says something else)."""
    import yaml

    path = Path(out) / CONFIG_FILE
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def run(cfg: AdaptConfig, out: str | os.PathLike | None = None, *, generator: Any = None, perceptual: Any = None,
        overwrite: bool = False, resume: bool = False, progress: bool = True,
        log: Callable[[str], None] = print) -> Any:
    """Run ``cfg`` (writing to ``out``, if given) and return the :class:`AdaptResult`."""
    from .engine import Adapter

    device = check_device(cfg.device)
    guidance = None
    if perceptual is not None:
        from ..guidance.guidance import Guidance

        guidance = Guidance(cfg.guidance, device=device, perceptual=perceptual)
    adapter = Adapter(cfg, out, generator=generator, guidance=guidance, overwrite=overwrite, resume=resume,
                      progress=progress, log=log)
    if resume and out is not None:
        record_config(cfg, out)  # the state accepted cfg: only options that may change did
    return adapter.run()


def adapt(source: str | None = None, target: str | None = None, out: str | os.PathLike | None = None, *,
          config: Any = None, generator: Any = None, clip: list[str] | None = None, overwrite: bool = False,
          resume: bool = False, progress: bool = True, perceptual: Any = None, **options: Any) -> Any:
    """Adapt a generator from ``source`` to ``target`` text and return the trained copy.

    ``options`` are :class:`AdaptConfig` fields (``iters``, ``batch``, ``layers``...) or
    :class:`GuidanceConfig` fields (``lambda_global``, ``clip_augment``...), the same options
    as ``nada adapt``'s flags. ``generator``: a name, a checkpoint path or a Generator module.
    With ``out`` the run writes samples, checkpoints and final outputs there; ``resume=True``
    continues the unfinished run in ``out`` with its ``config.yaml`` (``options`` override it,
    as flags do on the command line). ``perceptual``: a network for ``lambda_perceptual``.
    """
    if resume and out is None:
        raise AdaptConfigError("resume=True continues the run in out: pass out=DIR")
    cfg, module = make_config(source, target, config=config, generator=generator, clip=clip, out=out, resume=resume,
                              **options)
    return run(cfg, out, generator=module, perceptual=perceptual, overwrite=overwrite, resume=resume, progress=progress)

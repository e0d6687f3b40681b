"""Names that plug-ins add to ``nada``: generators, CLIP models and option presets.

The core (``generators``, ``guidance``, ``adapt``) knows no plug-in by name. It asks this
registry, which loads the plug-ins the first time a name is looked up: the built-in world
(``nada.toyworld.plugin``) and any installed package that declares an entry point in the
group ``nada.plugins``. A plug-in is a function ``register(registry)`` that calls
:meth:`Registry.add_generator`, :meth:`Registry.add_clip` and :meth:`Registry.add_preset`.

    [project.entry-points."nada.plugins"]
    mine = "my_package.nada_plugin:register"
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Registry", "registry", "generator_loader", "clip_path", "preset", "generator_names", "clip_names"]

# Shipped with nada; loaded like any other plug-in.
BUILTIN_PLUGINS = ("nada.toyworld.plugin:register",)
ENTRY_POINT_GROUP = "nada.plugins"


@dataclass
class Registry:
    generators: dict[str, Callable[[], Any]] = field(default_factory=dict)  # name -> loader returning a Generator
    clips: dict[str, Path] = field(default_factory=dict)  # name -> CLIP model directory or file
    presets: dict[str, Any] = field(default_factory=dict)  # generator name -> options dict or YAML file
    loaded: bool = False

    def add_generator(self, name: str, loader: Callable[[], Any]) -> None:
        """``name`` (usable wherever a generator path is) loads with ``loader()``."""
        self._check_new(name, self.generators, "generator")
        self.generators[name] = loader

    def add_clip(self, name: str, path: str | os.PathLike) -> None:
        """``name`` (usable wherever a CLIP is named) is the CLIP at ``path``."""
        self._check_new(name, self.clips, "CLIP")
        self.clips[name] = Path(path)

    def add_preset(self, generator: str, options: dict[str, Any] | str | os.PathLike) -> None:
        """Options an adaptation of ``generator`` takes when the user leaves them out (a dict or a YAML file)."""
        self._check_new(generator, self.presets, "preset")
        self.presets[generator] = options if isinstance(options, dict) else Path(options)

    @staticmethod
    def _check_new(name: str, table: dict, what: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {what} name must be a non-empty string, got {name!r}")
        if name in table:
            raise ValueError(f"{what} name {name!r} is registered twice")

    def load(self) -> "Registry":
        """Run every plug-in once (built-in first, then entry points)."""
        if self.loaded:
            return self
        self.loaded = True
        for spec in BUILTIN_PLUGINS:
            module, _, func = spec.partition(":")
            getattr(importlib.import_module(module), func)(self)
        try:
            from importlib.metadata import entry_points

            found = entry_points(group=ENTRY_POINT_GROUP)
        except Exception:  # pragma: no cover - broken metadata must not break the built-ins
            found = []
        for ep in found:
            if f"{ep.value}" in BUILTIN_PLUGINS:
                continue
            ep.load()(self)
        return self


registry = Registry()


def generator_loader(name: str) -> Callable[[], Any] | None:
    return registry.load().generators.get(name)


def clip_path(name: str) -> Path | None:
    return registry.load().clips.get(name)


def preset(generator: str) -> dict[str, Any]:
    """The preset options for ``generator`` (empty when it has none); a fresh copy each call."""
    import copy

    value = registry.load().presets.get(str(generator))
    if value is None:
        return {}
    if isinstance(value, Path):
        import yaml

        value = yaml.safe_load(value.read_text(encoding="utf-8")) or {}
    return copy.deepcopy(value)


def generator_names() -> list[str]:
    return sorted(registry.load().generators)


def clip_names() -> list[str]:
    return sorted(registry.load().clips)

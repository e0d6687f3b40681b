"""nada: text-driven domain adaptation of StyleGAN2 generators.

The public API is small and imported lazily, so ``import nada`` stays cheap and a
command that never touches CLIP never imports ``transformers``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "Generator": "nada.generators.stylegan2",
    "GeneratorConfig": "nada.generators.stylegan2",
    "load_generator": "nada.generators.checkpoints",
    "save_generator": "nada.generators.checkpoints",
    "CheckpointError": "nada.generators.checkpoints",
    "load_clip": "nada.guidance.clip",
    "ClipModel": "nada.guidance.clip",
    "ClipLoadError": "nada.guidance.errors",
    "GuidanceConfig": "nada.guidance.config",
    "Guidance": "nada.guidance.guidance",
    "AdaptConfig": "nada.adapt.config",
    "Adapter": "nada.adapt.engine",
    "AdaptError": "nada.adapt.engine",
    "adapt": "nada.adapt",  # the package is callable: see nada/adapt/__init__.py
    "NadaError": "nada.errors",
    "load_domain": "nada.domains.domain",
    "save_domain": "nada.domains.domain",
    "apply_domains": "nada.domains.domain",
    "bake_domains": "nada.domains.domain",
    "Domain": "nada.domains.domain",
    "DomainError": "nada.domains.domain",
    "HyperDomain": "nada.domains.domain",
    "invert": "nada.inversion",
    "InvertConfig": "nada.inversion",
    "load_images": "nada.inversion",
    "load_latents": "nada.inversion",
    "save_latents": "nada.inversion",
    "invert_to_dir": "nada.translation",
    "translate_to_dir": "nada.translation",
    "sefa_directions": "nada.editing",
    "ganspace_directions": "nada.editing",
    "fit_boundary": "nada.editing",
    "parse_direction": "nada.editing",
    "apply_direction": "nada.editing",
    "edit_grid": "nada.editing",
    "edit_to_dir": "nada.editing",
    "boundary_from_labels": "nada.editing",
    "load_lpips": "nada.lpips",
    "load_encoder": "nada.encoder",
    "StyleEncoder": "nada.encoder",
    "render_video": "nada.video",
    "write_video": "nada.video",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'nada' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"nada.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""``--param`` -> the parameterisation a run trains (the engine's default factory)."""
from __future__ import annotations

from typing import Any, Callable

from ..adapt.errors import AdaptError
from ..generators.stylegan2 import Generator
from .parameterisations import PARAM_SPACES, DomainParameterisation

__all__ = ["make_parameterisation"]


def make_parameterisation(cfg: Any) -> Callable[[Generator], Any]:
    """``G_frozen -> Parameterisation`` for ``cfg.param`` (``finetune``: the config's row-selective fine-tuning)."""
    from ..adapt.parameterisation import FineTune

    param = getattr(cfg, "param", "finetune")
    if param == "finetune":
        return lambda G: FineTune.from_config(cfg, G)
    if param == "hyper":
        from .hyper import HyperParameterisation

        return lambda G: HyperParameterisation(G, cfg)
    if param not in PARAM_SPACES:
        raise AdaptError(f"unknown parameterisation {param!r}; choose from finetune, {', '.join(PARAM_SPACES)}")
    return lambda G: DomainParameterisation(G, param, cfg.layers)

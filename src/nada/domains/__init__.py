"""Domains: compact, shareable adaptations of a frozen StyleGAN2 generator.

A *domain* is a few thousand numbers trained instead of the generator's ~30 M weights:

* ``modulation`` (HyperDomainNet's domain-modulation vector): a per-input-channel multiplier
  ``exp(d)`` of every modulated convolution's weight (ToRGB excluded), ``d = 0`` at the start;
* ``stylespace`` (StyleDomain's StyleSpace offsets): an offset ``Δs`` added to the style vector
  of every modulated layer, ToRGB included, zero at the start;
* ``stylespace+`` and ``affine+`` (StyleDomain's, for dissimilar domains);
* ``hyper`` (HyperDomainNet): one hypernetwork predicting the ``modulation`` vector of any text
  (:mod:`nada.domains.hyper`).

:mod:`nada.domains.parameterisations` trains them (``nada adapt --param modulation``);
:mod:`nada.domains.domain` saves, loads, mixes, applies and bakes them (``domain.safetensors``).
See ``docs/domains.md``. Names are imported lazily (``from nada.domains import load_domain``).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DOMAIN_PARAMS": "parameterisations", "PARAM_DEFAULTS": "defaults", "PARAMS": "defaults",
    "DomainParameterisation": "parameterisations", "make_parameterisation": "factory",
    "Domain": "domain", "DomainError": "domain", "DomainGenerator": "domain", "apply_domains": "domain",
    "bake_domains": "domain", "base_fingerprint": "domain", "load_domain": "domain", "save_domain": "domain",
    "parse_domain_spec": "domain", "load_domains": "domain", "HyperDomain": "domain", "HyperNetwork": "hypernet",
    "HyperParameterisation": "hyper",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

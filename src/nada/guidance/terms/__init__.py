"""Loss terms, one module each, found by name: adding a term means adding one file here.

A module defines ``TERM``, an instance of a :class:`Term` subclass: its name (the config
weight is ``lambda_<name>``), its place in the order, its config options (defaults, help
texts and checks, declared with :func:`nada.options.option`), what it prepares once per CLIP
model, and its value on a batch. :class:`nada.guidance.config.GuidanceConfig` gets every
term's fields; :class:`nada.guidance.guidance.Guidance` runs the terms whose weight is above 0
and sums ``lambda * value`` in the order they were evaluated.

Importing this package imports no torch: terms import what they compute with inside methods.
"""
from __future__ import annotations

import importlib
import pkgutil

from ._base import PrepareContext, Term, weight_check

__all__ = ["TERMS", "PrepareContext", "Term", "weight_check"]


def _discover() -> dict[str, Term]:
    found: list[Term] = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        term = getattr(importlib.import_module(f"{__name__}.{module.name}"), "TERM", None)
        if not isinstance(term, Term):
            raise TypeError(f"{__name__}.{module.name} must define TERM, a nada.guidance.terms.Term")
        found.append(term)
    found.sort(key=lambda t: (t.order, t.name))
    names = [t.name for t in found]
    if len(set(names)) != len(names):
        raise TypeError(f"loss term names must be unique, got {names}")
    return {t.name: t for t in found}


# name -> term, in the declared order (config fields, learned weights, evaluation within a stage)
TERMS: dict[str, Term] = _discover()

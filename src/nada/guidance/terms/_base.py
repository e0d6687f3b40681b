"""The interface of a loss term (see the package docstring)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ...options import option

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..guidance import ClipTarget, Guidance

EMBEDDING = "embedding"  # scored per CLIP on the shared (augmented) embeddings of the trained and frozen images
IMAGE = "image"  # scored on the images themselves, after every embedding term


def weight_check(name: str, v: Any) -> str | None:
    if not math.isfinite(v) or v < 0:
        return f"{name} must be a finite number >= 0, got {v}"
    return None


@dataclass
class PrepareContext:
    """What :meth:`Guidance.prepare` has worked out before the terms prepare theirs."""

    source: str | None  # the source text (possibly chosen by auto_source)
    templates: list[str] | None
    use_templates: bool
    samples: Any = None  # frozen generator samples, when auto_source or a target folder needed them
    target_images: Any = None  # the target folder's images, if any
    info: dict[str, Any] = field(default_factory=dict)  # prepare()'s summary; terms may add entries
    scratch: dict[str, Any] = field(default_factory=dict)  # per-term values shared by all CLIPs


class Term:
    """One loss term. Subclasses set the class attributes and override what they need."""

    name: str = ""
    order: int = 1000  # place among the terms: config fields, learned weights, evaluation within a stage
    stage: str = IMAGE
    weight_default: float = 0.0
    weight_help: str = ""
    weight_cli: bool = True  # False: the weight is no `nada adapt` flag (e.g. it needs a Python object)
    # extra config fields: name -> (type, option(...)); placed after the core options, in term order
    options: dict[str, tuple[Any, Any]] = {}
    # names of the values prepare() returns per CLIP; read as attributes of ClipTarget (None when unset)
    state: tuple[str, ...] = ()

    @property
    def weight_field(self) -> str:
        return f"lambda_{self.name}"

    def weight_option(self) -> tuple[str, Any, Any]:
        return (self.weight_field, float, option(self.weight_default, help=self.weight_help, check=weight_check,
                                                 cli=self.weight_cli))

    def active(self, cfg: Any) -> bool:
        return getattr(cfg, self.weight_field) > 0

    # -- config ------------------------------------------------------------------------------------
    def check_ready(self, cfg: Any) -> str | None:
        """A message when an active term lacks what it needs (called only when active)."""
        return None

    # -- guidance setup ----------------------------------------------------------------------------
    def setup(self, guidance: "Guidance", **objects: Any) -> None:
        """At construction of an active term's Guidance (``objects``: e.g. ``perceptual``)."""

    def begin(self, guidance: "Guidance", ctx: PrepareContext) -> None:
        """Once per prepare(), for every term, active or not, before anything is embedded."""

    def vocabulary(self, guidance: "Guidance", ctx: PrepareContext) -> dict[str, list[str]]:
        """Texts an active term embeds, by what they are, for the CLIP vocabulary check."""
        return {}

    def template_words(self, guidance: "Guidance") -> list[str]:
        """Templates an active term embeds texts through, for the vocabulary warning."""
        return []

    def prepare(self, guidance: "Guidance", clip: Any, target: "ClipTarget", ctx: PrepareContext) -> dict[str, Any]:
        """Per CLIP model, once: the values named in ``state``."""
        return {}

    # -- per step ------------------------------------------------------------------------------------
    def value(self, guidance: "Guidance", clip: Any, e_train: "torch.Tensor", e_frozen: "torch.Tensor",
              target: "ClipTarget") -> "torch.Tensor":
        """Embedding stage: the unweighted value for one CLIP model."""
        raise NotImplementedError

    def values(self, guidance: "Guidance", img_train: "torch.Tensor", img_frozen: "torch.Tensor",
               targets: list["ClipTarget"]) -> Iterable[tuple["torch.Tensor", float]]:
        """Image stage: (value, weight) pairs, summed into the term in the order yielded."""
        raise NotImplementedError

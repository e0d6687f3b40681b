"""Perceptual (LPIPS-like) distance to the frozen images, with a network passed to ``Guidance``.

Not a command-line option: a network cannot be named there; pass ``perceptual=net`` to
``Guidance`` or ``nada.adapt``.
"""
from __future__ import annotations

from ._base import IMAGE, Term
from ..errors import GuidanceError


class Perceptual(Term):
    name, order, stage = "perceptual", 90, IMAGE
    weight_help = "weight of the perceptual loss (Python API: pass a perceptual network)"
    weight_cli = False

    def setup(self, guidance, **objects):
        if objects.get("perceptual") is None:
            raise GuidanceError("lambda_perceptual > 0 needs a perceptual network: pass perceptual=... to Guidance")

    def values(self, guidance, img_train, img_frozen, targets):
        import torch

        from .. import losses as L

        feats_train = _as_list(guidance.perceptual(img_train))
        with torch.no_grad():
            feats_frozen = _as_list(guidance.perceptual(img_frozen))
        yield L.perceptual_loss(feats_train, feats_frozen), 1.0


def _as_list(feats):
    import torch

    return [feats] if isinstance(feats, torch.Tensor) else list(feats)


TERM = Perceptual()

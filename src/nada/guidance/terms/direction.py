"""Directional CLIP loss, the main StyleGAN-NADA term: ``1 - cos(e_train - e_frozen, dT)``."""
from __future__ import annotations

from ._base import EMBEDDING, Term


class Direction(Term):
    name, order, stage = "direction", 10, EMBEDDING
    weight_default = 1.0
    weight_help = "weight of the directional CLIP loss"

    def value(self, guidance, clip, e_train, e_frozen, target):
        from .. import losses as L

        direction = target.direction
        if target.source_variants is not None:  # per-sample source texts (source_group)
            direction = L.read_source_direction(e_frozen, target.target, target.source_variants, clip.logit_scale)
        return L.directional_loss(e_train, e_frozen, direction)


TERM = Direction()

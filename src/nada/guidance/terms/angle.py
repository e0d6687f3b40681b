"""CLIP-angle consistency: ``(cos(e_train, e_frozen) - cos(source, target))^2``."""
from __future__ import annotations

from ._base import EMBEDDING, Term


class Angle(Term):
    name, order, stage = "angle", 40, EMBEDDING
    weight_help = "weight of the CLIP-angle consistency loss"

    def value(self, guidance, clip, e_train, e_frozen, target):
        from .. import losses as L

        return L.clip_angle_loss(e_train, e_frozen, target.source_target_cos)


TERM = Angle()

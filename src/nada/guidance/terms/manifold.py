"""Manifold consistency: the batch's pairwise angles in CLIP space stay those of the frozen images."""
from __future__ import annotations

from ._base import EMBEDDING, Term


class Manifold(Term):
    name, order, stage = "manifold", 50, EMBEDDING
    weight_help = "weight of the manifold consistency loss"

    def value(self, guidance, clip, e_train, e_frozen, target):
        from .. import losses as L

        return L.manifold_consistency_loss(e_train, e_frozen)


TERM = Manifold()

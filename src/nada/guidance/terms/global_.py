"""Global CLIP loss: ``1 - cos(e_train, target)``."""
from __future__ import annotations

from ._base import EMBEDDING, Term


class Global(Term):
    name, order, stage = "global", 20, EMBEDDING
    weight_help = "weight of the global CLIP loss"

    def value(self, guidance, clip, e_train, e_frozen, target):
        from .. import losses as L

        return L.global_loss(e_train, target.target)


TERM = Global()

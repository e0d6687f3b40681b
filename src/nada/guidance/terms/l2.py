"""L2 reconstruction against the frozen images: ``mean (img_train - img_frozen)^2``."""
from __future__ import annotations

from ._base import IMAGE, Term


class L2(Term):
    name, order, stage = "l2", 80, IMAGE
    weight_help = "weight of the L2 reconstruction loss against the frozen images"

    def values(self, guidance, img_train, img_frozen, targets):
        from .. import losses as L

        yield L.l2_loss(img_train, img_frozen.detach()), 1.0


TERM = L2()

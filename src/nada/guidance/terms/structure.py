"""Structure loss: CLIP token self-similarity of each trained image kept from its frozen twin."""
from __future__ import annotations

from ...options import option
from ._base import IMAGE, Term
from ._checks import hidden_layers_check


class Structure(Term):
    name, order, stage = "structure", 70, IMAGE
    weight_help = "weight of the structure loss: CLIP token self-similarity kept from the frozen image"
    options = {
        "structure_layers": (list[int] | None, option(
            None, help="CLIP vision hidden-state index for the structure loss; repeatable", check=hidden_layers_check,
            default_text="the middle layer")),
    }
    state = ("structure_layers",)

    def prepare(self, guidance, clip, target, ctx):
        from ..guidance import hidden_layers

        return {"structure_layers": hidden_layers(clip, guidance.config.structure_layers, "structure", middle_only=True)}

    def values(self, guidance, img_train, img_frozen, targets):
        import torch

        from .. import losses as L

        for clip, t, w in zip(guidance.clips.models, targets, guidance.clips.weights):
            _, h_train = clip.encode_images_with_hidden(img_train, t.structure_layers)
            with torch.no_grad():
                _, h_frozen = clip.encode_images_with_hidden(img_frozen, t.structure_layers)
            yield L.structure_loss([h[:, 1:] for h in h_train], [h[:, 1:] for h in h_frozen]), w


TERM = Structure()
